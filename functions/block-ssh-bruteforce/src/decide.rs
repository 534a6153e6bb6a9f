//! Per source address: block, report, or leave alone. Pure: the lines, what earlier
//! deliveries counted, the policy and the time in; a verdict out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use reflex_aws::nacl::AclEntry;
use serde::Serialize;

use crate::sshd::{Line, What};

/// The thresholds and exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// This many failures within `window_secs` block the source.
    pub max_failures: usize,
    pub window_secs: i64,
    /// Never blocked.
    #[serde(serialize_with = "reflex_core::policy::nets")]
    pub allowed: Vec<IpNet>,
    /// Block private, loopback and link-local sources too.
    pub block_private: bool,
}

/// What one source did in this delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Source {
    /// Epoch seconds of each failure (an attempt, or a connection that failed
    /// without one).
    pub failures: Vec<i64>,
    pub users: BTreeSet<String>,
    /// `(user, method)` of each successful login.
    pub accepted: Vec<(String, String)>,
}

/// Groups a delivery's lines by source. A connection (one sshd pid) counts once per
/// failed attempt, or once if it failed without an attempt (`Invalid user`,
/// `Connection closed … [preauth]`), so the three lines one attempt logs count one.
pub fn tally(lines: &[(i64, Line)]) -> BTreeMap<IpAddr, Source> {
    let mut out: BTreeMap<IpAddr, Source> = BTreeMap::new();
    // (ip, pid) → (attempts, first connection-level failure time)
    let mut conns: BTreeMap<(IpAddr, u32), (usize, Option<i64>)> = BTreeMap::new();
    for (at, l) in lines {
        let s = out.entry(l.ip).or_default();
        match &l.what {
            What::FailedAttempt { user, .. } => {
                s.users.insert(user.clone());
                s.failures.push(*at);
                if let Some(pid) = l.pid {
                    conns.entry((l.ip, pid)).or_default().0 += 1;
                }
            }
            What::FailedConnection { user } => {
                if let Some(u) = user {
                    s.users.insert(u.clone());
                }
                match l.pid {
                    Some(pid) => {
                        let c = conns.entry((l.ip, pid)).or_default();
                        c.1.get_or_insert(*at);
                    }
                    None => s.failures.push(*at),
                }
            }
            What::Accepted { user, method } => s.accepted.push((user.clone(), method.clone())),
        }
    }
    for ((ip, _), (attempts, first)) in conns {
        if let (0, Some(at)) = (attempts, first) {
            out.entry(ip).or_default().failures.push(at);
        }
    }
    for s in out.values_mut() {
        s.failures.sort_unstable();
    }
    out
}

/// The most failures within any `window` seconds.
pub fn peak(times: &[i64], window: i64) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
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

fn is_private(ip: IpAddr) -> bool {
    match ip {
        // 100.64.0.0/10 is carrier-grade NAT (RFC 6598): shared, not public.
        IpAddr::V4(v) => {
            v.is_private()
                || v.is_loopback()
                || v.is_link_local()
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => v.is_loopback() || v.is_unique_local() || v.is_unicast_link_local(),
    }
}

/// The verdict for `ip`, given this delivery's `source` and the failure times earlier
/// deliveries recorded (`earlier`).
pub fn decide(ip: IpAddr, source: &Source, earlier: &[i64], policy: &Policy) -> Verdict {
    let ignore = |reason: String| Verdict::Ignore { reason };
    if policy.allowed.iter().any(|n| n.contains(&ip)) {
        return ignore(format!("{ip} is in REFLEX_ALLOWED_CIDRS"));
    }
    if !policy.block_private && is_private(ip) {
        return ignore(format!(
            "{ip} is a private address (REFLEX_SSH_BLOCK_PRIVATE is off)"
        ));
    }
    let mut all: Vec<i64> = earlier.iter().chain(&source.failures).copied().collect();
    all.sort_unstable();
    all.dedup();
    let failures = peak(&all, policy.window_secs);
    if failures < policy.max_failures {
        return ignore(format!(
            "{ip}: {failures} failure(s) within {} s, below {}",
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

/// The CIDR that names exactly `ip`.
pub fn cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => format!("{v}/32"),
        IpAddr::V6(v) => format!("{v}/128"),
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
        .find(|e| e.action == "deny" && e.cidr.eq_ignore_ascii_case(cidr))
    {
        return Err(Some(e.rule_number));
    }
    let used: BTreeSet<i32> = inbound.iter().map(|e| e.rule_number).collect();
    (range.0..=range.1).find(|n| !used.contains(n)).ok_or(None)
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
        }
    }

    fn lines(raw: &[&str]) -> Vec<(i64, Line)> {
        raw.iter()
            .enumerate()
            .map(|(i, l)| (1000 + i64::try_from(i).unwrap(), parse(l).unwrap()))
            .collect()
    }

    #[test]
    fn one_attempt_logged_three_ways_counts_once() {
        let t = tally(&lines(&[
            "Nov 24 10:15:00 h sshd[7]: Invalid user oracle from 203.0.113.7 port 5",
            "Nov 24 10:15:00 h sshd[7]: Failed password for invalid user oracle from 203.0.113.7 port 5 ssh2",
            "Nov 24 10:15:00 h sshd[7]: Connection closed by invalid user oracle 203.0.113.7 port 5 [preauth]",
            "Nov 24 10:15:01 h sshd[8]: Connection closed by authenticating user root 203.0.113.7 port 6 [preauth]",
        ]));
        let s = &t[&"203.0.113.7".parse::<IpAddr>().unwrap()];
        assert_eq!(
            s.failures.len(),
            2,
            "one failed attempt, one connection without one"
        );
        assert_eq!(s.users.iter().collect::<Vec<_>>(), ["oracle", "root"]);
    }

    #[test]
    fn the_threshold_counts_within_the_window_including_earlier_deliveries() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let nine = Source {
            failures: (0..9).map(|i| 1000 + i).collect(),
            ..Source::default()
        };
        assert!(matches!(
            decide(ip, &nine, &[], &policy()),
            Verdict::Ignore { .. }
        ));
        assert_eq!(
            decide(ip, &nine, &[990], &policy()),
            Verdict::Block { failures: 10 }
        );
        // Spread over more than the window: never ten at once.
        let spread = Source {
            failures: (0..20).map(|i| i * 40).collect(),
            ..Source::default()
        };
        assert!(matches!(
            decide(ip, &spread, &[], &policy()),
            Verdict::Ignore { .. }
        ));
        assert_eq!(peak(&[0, 1, 2, 299, 300, 301], 300), 4);
    }

    #[test]
    fn allowed_private_and_successful_sources_are_not_blocked() {
        let many = Source {
            failures: (0..12).collect(),
            ..Source::default()
        };
        let allowed = decide("198.51.100.4".parse().unwrap(), &many, &[], &policy());
        assert!(matches!(allowed, Verdict::Ignore { ref reason } if reason.contains("ALLOWED")));
        let private = decide("10.0.5.17".parse().unwrap(), &many, &[], &policy());
        assert!(matches!(private, Verdict::Ignore { ref reason } if reason.contains("private")));
        let p = Policy {
            block_private: true,
            ..policy()
        };
        assert!(matches!(
            decide("10.0.5.17".parse().unwrap(), &many, &[], &p),
            Verdict::Block { .. }
        ));
        let in_then = Source {
            accepted: vec![("root".into(), "password".into())],
            ..many
        };
        assert!(matches!(
            decide("203.0.113.7".parse().unwrap(), &in_then, &[], &policy()),
            Verdict::Report { failures: 12, .. }
        ));
    }

    #[test]
    fn rule_numbers_avoid_existing_entries_and_a_block_is_not_repeated() {
        let e = |n: i32, action: &str, cidr: &str| AclEntry {
            rule_number: n,
            action: action.into(),
            cidr: cidr.into(),
        };
        let inbound = vec![
            e(50, "deny", "192.0.2.1/32"),
            e(51, "allow", "0.0.0.0/0"),
            e(100, "allow", "0.0.0.0/0"),
        ];
        assert_eq!(allocate(&inbound, (50, 99), "203.0.113.7/32"), Ok(52));
        assert_eq!(allocate(&inbound, (50, 99), "192.0.2.1/32"), Err(Some(50)));
        assert_eq!(allocate(&inbound, (50, 51), "203.0.113.7/32"), Err(None));
        assert_eq!(cidr("2001:db8::bad".parse().unwrap()), "2001:db8::bad/128");
    }
}
