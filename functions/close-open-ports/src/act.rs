//! Runs a plan through an [`Executor`]: EC2 security groups (here) or Azure NSGs
//! (`azure.rs`).

use async_trait::async_trait;
use reflex_aws::ec2::SecurityGroups;
use reflex_core::{Action, ActionRecord, ActionStatus, CloudError, CloudErrorKind, Plan};

use crate::decide::ALREADY_GONE;

/// Carries out one action against a cloud.
#[async_trait]
pub trait Executor: Send + Sync {
    async fn run(&self, action: &Action) -> Result<(), CloudError>;
}

/// EC2: revoke by rule id, authorise remainders.
pub(crate) struct Ec2<'a>(pub &'a dyn SecurityGroups);

pub(crate) fn wrong_cloud(action: &Action) -> CloudError {
    CloudError::new(
        CloudErrorKind::Other,
        "WrongCloud",
        format!("{} cannot run on this cloud", action.name()),
    )
}

#[async_trait]
impl Executor for Ec2<'_> {
    async fn run(&self, action: &Action) -> Result<(), CloudError> {
        match action {
            Action::RevokeIngress { group_id, rule } => {
                self.0.revoke_ingress(group_id, &rule.id).await
            }
            Action::AuthorizeIngress {
                group_id,
                rule,
                description,
            } => self
                .0
                .authorize_ingress(group_id, rule, description)
                .await
                .map(|_| ()),
            Action::DeleteSecurityRule { .. } => Err(wrong_cloud(action)),
        }
    }
}

/// Carries out each step in order. Dry-run records `planned` and changes nothing.
/// A rule that vanished meanwhile is `skipped: already gone`; any other error is
/// `failed`, and the remaining steps still run (each is independent).
pub async fn act(plan: &Plan, executor: &dyn Executor, dry_run: bool) -> Vec<ActionRecord> {
    let mut records = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        if step.skip.is_some() {
            records.push(ActionRecord::from_step(step, ActionStatus::Skipped));
            continue;
        }
        if dry_run {
            records.push(ActionRecord::from_step(step, ActionStatus::Planned));
            continue;
        }
        let record = match executor.run(&step.action).await {
            Ok(()) => ActionRecord::from_step(step, ActionStatus::Done),
            Err(e) if e.is_not_found() => {
                let mut r = ActionRecord::from_step(step, ActionStatus::Skipped);
                r.reason = ALREADY_GONE.into();
                r
            }
            Err(e) => {
                tracing::warn!(action = step.action.name(), target = step.action.target(), error = %e, "Action failed");
                let mut r = ActionRecord::from_step(step, ActionStatus::Failed);
                r.retryable = e.is_retryable();
                r.error = Some(e.to_string());
                r
            }
        };
        records.push(record);
    }
    records
}
