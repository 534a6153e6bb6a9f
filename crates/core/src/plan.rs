//! Plans: the actions `decide` chose, in order.

use crate::model::{NsgRule, RuleSpec, SgRule};

/// One change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Revoke exactly one ingress rule, by id.
    RevokeIngress { group_id: String, rule: SgRule },
    /// Authorise an ingress rule (the allowed remainder of a revoked wide rule).
    AuthorizeIngress {
        group_id: String,
        rule: RuleSpec,
        description: String,
    },
    /// Delete exactly one Azure NSG security rule. No Deny is added on top.
    DeleteSecurityRule { nsg_id: String, rule: NsgRule },
}

impl Action {
    /// The outcome's `action` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RevokeIngress { .. } => "revoke_ingress",
            Self::AuthorizeIngress { .. } => "authorize_ingress",
            Self::DeleteSecurityRule { .. } => "delete_security_rule",
        }
    }

    /// The resource acted on.
    pub fn target(&self) -> &str {
        match self {
            Self::RevokeIngress { group_id, .. } | Self::AuthorizeIngress { group_id, .. } => {
                group_id
            }
            Self::DeleteSecurityRule { nsg_id, .. } => nsg_id,
        }
    }

    /// The outcome's `detail` object.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::RevokeIngress { rule, .. } => rule.to_json(),
            Self::DeleteSecurityRule { rule, .. } => rule.to_json(),
            Self::AuthorizeIngress {
                rule, description, ..
            } => {
                let mut v = rule.to_json();
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("description".into(), description.clone().into());
                }
                v
            }
        }
    }
}

/// A planned step: an action to run, or one already known to be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    /// Why the policy wants this.
    pub reason: String,
    /// `Some(why)` when the step must not run (exempt group, rule already gone).
    pub skip: Option<String>,
}

/// What `decide` wants done, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn push(&mut self, action: Action, reason: impl Into<String>) {
        self.steps.push(Step {
            action,
            reason: reason.into(),
            skip: None,
        });
    }

    pub fn skip(&mut self, action: Action, reason: impl Into<String>, why: impl Into<String>) {
        self.steps.push(Step {
            action,
            reason: reason.into(),
            skip: Some(why.into()),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
