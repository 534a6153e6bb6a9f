//! ARM resource ids for network security groups and their rules.
//!
//! Azure reports ids in whatever case they were typed, and Activity Log scopes are
//! often lower-cased, so segments are matched case-insensitively and the id is
//! rebuilt in ARM's canonical casing.

/// A network security group, and optionally one of its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgRef {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub rule: Option<String>,
}

impl NsgRef {
    /// Parses `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/
    /// networkSecurityGroups/N[/securityRules/R]`. `None` for anything else.
    pub fn parse(id: &str) -> Option<Self> {
        let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
        let is = |i: usize, want: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(want));
        let named = |i: usize| {
            parts
                .get(i)
                .filter(|p| !p.is_empty())
                .map(|p| (*p).to_string())
        };
        if !(is(0, "subscriptions")
            && is(2, "resourceGroups")
            && is(4, "providers")
            && is(5, "Microsoft.Network")
            && is(6, "networkSecurityGroups"))
        {
            return None;
        }
        let rule = match parts.len() {
            8 => None,
            10 if is(8, "securityRules") => Some(named(9)?),
            _ => return None,
        };
        Some(Self {
            subscription: named(1)?,
            resource_group: named(3)?,
            name: named(7)?,
            rule,
        })
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
            "/subscriptions/0000/resourcegroups/rg-web/providers/microsoft.network/\
             networksecuritygroups/nsg-web/securityrules/allow-ssh-any",
        );
        assert_eq!(
            r,
            Some(NsgRef {
                subscription: "0000".into(),
                resource_group: "rg-web".into(),
                name: "nsg-web".into(),
                rule: Some("allow-ssh-any".into()),
            })
        );
        assert_eq!(
            r.map(|r| r.rule_id("allow-ssh-any")).as_deref(),
            Some(
                "/subscriptions/0000/resourceGroups/rg-web/providers/Microsoft.Network/\
                 networkSecurityGroups/nsg-web/securityRules/allow-ssh-any"
            )
        );
    }

    #[test]
    fn nsg_scopes_parse_without_a_rule() {
        let r = NsgRef::parse(
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n",
        );
        assert_eq!(r.as_ref().map(|r| r.rule.clone()), Some(None));
        assert_eq!(
            r.map(|r| r.portal_link()).as_deref(),
            Some(
                "https://portal.azure.com/#@/resource/subscriptions/0000/resourceGroups/rg/\
                 providers/Microsoft.Network/networkSecurityGroups/n"
            )
        );
    }

    #[test]
    fn other_resources_are_not_nsgs() {
        for id in [
            "",
            "/subscriptions/0000",
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n/defaultSecurityRules/x",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n",
        ] {
            assert_eq!(NsgRef::parse(id), None, "{id}");
        }
    }
}
