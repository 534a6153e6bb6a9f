//! Network security groups through ARM: read an NSG with its rules and tags, and
//! delete exactly one rule.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use reflex_core::{
    Access, CloudError, CloudErrorKind, Direction, NsgRule, NsgState, PortSpan, Protocol, Source,
};
use serde::Deserialize;
use serde_json::Value;

use crate::arm::ArmClient;
use crate::resource::NsgRef;
use reflex_core::ids::ResourceId;

/// The Microsoft.Network API version used for NSGs and their rules.
pub const NETWORK_API_VERSION: &str = "2024-07-01";

/// What `close-open-ports` needs from Azure networking.
#[async_trait]
pub trait NetworkSecurityGroups: Send + Sync {
    /// The NSG with its custom rules and tags as they are now; `None` if it is gone.
    async fn read(&self, nsg: &NsgRef, deadline: Instant) -> Result<Option<NsgState>, CloudError>;
    /// Deletes one rule by id. A rule that is not there is a `NotFound` error.
    async fn delete_rule(&self, rule: &ResourceId, deadline: Instant) -> Result<(), CloudError>;
}

/// The ARM implementation.
#[derive(Debug)]
pub struct ArmNsgs {
    arm: ArmClient,
}

impl ArmNsgs {
    pub fn new(arm: ArmClient) -> Self {
        Self { arm }
    }
}

#[async_trait]
impl NetworkSecurityGroups for ArmNsgs {
    async fn read(&self, nsg: &NsgRef, deadline: Instant) -> Result<Option<NsgState>, CloudError> {
        let id = nsg.resource().map_err(|e| {
            CloudError::new(CloudErrorKind::Other, "InvalidResourceId", e.to_string())
        })?;
        let Some(body) = self.arm.get(&id, NETWORK_API_VERSION, deadline).await? else {
            return Ok(None);
        };
        nsg_state(body).map(Some)
    }

    async fn delete_rule(&self, rule: &ResourceId, deadline: Instant) -> Result<(), CloudError> {
        self.arm.delete(rule, NETWORK_API_VERSION, deadline).await
    }
}

#[derive(Deserialize)]
struct ArmNsg {
    id: String,
    name: String,
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    properties: Option<ArmNsgProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArmNsgProperties {
    #[serde(default)]
    security_rules: Vec<ArmRule>,
}

#[derive(Deserialize)]
struct ArmRule {
    id: String,
    name: String,
    properties: ArmRuleProperties,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArmRuleProperties {
    protocol: String,
    destination_port_range: Option<String>,
    #[serde(default)]
    destination_port_ranges: Vec<String>,
    source_address_prefix: Option<String>,
    #[serde(default)]
    source_address_prefixes: Vec<String>,
    access: String,
    direction: String,
    priority: Option<u32>,
    description: Option<String>,
}

/// Turns ARM's NSG document into the core model. Rules whose fields cannot be
/// understood are an error: guessing could delete the wrong thing.
pub fn nsg_state(body: Value) -> Result<NsgState, CloudError> {
    let invalid = |e: String| CloudError::new(CloudErrorKind::Other, "UnexpectedResponse", e);
    let nsg: ArmNsg = parse_nsg(body).map_err(invalid)?;
    let rules = nsg
        .properties
        .map(|p| p.security_rules)
        .unwrap_or_default()
        .into_iter()
        .map(|r| rule(r).map_err(invalid))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NsgState {
        id: nsg.id,
        name: nsg.name,
        location: nsg.location,
        tags: nsg.tags.unwrap_or_default(),
        rules,
    })
}

fn parse_nsg(body: Value) -> Result<ArmNsg, String> {
    reflex_core::json::typed(body, "").map_err(|e| format!("NSG document: {e}"))
}

fn rule(r: ArmRule) -> Result<NsgRule, String> {
    let p = r.properties;
    let bad = |what: &str, v: &str| format!("rule {}: unexpected {what} '{v}'", r.name);
    let protocol = Protocol::parse(&p.protocol).ok_or_else(|| bad("protocol", &p.protocol))?;
    let ranges: Vec<String> = p
        .destination_port_range
        .into_iter()
        .chain(p.destination_port_ranges)
        .filter(|s| !s.trim().is_empty())
        .collect();
    let ports = ranges
        .iter()
        .map(|s| PortSpan::parse_range(s).ok_or_else(|| bad("port range", s)))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = p
        .source_address_prefix
        .into_iter()
        .chain(p.source_address_prefixes)
        .filter(|s| !s.trim().is_empty())
        .map(|s| Source::parse_cidr(&s).unwrap_or(Source::ServiceTag(s)))
        .collect();
    let access = match p.access.to_ascii_lowercase().as_str() {
        "allow" => Access::Allow,
        "deny" => Access::Deny,
        _ => return Err(bad("access", &p.access)),
    };
    let direction = match p.direction.to_ascii_lowercase().as_str() {
        "inbound" => Direction::Inbound,
        "outbound" => Direction::Outbound,
        _ => return Err(bad("direction", &p.direction)),
    };
    Ok(NsgRule {
        id: r.id,
        name: r.name,
        protocol,
        ports,
        sources,
        access,
        direction,
        priority: p.priority,
        description: p.description.filter(|d| !d.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(rules: &Value) -> Value {
        json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg",
            "name": "nsg", "location": "westeurope", "tags": {"reflex:exempt": "true"},
            "properties": {"securityRules": rules, "defaultSecurityRules": [{"id": "d", "name": "AllowVnetInBound", "properties": {}}]}
        })
    }

    #[test]
    fn arm_rules_map_to_the_model() {
        let s = nsg_state(doc(&json!([{
            "id": "/x/securityRules/allow-ssh-any", "name": "allow-ssh-any",
            "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
              "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Allow",
              "priority": 100, "direction": "Inbound", "destinationPortRanges": [],
              "sourceAddressPrefixes": [], "provisioningState": "Succeeded"}
        }, {
            "id": "/x/securityRules/web", "name": "web",
            "properties": {"protocol": "*", "destinationPortRanges": ["80", "443-444"],
              "sourceAddressPrefixes": ["10.0.0.0/8", "Internet"], "access": "Deny",
              "priority": 200, "direction": "Outbound"}
        }])));
        let s = s.unwrap_or_default();
        assert_eq!(
            s.tags.get("reflex:exempt").map(String::as_str),
            Some("true")
        );
        assert_eq!(s.rules.len(), 2, "default rules are not custom rules");
        assert_eq!(s.rules[0].ports, vec![PortSpan::Range(22, 22)]);
        assert_eq!(s.rules[0].sources, vec![Source::ServiceTag("*".into())]);
        assert_eq!(s.rules[1].protocol, Protocol::All);
        assert_eq!(s.rules[1].access, Access::Deny);
        assert_eq!(s.rules[1].direction, Direction::Outbound);
        assert_eq!(
            s.rules[1]
                .sources
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.0.0.0/8", "Internet"]
        );
    }

    #[test]
    fn a_rule_that_cannot_be_understood_is_an_error_not_a_guess() {
        let e = nsg_state(doc(&json!([{
            "id": "/x/securityRules/r", "name": "r",
            "properties": {"protocol": "Tcp", "destinationPortRange": "ssh",
              "sourceAddressPrefix": "*", "access": "Allow", "direction": "Inbound"}
        }])))
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("UnexpectedResponse: rule r: unexpected port range 'ssh'")
        );
        let e = nsg_state(json!({"id": 1}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("NSG document: id: invalid type"), "{e}");
    }
}
