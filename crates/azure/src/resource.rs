//! ARM resource ids for network security groups and their rules.
//!
//! Azure reports ids in whatever case they were typed, and Activity Log scopes are
//! often lower-cased, so segments are matched case-insensitively and the id is
//! rebuilt in ARM's canonical casing.

use reflex_core::ids::{IdError, ResourceId};

/// A network security group, and optionally one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgRef {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub rule: Option<String>,
}

impl NsgRef {
    /// Parses `/subscriptions/{guid}/resourceGroups/RG/providers/Microsoft.Network/
    /// networkSecurityGroups/N[/securityRules/R]` by the ARM grammar
    /// ([`ResourceId::parse`]). `Ok(None)` for a well-formed id of another type; an
    /// error for anything that is not a well-formed id at all.
    pub fn parse(id: &str) -> Result<Option<Self>, IdError> {
        let rid = ResourceId::parse(id.trim())?;
        const NS: &str = "Microsoft.Network";
        let rule = if rid.is_type(NS, &["networkSecurityGroups"]) {
            None
        } else if rid.is_type(NS, &["networkSecurityGroups", "securityRules"]) {
            Some(rid.name().to_string())
        } else {
            return Ok(None);
        };
        let names = rid.names();
        Ok(Some(Self {
            subscription: rid.subscription().to_string(),
            resource_group: rid.resource_group().to_string(),
            name: names.first().map(|n| (*n).to_string()).unwrap_or_default(),
            rule,
        }))
    }

    /// The NSG as a checked resource id.
    pub fn resource(&self) -> Result<ResourceId, IdError> {
        ResourceId::parse(&self.nsg_id())
    }

    /// The NSG's id in canonical casing.
    pub fn nsg_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// The id of rule `name` in this NSG.
    pub fn rule_id(&self, name: &str) -> String {
        format!("{}/securityRules/{name}", self.nsg_id())
    }

    /// The Azure portal page of the NSG.
    pub fn portal_link(&self) -> String {
        format!("https://portal.azure.com/#@/resource{}", self.nsg_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_scopes_parse_in_any_case() {
        let r = NsgRef::parse(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-web/providers/microsoft.network/\
             networksecuritygroups/nsg-web/securityrules/allow-ssh-any",
        )
        .ok()
        .flatten();
        assert_eq!(
            r,
            Some(NsgRef {
                subscription: "00000000-0000-0000-0000-000000000000".into(),
                resource_group: "rg-web".into(),
                name: "nsg-web".into(),
                rule: Some("allow-ssh-any".into()),
            })
        );
        assert_eq!(
            r.map(|r| r.rule_id("allow-ssh-any")).as_deref(),
            Some(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Network/\
                 networkSecurityGroups/nsg-web/securityRules/allow-ssh-any"
            )
        );
    }

    #[test]
    fn nsg_scopes_parse_without_a_rule() {
        let r = NsgRef::parse(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n",
        )
        .ok()
        .flatten();
        assert_eq!(r.as_ref().map(|r| r.rule.clone()), Some(None));
        assert_eq!(
            r.map(|r| r.portal_link()).as_deref(),
            Some(
                "https://portal.azure.com/#@/resource/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/\
                 providers/Microsoft.Network/networkSecurityGroups/n"
            )
        );
    }

    #[test]
    fn other_resources_are_not_nsgs() {
        for id in [
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n/defaultSecurityRules/x",
        ] {
            assert_eq!(NsgRef::parse(id), Ok(None), "{id}");
        }
    }

    #[test]
    fn malformed_or_hostile_ids_are_errors_not_nsgs() {
        for id in [
            "",
            "/subscriptions/00000000-0000-0000-0000-000000000000",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n",
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n?x=1",
            "@evil.example/providers/Microsoft.Network/networkSecurityGroups/n",
        ] {
            assert!(NsgRef::parse(id).is_err(), "{id}");
        }
    }
}
