//! sshd's log lines, as they reach CloudWatch Logs from RHEL / Amazon Linux
//! (`/var/log/secure`) and Debian / Ubuntu (`auth.log`), in classic syslog
//! (`Nov 24 10:15:01 host sshd[123]: …`), RFC 3339 syslog
//! (`2026-11-24T10:15:01.000001+00:00 host sshd[123]: …`), `journalctl -o short-iso`,
//! and the journal as JSON records (`MESSAGE`, `SYSLOG_IDENTIFIER`, `_PID`).
//! OpenSSH 9.8+ logs as `sshd-session`.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

/// What one line says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum What {
    /// A failed authentication attempt (`Failed password`, `Failed publickey`, …).
    FailedAttempt { user: String, invalid_user: bool },
    /// A connection that ended before authenticating (`Invalid user`, `Connection
    /// closed by … [preauth]`, `Disconnected from authenticating user`, `maximum
    /// authentication attempts exceeded`).
    FailedConnection { user: Option<String> },
    /// `Accepted password|publickey|… for USER`.
    Accepted { user: String, method: String },
}

/// One sshd line about a remote address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub ip: IpAddr,
    /// The sshd process (one per connection), to count a connection once.
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub what: What,
}

/// The program, pid, host and message of a syslog-style or journal-JSON line;
/// `None` when it is not from sshd.
fn split(line: &str) -> Option<(Option<u32>, Option<String>, String)> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        let ident = v["SYSLOG_IDENTIFIER"]
            .as_str()
            .or_else(|| v["_COMM"].as_str())?;
        if !is_sshd(ident) {
            return None;
        }
        let pid = v["_PID"].as_str().and_then(|p| p.parse().ok());
        let host = v["_HOSTNAME"].as_str().map(str::to_string);
        return Some((pid, host, v["MESSAGE"].as_str()?.to_string()));
    }
    // `<timestamp> host prog[pid]: message`, where the classic timestamp has three
    // fields (`Nov 24 10:15:01`) and the ISO forms one.
    let (head, message) = line.split_once("]: ").or_else(|| line.split_once(": "))?;
    let mut fields = head.split_whitespace().rev();
    let prog = fields.next()?;
    let host = fields.next().map(str::to_string);
    let (name, pid) = match prog.split_once('[') {
        Some((n, p)) => (n, p.trim_end_matches(']').parse().ok()),
        None => (prog.trim_end_matches(':'), None),
    };
    is_sshd(name).then(|| (pid, host, message.to_string()))
}

fn is_sshd(name: &str) -> bool {
    matches!(name, "sshd" | "sshd-session")
}

/// The word after `key` in `text`.
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_once(key)?.1.split_whitespace().next()
}

fn ip(word: Option<&str>) -> Option<IpAddr> {
    word?.trim_end_matches(':').parse().ok()
}

/// Parses one line; `None` for anything that is not an sshd line about a remote
/// address Reflex counts.
pub fn parse(line: &str) -> Option<Line> {
    let (pid, host, msg) = split(line)?;
    let msg = msg.trim();
    let what_ip = if let Some(rest) = msg.strip_prefix("Failed ") {
        // Failed password for [invalid user ]USER from IP port N ssh2
        let (_, rest) = rest.split_once(" for ")?;
        let (invalid, rest) = match rest.strip_prefix("invalid user ") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (user, rest) = rest.rsplit_once(" from ")?;
        (
            What::FailedAttempt {
                user: user.to_string(),
                invalid_user: invalid,
            },
            ip(rest.split_whitespace().next())?,
        )
    } else if let Some(rest) = msg.strip_prefix("Accepted ") {
        // Accepted publickey for USER from IP port N ssh2: …
        let (method, rest) = rest.split_once(" for ")?;
        let (user, rest) = rest.rsplit_once(" from ")?;
        (
            What::Accepted {
                user: user.to_string(),
                method: method.to_string(),
            },
            ip(rest.split_whitespace().next())?,
        )
    } else if let Some(rest) = msg.strip_prefix("Invalid user ") {
        // Invalid user USER from IP port N
        let (user, rest) = rest.rsplit_once(" from ")?;
        (
            What::FailedConnection {
                user: Some(user.to_string()),
            },
            ip(rest.split_whitespace().next())?,
        )
    } else if msg.ends_with("[preauth]")
        && (msg.starts_with("Connection closed by ")
            || msg.starts_with("Disconnected from ")
            || msg.starts_with("Connection reset by ")
            || msg.contains("maximum authentication attempts exceeded"))
    {
        // Connection closed by [invalid|authenticating user USER ]IP port N [preauth]
        // Disconnected from [invalid|authenticating user USER ]IP port N [preauth]
        // error: maximum authentication attempts exceeded for USER from IP port N ssh2 [preauth]
        let before_port = msg.split(" port ").next()?;
        let ip = ip(before_port.split_whitespace().last())?;
        let user = after(msg, " user ")
            .map(str::to_string)
            .filter(|u| u.parse::<IpAddr>().is_err());
        let user = user.or_else(|| after(msg, " exceeded for ").map(str::to_string));
        (What::FailedConnection { user }, ip)
    } else {
        return None;
    };
    let (what, ip) = what_ip;
    Some(Line {
        ip,
        pid,
        host,
        what,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn one(line: &str) -> Line {
        parse(line).unwrap_or_else(|| panic!("{line}"))
    }

    #[test]
    fn every_failure_and_success_form_is_read_in_every_format() {
        let l = one(
            "Nov 24 10:15:01 ip-10-0-1-23 sshd[41230]: Failed password for invalid user admin from 203.0.113.7 port 51000 ssh2",
        );
        assert_eq!(l.ip.to_string(), "203.0.113.7");
        assert_eq!(l.pid, Some(41230));
        assert_eq!(l.host.as_deref(), Some("ip-10-0-1-23"));
        assert_eq!(
            l.what,
            What::FailedAttempt {
                user: "admin".into(),
                invalid_user: true
            }
        );
        assert_eq!(
            one("Nov 24 10:15:01 h sshd[1]: Failed password for root from 203.0.113.7 port 5 ssh2")
                .what,
            What::FailedAttempt {
                user: "root".into(),
                invalid_user: false
            }
        );
        assert_eq!(
            one("Nov 24 10:15:01 h sshd[1]: Invalid user oracle from 203.0.113.7 port 5").what,
            What::FailedConnection {
                user: Some("oracle".into())
            }
        );
        for (line, user) in [
            (
                "Nov 24 10:15:01 h sshd[1]: Connection closed by invalid user oracle 203.0.113.7 port 5 [preauth]",
                Some("oracle"),
            ),
            (
                "Nov 24 10:15:01 h sshd[1]: Connection closed by 203.0.113.7 port 5 [preauth]",
                None,
            ),
            (
                "2026-11-24T10:15:00.000001+00:00 web-2 sshd[9000]: Disconnected from authenticating user root 203.0.113.7 port 40000 [preauth]",
                Some("root"),
            ),
            (
                "Nov 24 10:15:50 h sshd[2]: error: maximum authentication attempts exceeded for root from 203.0.113.7 port 51999 ssh2 [preauth]",
                Some("root"),
            ),
        ] {
            let l = one(line);
            assert_eq!(l.ip.to_string(), "203.0.113.7", "{line}");
            assert_eq!(
                l.what,
                What::FailedConnection {
                    user: user.map(str::to_string)
                },
                "{line}"
            );
        }
        let a = one(
            "2026-11-24T10:15:40+0000 debian-12 sshd[5099]: Accepted password for root from 203.0.113.7 port 38999 ssh2",
        );
        assert_eq!(
            a.what,
            What::Accepted {
                user: "root".into(),
                method: "password".into()
            }
        );
        assert_eq!(a.host.as_deref(), Some("debian-12"));
        let k = one(
            "Nov 24 10:15:52 h sshd[3]: Accepted publickey for ec2-user from 198.51.100.4 port 50022 ssh2: ED25519 SHA256:abc",
        );
        assert_eq!(k.ip.to_string(), "198.51.100.4");
        let j = one(
            r#"{"__REALTIME_TIMESTAMP":"1","_HOSTNAME":"ubuntu-24","SYSLOG_IDENTIFIER":"sshd-session","_PID":"7000","MESSAGE":"Failed password for invalid user user0 from 2001:db8::bad port 45000 ssh2"}"#,
        );
        assert_eq!(j.ip.to_string(), "2001:db8::bad");
        assert_eq!((j.pid, j.host.as_deref()), (Some(7000), Some("ubuntu-24")));
    }

    #[test]
    fn other_programs_and_messages_are_not_counted() {
        for line in [
            "Nov 24 10:15:52 h sshd[3]: pam_unix(sshd:session): session opened for user ec2-user(uid=1000) by (uid=0)",
            "2026-11-24T10:16:01.000001+00:00 web-2 CRON[9101]: pam_unix(cron:session): session closed for user root",
            "Nov 24 10:15:01 h sshd[1]: Failed password for root from not-an-ip port 5 ssh2",
            "Nov 24 10:15:01 h sshd[1]: Server listening on 0.0.0.0 port 22.",
            r#"{"SYSLOG_IDENTIFIER":"sudo","MESSAGE":"Failed password for root from 203.0.113.7 port 1 ssh2"}"#,
            r#"{"MESSAGE": 5"#,
            "",
            "garbage without a colon",
        ] {
            assert_eq!(parse(line), None, "{line}");
        }
    }
}
