//! Runs a plan through the [`SecurityGroups`] executor.

use reflex_aws::ec2::SecurityGroups;
use reflex_core::{Action, ActionRecord, ActionStatus, Plan};

use crate::decide::ALREADY_GONE;

/// Carries out each step in order. Dry-run records `planned` and changes nothing.
/// A rule that vanished meanwhile is `skipped: already gone`; any other error is
/// `failed`, and the remaining steps still run (each is independent).
pub async fn act(plan: &Plan, groups: &dyn SecurityGroups, dry_run: bool) -> Vec<ActionRecord> {
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
        let result = match &step.action {
            Action::RevokeIngress { group_id, rule } => {
                groups.revoke_ingress(group_id, &rule.id).await
            }
            Action::AuthorizeIngress {
                group_id,
                rule,
                description,
            } => groups
                .authorize_ingress(group_id, rule, description)
                .await
                .map(|_| ()),
        };
        let record = match result {
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
