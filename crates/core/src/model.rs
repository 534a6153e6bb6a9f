//! Cloud-neutral resource model: security-group rules and their parts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

/// An IP protocol as a firewall rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Every protocol (`-1` in EC2, `*` in Azure).
    All,
    /// Any other IP protocol number.
    Number(u8),
}

impl Protocol {
    /// Parses EC2 / Azure spellings: `tcp`, `6`, `-1`, `all`, `*`, `icmpv6`, `58`, …
    pub fn parse(raw: &str) -> Option<Self> {
        let p = raw.trim().to_ascii_lowercase();
        Some(match p.as_str() {
            "tcp" | "6" => Self::Tcp,
            "udp" | "17" => Self::Udp,
            "icmp" | "1" => Self::Icmp,
            "icmpv6" | "58" => Self::Icmpv6,
            "-1" | "all" | "*" => Self::All,
            "esp" => Self::Number(50),
            "ah" => Self::Number(51),
            other => Self::Number(other.parse().ok()?),
        })
    }

    /// Whether the protocol carries ports at all (tcp, udp, or everything).
    pub fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp | Self::All)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp => f.write_str("tcp"),
            Self::Udp => f.write_str("udp"),
            Self::Icmp => f.write_str("icmp"),
            Self::Icmpv6 => f.write_str("icmpv6"),
            Self::All => f.write_str("-1"),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The ports a rule opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSpan {
    /// Every port (protocol `-1`, or tcp/udp with no range given).
    All,
    /// An inclusive range.
    Range(u16, u16),
}

impl PortSpan {
    /// Builds the span from EC2's signed `fromPort`/`toPort` (where `-1` means all).
    pub fn from_ec2(protocol: Protocol, from: Option<i64>, to: Option<i64>) -> Self {
        if protocol == Protocol::All {
            return Self::All;
        }
        match (from.and_then(port), to.and_then(port)) {
            (Some(a), Some(b)) if a <= b => Self::Range(a, b),
            (Some(a), None) => Self::Range(a, a),
            _ => Self::All,
        }
    }

    /// Inclusive bounds; `All` is 0–65535.
    pub fn bounds(self) -> (u16, u16) {
        match self {
            Self::All => (0, u16::MAX),
            Self::Range(a, b) => (a, b),
        }
    }

    /// Parses an Azure port range: `22`, `1000-2000` or `*`. `None` when malformed.
    pub fn parse_range(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw == "*" {
            return Some(Self::All);
        }
        let (a, b) = raw.split_once('-').unwrap_or((raw, raw));
        let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
        (a <= b).then_some(if (a, b) == (0, u16::MAX) {
            Self::All
        } else {
            Self::Range(a, b)
        })
    }

    /// EC2's signed representation: `-1`/`-1` for all.
    pub fn ec2_bounds(self) -> (i32, i32) {
        match self {
            Self::All => (-1, -1),
            Self::Range(a, b) => (i32::from(a), i32::from(b)),
        }
    }
}

fn port(n: i64) -> Option<u16> {
    u16::try_from(n).ok()
}

impl fmt::Display for PortSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all ports"),
            Self::Range(a, b) if a == b => write!(f, "{a}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// Where traffic a rule admits comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Cidr(IpNet),
    /// A managed prefix list (`pl-…`).
    PrefixList(String),
    /// Another security group (`sg-…`), possibly in another account.
    Group(String),
    /// An Azure service tag or wildcard: `*`, `Internet`, `Any`, `VirtualNetwork`, …
    ServiceTag(String),
}

impl Source {
    /// Parses a CIDR; a bare address is taken as a host route.
    pub fn parse_cidr(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if let Ok(net) = raw.parse::<IpNet>() {
            return Some(Self::Cidr(net.trunc()));
        }
        raw.parse::<IpAddr>()
            .ok()
            .map(|ip| Self::Cidr(IpNet::from(ip)))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cidr(net) => write!(f, "{net}"),
            Self::PrefixList(id) | Self::Group(id) | Self::ServiceTag(id) => f.write_str(id),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a rule opens, independent of its identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    pub protocol: Protocol,
    pub ports: PortSpan,
    pub source: Source,
}

impl Serialize for RuleSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl RuleSpec {
    pub fn new(protocol: Protocol, ports: PortSpan, source: Source) -> Self {
        Self {
            protocol,
            ports,
            source,
        }
    }

    pub fn span(&self) -> PortSpan {
        self.ports
    }

    /// The outcome's rule detail: `protocol`, `from_port`, `to_port`, and `cidr` (or
    /// `prefix_list_id` / `source_group_id`).
    pub fn to_json(&self) -> serde_json::Value {
        let (from, to) = self.ports.ec2_bounds();
        let mut m = serde_json::Map::new();
        m.insert("protocol".into(), self.protocol.to_string().into());
        m.insert("from_port".into(), from.into());
        m.insert("to_port".into(), to.into());
        let (key, value) = match &self.source {
            Source::Cidr(net) => ("cidr", net.to_string()),
            Source::PrefixList(id) => ("prefix_list_id", id.clone()),
            Source::Group(id) => ("source_group_id", id.clone()),
            Source::ServiceTag(tag) => ("service_tag", tag.clone()),
        };
        m.insert(key.into(), value.into());
        serde_json::Value::Object(m)
    }

    /// `tcp/22 from 0.0.0.0/0`, `all traffic from ::/0`.
    pub fn describe(&self) -> String {
        match (self.protocol, self.span()) {
            (Protocol::All, _) => format!("all traffic from {}", self.source),
            (p, span) if p.has_ports() => format!("{p}/{span} from {}", self.source),
            (p, _) => format!("{p} from {}", self.source),
        }
    }
}

/// One ingress rule as the cloud reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgRule {
    /// `sgr-…` on AWS; the rule's name on Azure.
    pub id: String,
    pub spec: RuleSpec,
    pub description: Option<String>,
}

impl SgRule {
    /// The outcome's rule detail: `rule_id` plus the spec's fields.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.spec.to_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("rule_id".into(), self.id.clone().into());
            if let Some(d) = &self.description {
                m.insert("description".into(), d.clone().into());
            }
        }
        v
    }
}

impl Serialize for SgRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A key=value tag, e.g. the exemption tag `reflex:exempt=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    /// Whether `tags` carry this tag exactly (key and value; values compare
    /// case-insensitively so `True` counts as `true`).
    pub fn is_on(&self, tags: &BTreeMap<String, String>) -> bool {
        tags.get(&self.key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(&self.value))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A security group (or NSG) as re-read from the cloud just before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GroupState {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub ingress: Vec<SgRule>,
    /// The managed prefix lists the ingress rules reference, with their entries as
    /// re-read (a list that contains `0.0.0.0/0` opens the rule to the world).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "crate::policy::lists"
    )]
    pub prefix_lists: crate::policy::PrefixLists,
}

impl GroupState {
    /// Whether the group carries `tag` exactly (key and value; values compare
    /// case-insensitively so `True` counts as `true`).
    pub fn has_tag(&self, tag: &Tag) -> bool {
        tag.is_on(&self.tags)
    }
}

/// Whether an NSG rule admits or blocks traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Access {
    Allow,
    Deny,
}

/// Which traffic an NSG rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// One Azure NSG security rule, as ARM reports it now. Unlike an EC2 rule it can
/// name several port ranges and several sources; deleting it removes all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgRule {
    /// The rule's ARM resource id.
    pub id: String,
    pub name: String,
    pub protocol: Protocol,
    /// `destinationPortRange` / `destinationPortRanges`.
    pub ports: Vec<PortSpan>,
    /// `sourceAddressPrefix` / `sourceAddressPrefixes`.
    pub sources: Vec<Source>,
    pub access: Access,
    pub direction: Direction,
    pub priority: Option<u32>,
    pub description: Option<String>,
}

impl NsgRule {
    /// Every (port range, source) pair the rule opens, for the policy.
    pub fn specs(&self) -> Vec<RuleSpec> {
        self.ports
            .iter()
            .flat_map(|&ports| {
                self.sources
                    .iter()
                    .map(move |source| RuleSpec::new(self.protocol, ports, source.clone()))
            })
            .collect()
    }

    /// The outcome's rule detail.
    pub fn to_json(&self) -> serde_json::Value {
        let protocol = match self.protocol {
            Protocol::All => "*".to_string(),
            p => p.to_string(),
        };
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|p| match p {
                PortSpan::All => "*".to_string(),
                span => span.to_string(),
            })
            .collect();
        let sources: Vec<String> = self.sources.iter().map(ToString::to_string).collect();
        let mut v = serde_json::json!({
            "rule_id": self.id,
            "name": self.name,
            "protocol": protocol,
            "destination_ports": ports,
            "sources": sources,
            "access": self.access,
            "direction": self.direction,
        });
        if let serde_json::Value::Object(m) = &mut v {
            if let Some(p) = self.priority {
                m.insert("priority".into(), p.into());
            }
            if let Some(d) = &self.description {
                m.insert("description".into(), d.clone().into());
            }
        }
        v
    }
}

/// An Azure network security group as re-read through ARM just before deciding.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct NsgState {
    /// The NSG's ARM resource id.
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Custom rules only: the default rules cannot be deleted and never offend.
    #[serde(skip)]
    pub rules: Vec<NsgRule>,
}

impl NsgState {
    pub fn has_tag(&self, tag: &Tag) -> bool {
        tag.is_on(&self.tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_in_every_spelling() {
        assert_eq!(Protocol::parse("TCP"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("6"), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse("-1"), Some(Protocol::All));
        assert_eq!(Protocol::parse("*"), Some(Protocol::All));
        assert_eq!(Protocol::parse("50"), Some(Protocol::Number(50)));
        assert_eq!(Protocol::parse("bogus"), None);
        assert_eq!(Protocol::parse("300"), None);
    }

    #[test]
    fn ec2_port_spans_treat_minus_one_as_all() {
        assert_eq!(
            PortSpan::from_ec2(Protocol::All, Some(-1), Some(-1)),
            PortSpan::All
        );
        assert_eq!(
            PortSpan::from_ec2(Protocol::Tcp, Some(22), Some(22)),
            PortSpan::Range(22, 22)
        );
        assert_eq!(
            PortSpan::from_ec2(Protocol::Tcp, Some(-1), Some(-1)),
            PortSpan::All
        );
        assert_eq!(
            PortSpan::from_ec2(Protocol::Tcp, Some(70000), Some(1)),
            PortSpan::All
        );
    }

    #[test]
    fn azure_port_ranges_parse() {
        assert_eq!(PortSpan::parse_range("22"), Some(PortSpan::Range(22, 22)));
        assert_eq!(
            PortSpan::parse_range(" 1000-2000 "),
            Some(PortSpan::Range(1000, 2000))
        );
        assert_eq!(PortSpan::parse_range("*"), Some(PortSpan::All));
        assert_eq!(PortSpan::parse_range("0-65535"), Some(PortSpan::All));
        assert_eq!(PortSpan::parse_range("30-20"), None);
        assert_eq!(PortSpan::parse_range("ssh"), None);
        assert_eq!(PortSpan::parse_range("70000"), None);
    }

    #[test]
    fn an_nsg_rule_opens_every_port_and_source_pair() {
        let rule = NsgRule {
            id: "/x/securityRules/r".into(),
            name: "r".into(),
            protocol: Protocol::Tcp,
            ports: vec![PortSpan::Range(22, 22), PortSpan::Range(3389, 3389)],
            sources: vec![
                Source::ServiceTag("Internet".into()),
                Source::parse_cidr("10.0.0.0/8").unwrap_or(Source::ServiceTag("x".into())),
            ],
            access: Access::Allow,
            direction: Direction::Inbound,
            priority: Some(100),
            description: None,
        };
        let specs: Vec<String> = rule.specs().iter().map(RuleSpec::describe).collect();
        assert_eq!(
            specs,
            [
                "tcp/22 from Internet",
                "tcp/22 from 10.0.0.0/8",
                "tcp/3389 from Internet",
                "tcp/3389 from 10.0.0.0/8"
            ]
        );
        assert_eq!(
            rule.to_json()["destination_ports"],
            serde_json::json!(["22", "3389"])
        );
    }

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(
            Source::parse_cidr("10.1.2.3/8").map(|s| s.to_string()),
            Some("10.0.0.0/8".to_string())
        );
        assert_eq!(
            Source::parse_cidr("::/0").map(|s| s.to_string()),
            Some("::/0".to_string())
        );
        assert_eq!(Source::parse_cidr("not-a-cidr"), None);
    }

    #[test]
    fn exempt_tag_matches_key_and_value() {
        let mut g = GroupState::default();
        let tag = Tag {
            key: "reflex:exempt".into(),
            value: "true".into(),
        };
        assert!(!g.has_tag(&tag));
        g.tags.insert("reflex:exempt".into(), "false".into());
        assert!(!g.has_tag(&tag));
        g.tags.insert("reflex:exempt".into(), "True".into());
        assert!(g.has_tag(&tag));
    }
}
