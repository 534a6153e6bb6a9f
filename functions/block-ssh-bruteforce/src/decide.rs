//! Per source: block, report, or leave alone. Pure: the lines, what earlier
//! deliveries counted, the policy and the time in; a verdict out.
//!
//! A source is an IPv4 address, or the IPv6 prefix (`REFLEX_SSH_IPV6_PREFIX`, /64 by
//! default) an address belongs to: one host usually holds a whole /64, so counting
//! and blocking single IPv6 addresses would let it rotate under the threshold and
//! use up the rule numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reflex_aws::nacl::AclEntry;
use serde::{Deserialize, Serialize};

use crate::sshd::{Line, What};

/// The thresholds and exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// This many failures within `window_secs` block the source.
    pub max_failures: usize,
    pub window_secs: i64,
    /// Never blocked (nor a source prefix that overlaps one of them).
    #[serde(serialize_with = "reflex_core::policy::nets")]
    pub allowed: Vec<IpNet>,
    /// Block private, loopback and link-local sources too.
    pub block_private: bool,
    /// IPv6 sources are counted and blocked as this prefix (48 to 128).
    pub ipv6_prefix: u8,
}

/// One failure: when (epoch seconds), and the log event it came from (`ID#k` for the
/// k-th repeat of a folded line). Failures are told apart by event, not by time: a
/// redelivered line counts once, two failures in the same second count two.
pub type Failure = (i64, String);

/// What one source did in this delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Source {
    pub failures: Vec<Failure>,
    pub users: BTreeSet<String>,
    /// `(user, method)` of each successful login.
    pub accepted: Vec<(String, String)>,
    /// The addresses seen (more than one only in an IPv6 prefix).
    pub addresses: BTreeSet<IpAddr>,
}

/// The source an address counts for: itself (IPv4), or its IPv6 prefix.
pub fn source_net(ip: IpAddr, ipv6_prefix: u8) -> IpNet {
    match ip {
        IpAddr::V4(v) => IpNet::V4(Ipv4Net::from(v)),
        IpAddr::V6(v) => {
            Ipv6Net::new(v, ipv6_prefix.min(128)).map_or(IpNet::from(ip), |n| IpNet::V6(n.trunc()))
        }
    }
}

/// A source as people read it: the address alone for a single address, else the CIDR.
pub fn show(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Groups a delivery's lines (`(epoch seconds, event id, line)`) by source and counts
/// authentication failures: each `Failed …` line is one (a folded `message repeated N
/// times` line is N). A connection (one sshd pid; the address and port when the pid
/// is unknown) that ended without any `Failed` line (`Invalid user`, a `[preauth]`
/// close, `maximum authentication attempts exceeded`) is one, however many such
/// lines it wrote.
pub fn tally(lines: &[(i64, &str, Line)], ipv6_prefix: u8) -> BTreeMap<IpNet, Source> {
    let mut out: BTreeMap<IpNet, Source> = BTreeMap::new();
    // connection → (a `Failed` line seen, its first connection-level failure)
    type Conn = (IpAddr, Option<u32>, u16);
    let mut conns: BTreeMap<Conn, (bool, Option<Failure>)> = BTreeMap::new();
    for (at, id, l) in lines {
        let s = out.entry(source_net(l.ip, ipv6_prefix)).or_default();
        s.addresses.insert(l.ip);
        let conn = (l.ip, l.pid, if l.pid.is_some() { 0 } else { l.port });
        match &l.what {
            What::FailedAttempt { user, .. } => {
                s.users.insert(user.clone());
                s.failures.push((*at, (*id).to_string()));
                s.failures
                    .extend((1..l.times).map(|k| (*at, format!("{id}#{k}"))));
                conns.entry(conn).or_default().0 = true;
            }
            What::FailedConnection { user } => {
                if let Some(u) = user {
                    s.users.insert(u.clone());
                }
                let c = conns.entry(conn).or_default();
                c.1.get_or_insert_with(|| (*at, (*id).to_string()));
            }
            What::Accepted { user, method } => s.accepted.push((user.clone(), method.clone())),
        }
    }
    for ((ip, _, _), (attempted, first)) in conns {
        if let (false, Some(f)) = (attempted, first) {
            out.entry(source_net(ip, ipv6_prefix))
                .or_default()
                .failures
                .push(f);
        }
    }
    for s in out.values_mut() {
        s.failures.sort_unstable();
    }
    out
}

/// Earlier and new failures, each event once, by time.
fn merged(earlier: &[Failure], new: &[Failure]) -> Vec<Failure> {
    let by_id: BTreeMap<&str, i64> = earlier
        .iter()
        .chain(new)
        .map(|(t, id)| (id.as_str(), *t))
        .collect();
    let mut all: Vec<Failure> = by_id
        .into_iter()
        .map(|(id, t)| (t, id.to_string()))
        .collect();
    all.sort_unstable();
    all
}

/// The most failures within any `window` seconds (`times` sorted).
pub fn peak(times: &[i64], window: i64) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].saturating_sub(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// What the next delivery needs to know: the failures of the last window, and at
/// most the latest `max_failures` of them (any later window holds a suffix of them,
/// so this keeps every verdict the same while the record stays small).
pub fn remember(earlier: &[Failure], source: &Source, policy: &Policy) -> Vec<Failure> {
    let all = merged(earlier, &source.failures);
    let latest = all.last().map_or(0, |f| f.0);
    let mut kept: Vec<Failure> = all
        .into_iter()
        .filter(|(t, _)| latest.saturating_sub(*t) < policy.window_secs)
        .collect();
    let excess = kept.len().saturating_sub(policy.max_failures);
    kept.drain(..excess);
    kept
}

/// What to do about one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Block {
        failures: usize,
    },
    /// Failures, then a successful login: report it, do not block (it may be a
    /// person who mistyped, or stolen credentials; a person must look).
    Report {
        failures: usize,
        users: Vec<String>,
    },
    Ignore {
        reason: String,
    },
}

fn is_private(net: &IpNet) -> bool {
    match net {
        // 100.64.0.0/10 is carrier-grade NAT (RFC 6598): shared, not public.
        IpNet::V4(n) => {
            let v = n.network();
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
        }
        // ::/64 holds the loopback, the unspecified and the IPv4-compatible addresses.
        IpNet::V6(n) => {
            let v = n.network();
            v.is_loopback()
                || v.is_unique_local()
                || v.is_unicast_link_local()
                || v.segments()[..4] == [0; 4]
        }
    }
}

/// The verdict for source `net`, given this delivery's `source` and the failures
/// earlier deliveries recorded (`earlier`).
pub fn decide(net: IpNet, source: &Source, earlier: &[Failure], policy: &Policy) -> Verdict {
    let ignore = |reason: String| Verdict::Ignore { reason };
    let shown = show(&net);
    if let Some(a) = policy
        .allowed
        .iter()
        .find(|a| a.contains(&net) || net.contains(*a))
    {
        return ignore(format!(
            "{shown} is in or overlaps {a} of REFLEX_ALLOWED_CIDRS"
        ));
    }
    if !policy.block_private && is_private(&net) {
        return ignore(format!(
            "{shown} is a private address (REFLEX_SSH_BLOCK_PRIVATE is off)"
        ));
    }
    let times: Vec<i64> = merged(earlier, &source.failures)
        .iter()
        .map(|f| f.0)
        .collect();
    let failures = peak(&times, policy.window_secs);
    if failures < policy.max_failures {
        return ignore(format!(
            "{shown}: {failures} failure(s) within {} s, below {}",
            policy.window_secs, policy.max_failures
        ));
    }
    if !source.accepted.is_empty() {
        return Verdict::Report {
            failures,
            users: source.accepted.iter().map(|(u, _)| u.clone()).collect(),
        };
    }
    Verdict::Block { failures }
}

/// Whether two CIDR texts name the same network (an entry read back may be written
/// differently from the one sent).
pub fn same_cidr(a: &str, b: &str) -> bool {
    match (a.parse::<IpNet>(), b.parse::<IpNet>()) {
        (Ok(x), Ok(y)) => x.trunc() == y.trunc(),
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// Where to put the DENY: `Ok(rule)` for the lowest free number in `range`,
/// `Err(Some(rule))` when an entry in the range already denies `cidr`, `Err(None)`
/// when the range is full.
pub fn allocate(inbound: &[AclEntry], range: (i32, i32), cidr: &str) -> Result<i32, Option<i32>> {
    let ours = |e: &&AclEntry| (range.0..=range.1).contains(&e.rule_number);
    if let Some(e) = inbound
        .iter()
        .filter(ours)
        .find(|e| e.action == "deny" && same_cidr(&e.cidr, cidr))
    {
        return Err(Some(e.rule_number));
    }
    let used: BTreeSet<i32> = inbound.iter().map(|e| e.rule_number).collect();
    (range.0..=range.1).find(|n| !used.contains(n)).ok_or(None)
}

/// One block, recorded in the store before it is made and kept until the sweep
/// removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// `nacl` (the entry `rule` of ACL `acl`) or `wafv2` (IP set ARN `acl`).
    #[serde(default = "nacl")]
    pub target: String,
    /// The source as shown (an address, or an IPv6 prefix).
    pub ip: String,
    pub cidr: String,
    pub acl: String,
    pub rule: i32,
    pub instance: String,
    /// Epoch seconds.
    pub expires_at: i64,
    pub failures: usize,
}

pub(crate) fn nacl() -> String {
    "nacl".into()
}

/// Whether `inbound` still holds block `b`'s entry as Reflex made it: rule `b.rule`
/// in `range`, a DENY of the same CIDR.
pub fn in_place(b: &Block, inbound: &[AclEntry], range: (i32, i32)) -> bool {
    (range.0..=range.1).contains(&b.rule)
        && inbound
            .iter()
            .any(|e| e.rule_number == b.rule && e.action == "deny" && same_cidr(&e.cidr, &b.cidr))
}

/// When the rule range of `acl` is full: the Reflex block that makes way, the oldest
/// recorded one (earliest expiry) whose entry is still in place in that ACL.
pub fn oldest<'a>(
    blocks: &'a [(String, Block)],
    acl: &str,
    inbound: &[AclEntry],
    range: (i32, i32),
) -> Option<&'a (String, Block)> {
    blocks
        .iter()
        .filter(|(_, b)| b.target == "nacl" && b.acl == acl && in_place(b, inbound, range))
        .min_by_key(|(_, b)| (b.expires_at, b.rule))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sshd::parse;

    fn policy() -> Policy {
        Policy {
            max_failures: 10,
            window_secs: 300,
            allowed: vec!["198.51.100.0/24".parse().unwrap()],
            block_private: false,
            ipv6_prefix: 64,
        }
    }

    fn defaults() -> Policy {
        crate::Config::from_lookup(&reflex_core::settings::from_pairs(&[]))
            .unwrap()
            .policy
    }

    /// Lines one second apart, event ids `e0`, `e1`, …
    fn lines(raw: &[&str]) -> Vec<(i64, String, Line)> {
        raw.iter()
            .enumerate()
            .map(|(i, l)| {
                let i = i64::try_from(i).unwrap();
                (1000 + i, format!("e{i}"), parse(l).unwrap())
            })
            .collect()
    }

    fn tally_of(lines: &[(i64, String, Line)], prefix: u8) -> BTreeMap<IpNet, Source> {
        let v: Vec<(i64, &str, Line)> = lines
            .iter()
            .map(|(t, id, l)| (*t, id.as_str(), l.clone()))
            .collect();
        tally(&v, prefix)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn failures(times: impl IntoIterator<Item = i64>) -> Vec<Failure> {
        times.into_iter().map(|t| (t, format!("f{t}"))).collect()
    }

    #[test]
    fn one_attempt_logged_three_ways_counts_once() {
        let t = tally_of(
            &lines(&[
                "Nov 24 10:15:00 h sshd[7]: Invalid user oracle from 203.0.113.7 port 5",
                "Nov 24 10:15:00 h sshd[7]: Failed password for invalid user oracle from 203.0.113.7 port 5 ssh2",
                "Nov 24 10:15:00 h sshd[7]: Connection closed by invalid user oracle 203.0.113.7 port 5 [preauth]",
                "Nov 24 10:15:01 h sshd[8]: Connection closed by authenticating user root 203.0.113.7 port 6 [preauth]",
            ]),
            64,
        );
        let s = &t[&net("203.0.113.7/32")];
        assert_eq!(
            s.failures.len(),
            2,
            "one failed attempt, one connection without one"
        );
        assert_eq!(s.users.iter().collect::<Vec<_>>(), ["oracle", "root"]);
    }

    #[test]
    fn failures_are_counted_not_connections() {
        let t = tally_of(
            &lines(&[
                // One connection, three passwords tried, then MaxAuthTries: three.
                "Nov 24 10:15:00 h sshd[7]: Failed password for root from 203.0.113.7 port 5 ssh2",
                "Nov 24 10:15:00 h sshd[7]: Failed password for root from 203.0.113.7 port 5 ssh2",
                "Nov 24 10:15:00 h sshd[7]: message repeated 2 times: [ Failed password for root from 203.0.113.7 port 5 ssh2]",
                "Nov 24 10:15:00 h sshd[7]: error: maximum authentication attempts exceeded for root from 203.0.113.7 port 5 ssh2 [preauth]",
                "Nov 24 10:15:00 h sshd[7]: Disconnected from authenticating user root 203.0.113.7 port 5 [preauth]",
                // A connection without an attempt, logged twice: one.
                "Nov 24 10:15:01 h sshd[8]: Invalid user a from 203.0.113.7 port 6",
                "Nov 24 10:15:01 h sshd[8]: Connection closed by invalid user a 203.0.113.7 port 6 [preauth]",
                // Without a pid, the address and port name the connection.
                "Nov 24 10:15:02 h sshd: Invalid user b from 203.0.113.7 port 9",
                "Nov 24 10:15:02 h sshd: Connection closed by invalid user b 203.0.113.7 port 9 [preauth]",
            ]),
            64,
        );
        assert_eq!(t[&net("203.0.113.7/32")].failures.len(), 4 + 1 + 1);
    }

    #[test]
    fn failures_in_the_same_second_count_apart_and_a_redelivered_one_counts_once() {
        let ip = net("203.0.113.7/32");
        let same: Vec<Failure> = (0..10).map(|i| (1000, format!("e{i}"))).collect();
        let burst = Source {
            failures: same.clone(),
            ..Source::default()
        };
        assert_eq!(
            decide(ip, &burst, &[], &policy()),
            Verdict::Block { failures: 10 }
        );
        // The same ten events again (a redelivery): still ten, not twenty, not one.
        let kept = remember(&same, &burst, &policy());
        assert_eq!(kept.len(), 10);
        assert_eq!(
            decide(ip, &burst, &kept, &policy()),
            Verdict::Block { failures: 10 }
        );
    }

    #[test]
    fn nine_guessing_connections_in_forty_seconds_are_blocked_with_the_defaults() {
        let p = defaults();
        assert_eq!((p.max_failures, p.window_secs), (5, 600));
        let raw: Vec<String> = (0..9)
            .map(|i| {
                format!(
                    "Nov 24 10:15:{:02} h sshd[{}]: Failed password for root from 203.0.113.7 port {} ssh2",
                    i * 5,
                    100 + i,
                    5000 + i
                )
            })
            .collect();
        let ls: Vec<(i64, String, Line)> = raw
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    i64::try_from(i * 5).unwrap(),
                    format!("e{i}"),
                    parse(l).unwrap(),
                )
            })
            .collect();
        let t = tally_of(&ls, p.ipv6_prefix);
        let (n, s) = t.iter().next().unwrap();
        assert_eq!(decide(*n, s, &[], &p), Verdict::Block { failures: 9 });
    }

    #[test]
    fn an_ipv6_attacker_rotating_through_its_64_is_one_source() {
        let raw: Vec<String> = (0..10)
            .map(|i| {
                format!(
                    "Nov 24 10:15:00 h sshd[{}]: Failed password for root from 2001:db8:0:7::{:x} port 5 ssh2",
                    100 + i,
                    i + 1
                )
            })
            .collect();
        let refs: Vec<&str> = raw.iter().map(String::as_str).collect();
        let t = tally_of(&lines(&refs), 64);
        assert_eq!(t.len(), 1);
        let (n, s) = t.iter().next().unwrap();
        assert_eq!(n.to_string(), "2001:db8:0:7::/64");
        assert_eq!(s.addresses.len(), 10);
        assert_eq!(
            decide(*n, s, &[], &policy()),
            Verdict::Block { failures: 10 }
        );
        // Counted per address (prefix 128), each stays below the threshold.
        assert_eq!(tally_of(&lines(&refs), 128).len(), 10);
        // An allowed address inside the /64 keeps the whole prefix unblocked.
        let office = Policy {
            allowed: vec![net("2001:db8:0:7::beef/128")],
            ..policy()
        };
        assert!(matches!(
            decide(*n, s, &[], &office),
            Verdict::Ignore { ref reason } if reason.contains("REFLEX_ALLOWED_CIDRS")
        ));
        assert_eq!(show(n), "2001:db8:0:7::/64");
        assert_eq!(show(&net("203.0.113.7/32")), "203.0.113.7");
        // The loopback's /64 is not public.
        assert!(is_private(&source_net("::1".parse().unwrap(), 64)));
    }

    #[test]
    fn the_threshold_counts_within_the_window_including_earlier_deliveries() {
        let ip = net("203.0.113.7/32");
        let nine = Source {
            failures: failures(1000..1009),
            ..Source::default()
        };
        assert!(matches!(
            decide(ip, &nine, &[], &policy()),
            Verdict::Ignore { .. }
        ));
        assert_eq!(
            decide(ip, &nine, &failures([990]), &policy()),
            Verdict::Block { failures: 10 }
        );
        // Spread over more than the window: never ten at once.
        let spread = Source {
            failures: failures((0..20).map(|i| i * 40)),
            ..Source::default()
        };
        assert!(matches!(
            decide(ip, &spread, &[], &policy()),
            Verdict::Ignore { .. }
        ));
        assert_eq!(peak(&[0, 1, 2, 299, 300, 301], 300), 4);
        // What is kept: the window before the latest, at most max_failures.
        let kept = remember(&failures([1, 2]), &spread, &policy());
        assert_eq!(kept, failures((12..20).map(|i| i * 40)));
    }

    #[test]
    fn allowed_private_and_successful_sources_are_not_blocked() {
        let many = Source {
            failures: failures(0..12),
            ..Source::default()
        };
        let allowed = decide(net("198.51.100.4/32"), &many, &[], &policy());
        assert!(matches!(allowed, Verdict::Ignore { ref reason } if reason.contains("ALLOWED")));
        let private = decide(net("10.0.5.17/32"), &many, &[], &policy());
        assert!(matches!(private, Verdict::Ignore { ref reason } if reason.contains("private")));
        let p = Policy {
            block_private: true,
            ..policy()
        };
        assert!(matches!(
            decide(net("10.0.5.17/32"), &many, &[], &p),
            Verdict::Block { .. }
        ));
        let in_then = Source {
            accepted: vec![("root".into(), "password".into())],
            ..many
        };
        assert!(matches!(
            decide(net("203.0.113.7/32"), &in_then, &[], &policy()),
            Verdict::Report { failures: 12, .. }
        ));
    }

    fn entry(n: i32, action: &str, cidr: &str) -> AclEntry {
        AclEntry {
            rule_number: n,
            action: action.into(),
            cidr: cidr.into(),
        }
    }

    #[test]
    fn rule_numbers_avoid_existing_entries_and_a_block_is_not_repeated() {
        let inbound = vec![
            entry(50, "deny", "192.0.2.1/32"),
            entry(51, "allow", "0.0.0.0/0"),
            entry(52, "deny", "2001:DB8:0:7::/64"),
            entry(100, "allow", "0.0.0.0/0"),
        ];
        assert_eq!(allocate(&inbound, (50, 99), "203.0.113.7/32"), Ok(53));
        assert_eq!(allocate(&inbound, (50, 99), "192.0.2.1/32"), Err(Some(50)));
        assert_eq!(
            allocate(&inbound, (50, 99), "2001:db8:0:7::/64"),
            Err(Some(52))
        );
        assert_eq!(allocate(&inbound, (50, 52), "203.0.113.7/32"), Err(None));
    }

    #[test]
    fn the_oldest_reflex_block_still_in_place_makes_way_when_the_range_is_full() {
        let block = |ip: &str, acl: &str, rule: i32, expires_at: i64| {
            (
                format!("ssh-block/{acl}/{ip}"),
                Block {
                    target: nacl(),
                    ip: ip.into(),
                    cidr: format!("{ip}/32"),
                    acl: acl.into(),
                    rule,
                    instance: "i-0abc1234def567890".into(),
                    expires_at,
                    failures: 5,
                },
            )
        };
        let inbound = vec![
            entry(50, "deny", "192.0.2.1/32"),
            entry(51, "deny", "192.0.2.2/32"),
            entry(52, "deny", "192.0.2.3/32"),
        ];
        let records = vec![
            block("192.0.2.2", "acl-1", 51, 200),
            block("192.0.2.3", "acl-1", 52, 300),
            // Older, but: another ACL; a rule outside the range; an entry that is
            // no longer its own (rule 50 denies someone else now).
            block("192.0.2.9", "acl-2", 51, 10),
            block("192.0.2.1", "acl-1", 120, 20),
            block("192.0.2.7", "acl-1", 50, 30),
        ];
        let o = oldest(&records, "acl-1", &inbound, (50, 52)).unwrap();
        assert_eq!((o.1.ip.as_str(), o.1.rule), ("192.0.2.2", 51));
        assert_eq!(oldest(&records[2..], "acl-1", &inbound, (50, 52)), None);
    }
}
