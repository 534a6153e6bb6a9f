//! The exposure policy: which rules open forbidden ports to the world.

use std::fmt;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::model::{Access, Direction, NsgRule, PortSpan, Protocol, RuleSpec, Source, Tag};

/// A set of ports, kept as sorted, merged inclusive ranges. Parsed from
/// `22,3389,5432-5433`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    /// Parses a comma-separated list of ports and `a-b` ranges. The error says which
    /// item is wrong and why.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (parse_port(a, item)?, parse_port(b, item)?),
                None => {
                    let p = parse_port(item, item)?;
                    (p, p)
                }
            };
            if a > b {
                return Err(format!("'{item}': range start is above its end"));
            }
            ranges.push((a, b));
        }
        if ranges.is_empty() {
            return Err("no ports given".into());
        }
        Ok(Self::from_ranges(ranges))
    }

    /// Builds a set from ranges in any order, merging overlaps and neighbours.
    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Self(merged)
    }

    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }

    /// The parts of this set inside `[from, to]`.
    pub fn within(&self, from: u16, to: u16) -> Vec<(u16, u16)> {
        self.0
            .iter()
            .filter(|(a, b)| *a <= to && *b >= from)
            .map(|(a, b)| ((*a).max(from), (*b).min(to)))
            .collect()
    }

    /// `[from, to]` minus this set: the ranges that stay allowed.
    pub fn remainder(&self, from: u16, to: u16) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut next = u32::from(from);
        for (a, b) in self.within(from, to) {
            if u32::from(a) > next {
                out.push((next as u16, a - 1));
            }
            next = u32::from(b) + 1;
        }
        if next <= u32::from(to) {
            out.push((next as u16, to));
        }
        out
    }
}

fn parse_port(raw: &str, item: &str) -> Result<u16, String> {
    raw.trim()
        .parse::<u16>()
        .map_err(|_| format!("'{item}' is not a port or range (0-65535)"))
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|&(a, b)| fmt_range(a, b)).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for PortSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn fmt_range(a: u16, b: u16) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// Why a rule offends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offence {
    /// The forbidden ports the rule opens.
    pub ports: Vec<(u16, u16)>,
    /// One sentence for people: `tcp/22 open to 0.0.0.0/0 is forbidden`.
    pub reason: String,
}

/// Which rules are forbidden. Built from configuration; see the README's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposurePolicy {
    /// Ports that must never be open to the world.
    pub forbidden_ports: PortSet,
    /// Networks that count as "the world" (default `0.0.0.0/0`, `::/0`).
    #[serde(serialize_with = "nets")]
    pub public_cidrs: Vec<IpNet>,
    /// Sources that never count as public, even when wide.
    #[serde(serialize_with = "nets")]
    pub allowed_cidrs: Vec<IpNet>,
    /// Groups carrying this tag are never touched.
    pub exempt_tag: Tag,
    /// When a wide tcp/udp range is revoked, re-authorise the parts that stay allowed.
    pub reauthorize_remainder: bool,
    /// An IPv4 source at most this long (`/8` by default) counts as public unless it
    /// lies wholly in private or reserved space, so `0.0.0.0/1` + `128.0.0.0/1` cannot
    /// side-step the policy.
    pub public_max_prefix_v4: u8,
    /// The same for IPv6 (`/32` by default: `2000::/3` is public).
    pub public_max_prefix_v6: u8,
}

/// Managed prefix lists by id, with their entries as re-read from the cloud.
pub type PrefixLists = std::collections::BTreeMap<String, Vec<IpNet>>;

/// Serialises prefix lists with their entries as text (`serialize_with`).
pub fn lists<S: Serializer>(v: &PrefixLists, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(
        v.iter()
            .map(|(k, nets)| (k, nets.iter().map(ToString::to_string).collect::<Vec<_>>())),
    )
}

/// Serialises CIDRs as their text (`serialize_with`).
pub fn nets<S: Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

impl Default for ExposurePolicy {
    fn default() -> Self {
        Self {
            forbidden_ports: PortSet::from_ranges(vec![(22, 22), (3389, 3389)]),
            public_cidrs: default_public_cidrs(),
            allowed_cidrs: Vec::new(),
            exempt_tag: Tag {
                key: "reflex:exempt".into(),
                value: "true".into(),
            },
            reauthorize_remainder: false,
            public_max_prefix_v4: DEFAULT_PUBLIC_MAX_PREFIX_V4,
            public_max_prefix_v6: DEFAULT_PUBLIC_MAX_PREFIX_V6,
        }
    }
}

/// The default widest-prefix rule: `/8` for IPv4 and `/32` for IPv6.
pub const DEFAULT_PUBLIC_MAX_PREFIX_V4: u8 = 8;
pub const DEFAULT_PUBLIC_MAX_PREFIX_V6: u8 = 32;

/// Private and reserved space (RFC 6890 and friends): a source wholly inside these
/// reaches no one on the internet, however wide it is.
const NOT_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

fn not_public_space() -> Vec<IpNet> {
    NOT_PUBLIC.iter().filter_map(|s| s.parse().ok()).collect()
}

/// Whether `net` lies wholly inside the union of `space` (CIDRs either nest or are
/// disjoint, so a half-covered net is split until each part is decided).
fn wholly_inside(net: IpNet, space: &[IpNet]) -> bool {
    if space.iter().any(|s| s.contains(&net)) {
        return true;
    }
    if !space.iter().any(|s| net.contains(s)) {
        return false;
    }
    match net.subnets(net.prefix_len().saturating_add(1)) {
        Ok(halves) => halves
            .into_iter()
            .all(|h| h != net && wholly_inside(h, space)),
        Err(_) => false,
    }
}

/// `0.0.0.0/0` and `::/0`.
pub fn default_public_cidrs() -> Vec<IpNet> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl ExposurePolicy {
    /// Whether `source` counts as public, with no prefix list resolved (a prefix list
    /// then never counts). See [`Self::is_public_in`].
    pub fn is_public(&self, source: &Source) -> bool {
        self.is_public_in(source, &PrefixLists::new())
    }

    /// Whether `source` counts as public, and no allowed CIDR contains it. A CIDR is
    /// public when it covers one of the public networks, or when it is wide (at most
    /// `/8` for IPv4, `/32` for IPv6 by default) and not wholly private or reserved. A
    /// managed prefix list is public when any of its entries (in `lists`, as re-read)
    /// is. Group references are never public.
    pub fn is_public_in(&self, source: &Source, lists: &PrefixLists) -> bool {
        match source {
            Source::Cidr(net) => self.is_public_net(*net),
            // Azure's wildcards for "anywhere"; other service tags are Azure-internal.
            Source::ServiceTag(tag) => {
                ["*", "internet", "any"].contains(&tag.to_ascii_lowercase().as_str())
            }
            Source::PrefixList(id) => lists
                .get(id)
                .is_some_and(|entries| entries.iter().any(|n| self.is_public_net(*n))),
            Source::Group(_) => false,
        }
    }

    fn is_public_net(&self, net: IpNet) -> bool {
        if self.allowed_cidrs.iter().any(|a| a.contains(&net)) {
            return false;
        }
        if self.public_cidrs.iter().any(|p| net.contains(p)) {
            return true;
        }
        let widest = match net {
            IpNet::V4(_) => self.public_max_prefix_v4,
            IpNet::V6(_) => self.public_max_prefix_v6,
        };
        net.prefix_len() <= widest && !wholly_inside(net, &not_public_space())
    }

    /// Judges one rule, with no prefix list resolved. See [`Self::evaluate_in`].
    pub fn evaluate(&self, rule: &RuleSpec) -> Option<Offence> {
        self.evaluate_in(rule, &PrefixLists::new())
    }

    /// Judges one rule. A rule offends when its protocol is tcp, udp or all, its
    /// ports cover a forbidden port, and its source is public (prefix lists looked up
    /// in `lists`).
    pub fn evaluate_in(&self, rule: &RuleSpec, lists: &PrefixLists) -> Option<Offence> {
        if !rule.protocol.has_ports() || !self.is_public_in(&rule.source, lists) {
            return None;
        }
        let (from, to) = rule.ports.bounds();
        let hit = self.forbidden_ports.within(from, to);
        if hit.is_empty() {
            return None;
        }
        let what = match (rule.protocol, rule.ports) {
            (Protocol::All, _) => "all traffic".to_string(),
            (p, PortSpan::All) => format!("{p}/all ports"),
            (p, span) => format!("{p}/{span}"),
        };
        let covered: Vec<String> = hit.iter().map(|&(a, b)| fmt_range(a, b)).collect();
        let exact = matches!(rule.ports, PortSpan::Range(a, b) if hit == [(a, b)]);
        let reason = if exact && rule.protocol != Protocol::All {
            format!("{what} open to {} is forbidden", rule.source)
        } else {
            format!(
                "{what} open to {} covers forbidden port {}",
                rule.source,
                covered.join(", ")
            )
        };
        Some(Offence { ports: hit, reason })
    }

    /// Judges an Azure NSG rule: only Inbound Allow rules can offend, and one
    /// offending (port range, source) pair makes the whole rule offend.
    pub fn evaluate_nsg(&self, rule: &NsgRule) -> Option<Offence> {
        if rule.direction != Direction::Inbound || rule.access != Access::Allow {
            return None;
        }
        let offences: Vec<Offence> = rule
            .specs()
            .iter()
            .filter_map(|spec| self.evaluate(spec))
            .collect();
        let first = offences.first()?;
        let mut ports: Vec<(u16, u16)> = offences.iter().flat_map(|o| o.ports.clone()).collect();
        ports.sort_unstable();
        ports.dedup();
        let reason = match offences.len() {
            1 => first.reason.clone(),
            n => format!("{} (and {} more)", first.reason, n - 1),
        };
        Some(Offence { ports, reason })
    }

    /// The allowed parts of an offending tcp/udp rule, to re-authorise when
    /// `reauthorize_remainder` is on. Empty for protocol `-1`: re-opening "the rest of
    /// every protocol" is not expressible as a few rules, so it is revoked whole.
    pub fn remainder(&self, rule: &RuleSpec) -> Vec<RuleSpec> {
        if !self.reauthorize_remainder || !matches!(rule.protocol, Protocol::Tcp | Protocol::Udp) {
            return Vec::new();
        }
        let (from, to) = rule.ports.bounds();
        self.forbidden_ports
            .remainder(from, to)
            .into_iter()
            .map(|(a, b)| RuleSpec::new(rule.protocol, PortSpan::Range(a, b), rule.source.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, from: i64, to: i64, cidr: &str) -> RuleSpec {
        let protocol = Protocol::parse(p).unwrap_or(Protocol::Tcp);
        RuleSpec::new(
            protocol,
            PortSpan::from_ec2(protocol, Some(from), Some(to)),
            Source::parse_cidr(cidr).unwrap_or(Source::Group("sg-x".into())),
        )
    }

    #[test]
    fn port_sets_parse_lists_and_ranges_and_merge() {
        let s = PortSet::parse("3389, 22,5432-5433,5434").map(|s| s.to_string());
        assert_eq!(s.as_deref(), Ok("22,3389,5432-5434"));
    }

    #[test]
    fn port_set_errors_name_the_bad_item() {
        assert_eq!(
            PortSet::parse("22,ssh"),
            Err("'ssh' is not a port or range (0-65535)".to_string())
        );
        assert_eq!(
            PortSet::parse("30-20"),
            Err("'30-20': range start is above its end".to_string())
        );
        assert!(PortSet::parse(" , ").is_err());
        assert!(PortSet::parse("70000").is_err());
    }

    #[test]
    fn remainder_cuts_forbidden_ports_out_of_a_range() {
        let s = PortSet::from_ranges(vec![(22, 22), (3389, 3389)]);
        assert_eq!(
            s.remainder(0, 65535),
            vec![(0, 21), (23, 3388), (3390, 65535)]
        );
        assert_eq!(s.remainder(22, 22), Vec::<(u16, u16)>::new());
        assert_eq!(s.remainder(20, 23), vec![(20, 21), (23, 23)]);
        assert_eq!(s.remainder(0, 0), vec![(0, 0)]);
    }

    #[test]
    fn world_open_ssh_offends_and_says_why() {
        let p = ExposurePolicy::default();
        let o = p.evaluate(&rule("tcp", 22, 22, "0.0.0.0/0"));
        assert_eq!(
            o.map(|o| o.reason),
            Some("tcp/22 open to 0.0.0.0/0 is forbidden".to_string())
        );
    }

    #[test]
    fn ipv6_world_rdp_offends() {
        let p = ExposurePolicy::default();
        assert!(p.evaluate(&rule("tcp", 3389, 3389, "::/0")).is_some());
    }

    #[test]
    fn all_traffic_offends_with_covered_ports() {
        let p = ExposurePolicy::default();
        let o = p.evaluate(&rule("-1", -1, -1, "0.0.0.0/0"));
        assert_eq!(
            o.map(|o| o.reason),
            Some("all traffic open to 0.0.0.0/0 covers forbidden port 22, 3389".to_string())
        );
    }

    #[test]
    fn private_sources_allowed_ports_and_icmp_do_not_offend() {
        let p = ExposurePolicy::default();
        assert!(p.evaluate(&rule("tcp", 22, 22, "10.0.0.0/8")).is_none());
        assert!(p.evaluate(&rule("tcp", 443, 443, "0.0.0.0/0")).is_none());
        assert!(p.evaluate(&rule("icmp", -1, -1, "0.0.0.0/0")).is_none());
        assert!(p.evaluate(&rule("tcp", 23, 3388, "0.0.0.0/0")).is_none());
    }

    #[test]
    fn udp_range_covering_a_forbidden_port_offends() {
        let p = ExposurePolicy::default();
        assert!(p.evaluate(&rule("udp", 3000, 4000, "0.0.0.0/0")).is_some());
    }

    #[test]
    fn allowed_cidrs_never_count_as_public() {
        let mut p = ExposurePolicy::default();
        let wide: IpNet = "0.0.0.0/0".parse().unwrap_or_else(|_| unreachable!());
        p.allowed_cidrs = vec![wide];
        assert!(p.evaluate(&rule("tcp", 22, 22, "0.0.0.0/0")).is_none());
    }

    #[test]
    fn splitting_the_world_does_not_side_step_the_policy() {
        let p = ExposurePolicy::default();
        for world in [
            "0.0.0.0/1",
            "128.0.0.0/1",
            "2000::/3",
            "0.0.0.0/0",
            "::/0",
            "11.0.0.0/8",
        ] {
            assert!(p.evaluate(&rule("tcp", 22, 22, world)).is_some(), "{world}");
        }
        for narrow in [
            "203.0.113.0/24",
            "198.51.0.0/16",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/3",
            "fc00::/7",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ] {
            assert!(
                p.evaluate(&rule("tcp", 22, 22, narrow)).is_none(),
                "{narrow}"
            );
        }
    }

    #[test]
    fn the_widest_prefix_rule_is_configurable_and_allowed_cidrs_still_win() {
        let p = ExposurePolicy {
            public_max_prefix_v4: 16,
            ..ExposurePolicy::default()
        };
        assert!(p.evaluate(&rule("tcp", 22, 22, "198.51.0.0/16")).is_some());
        assert!(p.evaluate(&rule("tcp", 22, 22, "198.51.0.0/17")).is_none());
        let off = ExposurePolicy {
            public_max_prefix_v4: 0,
            public_max_prefix_v6: 0,
            ..ExposurePolicy::default()
        };
        assert!(off.evaluate(&rule("tcp", 22, 22, "0.0.0.0/1")).is_none());
        assert!(off.evaluate(&rule("tcp", 22, 22, "0.0.0.0/0")).is_some());
        let allowed = ExposurePolicy {
            allowed_cidrs: vec!["0.0.0.0/1".parse().unwrap_or_else(|_| unreachable!())],
            ..ExposurePolicy::default()
        };
        assert!(
            allowed
                .evaluate(&rule("tcp", 22, 22, "0.0.0.0/1"))
                .is_none()
        );
    }

    #[test]
    fn a_prefix_list_is_public_when_any_entry_is() {
        let p = ExposurePolicy::default();
        let pl = RuleSpec::new(
            Protocol::Tcp,
            PortSpan::Range(22, 22),
            Source::PrefixList("pl-1".into()),
        );
        let net = |s: &str| s.parse::<IpNet>().unwrap_or_else(|_| unreachable!());
        let mut lists = PrefixLists::new();
        lists.insert("pl-1".into(), vec![net("203.0.113.0/24"), net("0.0.0.0/0")]);
        assert!(p.evaluate_in(&pl, &lists).is_some());
        lists.insert(
            "pl-1".into(),
            vec![net("203.0.113.0/24"), net("10.0.0.0/8")],
        );
        assert!(p.evaluate_in(&pl, &lists).is_none());
    }

    #[test]
    fn splitting_the_world_in_an_nsg_rule_offends_too() {
        let p = ExposurePolicy::default();
        let split = nsg(
            Access::Allow,
            Direction::Inbound,
            &["22"],
            &["0.0.0.0/1", "128.0.0.0/1"],
        );
        assert!(p.evaluate_nsg(&split).is_some());
        let office = nsg(
            Access::Allow,
            Direction::Inbound,
            &["22"],
            &["203.0.113.0/24"],
        );
        assert!(p.evaluate_nsg(&office).is_none());
    }

    #[test]
    fn prefix_lists_and_group_references_are_not_public() {
        let p = ExposurePolicy::default();
        let pl = RuleSpec::new(
            Protocol::Tcp,
            PortSpan::Range(22, 22),
            Source::PrefixList("pl-1".into()),
        );
        let sg = RuleSpec::new(
            Protocol::Tcp,
            PortSpan::Range(22, 22),
            Source::Group("sg-1".into()),
        );
        assert!(p.evaluate(&pl).is_none());
        assert!(p.evaluate(&sg).is_none());
    }

    #[test]
    fn remainder_is_only_for_tcp_and_udp_when_enabled() {
        let mut p = ExposurePolicy::default();
        let wide = rule("tcp", 0, 65535, "0.0.0.0/0");
        assert!(p.remainder(&wide).is_empty());
        p.reauthorize_remainder = true;
        let parts: Vec<String> = p.remainder(&wide).iter().map(RuleSpec::describe).collect();
        assert_eq!(
            parts,
            vec![
                "tcp/0-21 from 0.0.0.0/0",
                "tcp/23-3388 from 0.0.0.0/0",
                "tcp/3390-65535 from 0.0.0.0/0"
            ]
        );
        assert!(p.remainder(&rule("-1", -1, -1, "0.0.0.0/0")).is_empty());
    }

    fn nsg(access: Access, direction: Direction, ports: &[&str], sources: &[&str]) -> NsgRule {
        NsgRule {
            id: "/nsg/securityRules/r".into(),
            name: "r".into(),
            protocol: Protocol::Tcp,
            ports: ports
                .iter()
                .filter_map(|p| PortSpan::parse_range(p))
                .collect(),
            sources: sources
                .iter()
                .map(|s| Source::parse_cidr(s).unwrap_or(Source::ServiceTag((*s).into())))
                .collect(),
            access,
            direction,
            priority: Some(100),
            description: None,
        }
    }

    #[test]
    fn azure_wildcards_are_public_and_other_service_tags_are_not() {
        let p = ExposurePolicy::default();
        for tag in ["*", "Internet", "any", "INTERNET"] {
            assert!(p.is_public(&Source::ServiceTag(tag.into())), "{tag}");
        }
        for tag in ["VirtualNetwork", "AzureLoadBalancer", "Storage"] {
            assert!(!p.is_public(&Source::ServiceTag(tag.into())), "{tag}");
        }
    }

    #[test]
    fn only_inbound_allow_nsg_rules_offend() {
        let p = ExposurePolicy::default();
        let ssh = nsg(Access::Allow, Direction::Inbound, &["22"], &["*"]);
        assert_eq!(
            p.evaluate_nsg(&ssh).map(|o| o.reason),
            Some("tcp/22 open to * is forbidden".into())
        );
        assert!(
            p.evaluate_nsg(&nsg(Access::Deny, Direction::Inbound, &["22"], &["*"]))
                .is_none()
        );
        assert!(
            p.evaluate_nsg(&nsg(Access::Allow, Direction::Outbound, &["22"], &["*"]))
                .is_none()
        );
        assert!(
            p.evaluate_nsg(&nsg(Access::Allow, Direction::Inbound, &["443"], &["*"]))
                .is_none()
        );
        assert!(
            p.evaluate_nsg(&nsg(
                Access::Allow,
                Direction::Inbound,
                &["22"],
                &["10.0.0.0/8"]
            ))
            .is_none()
        );
    }

    #[test]
    fn one_offending_pair_makes_a_multi_valued_nsg_rule_offend() {
        let p = ExposurePolicy::default();
        let rule = nsg(
            Access::Allow,
            Direction::Inbound,
            &["443", "3000-3400", "22"],
            &["10.0.0.0/8", "Internet"],
        );
        let o = p.evaluate_nsg(&rule);
        assert_eq!(
            o.as_ref().map(|o| o.ports.clone()),
            Some(vec![(22, 22), (3389, 3389)])
        );
        assert_eq!(
            o.map(|o| o.reason),
            Some("tcp/3000-3400 open to Internet covers forbidden port 3389 (and 1 more)".into())
        );
    }
}
