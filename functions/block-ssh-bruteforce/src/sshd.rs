//! sshd's log lines, as they reach CloudWatch Logs from RHEL / Amazon Linux
//! (`/var/log/secure`) and Debian / Ubuntu (`auth.log`), in classic syslog
//! (`Nov 24 10:15:01 host sshd[123]: …`), RFC 3339 syslog
//! (`2026-11-24T10:15:01.000001+00:00 host sshd[123]: …`), `journalctl -o short-iso`,
//! and the journal as JSON records (`MESSAGE`, `_COMM`, `_SYSTEMD_UNIT`, `_EXE`,
//! `_PID`). OpenSSH 9.8+ logs as `sshd-session`.
//!
//! A client chooses its user name (and a certificate's key id, a hostbased client's
//! user and host), and sshd writes them into the same line as the client's address.
//! So the address is read only from the fixed positions sshd writes it in, anchored
//! at the end of the message (`… from ADDR port N ssh2`, `… ADDR port N [preauth]`),
//! the way fail2ban's `filter.d/sshd.conf` anchors its patterns: whatever comes
//! before is the user name, whatever it contains. A line whose end is not sshd's own
//! text gives no address.

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
    /// The client's source port, as sshd wrote it.
    pub port: u16,
    /// The sshd process (one per connection), to count a connection once.
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub what: What,
    /// How many times the line was logged: rsyslog folds identical lines into
    /// `message repeated N times: [ … ]` (at most [`MAX_REPEAT`]).
    pub times: u32,
}

/// rsyslog's repeat count is believed up to this many.
pub const MAX_REPEAT: u32 = 1000;

/// The program, pid, host and message of a syslog-style or journal-JSON line;
/// `None` when it is not from sshd.
fn split(line: &str) -> Option<(Option<u32>, Option<String>, String)> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        if !journal_is_sshd(&v) {
            return None;
        }
        let pid = v["_PID"].as_str().and_then(|p| p.parse().ok());
        let host = v["_HOSTNAME"].as_str().map(str::to_string);
        return Some((pid, host, v["MESSAGE"].as_str()?.to_string()));
    }
    // `<timestamp> host prog[pid]: message`, where the classic timestamp has three
    // fields (`Nov 24 10:15:01`) and the ISO forms one. A syslog line carries no
    // field a local user cannot set (`logger -t sshd` writes the same): see the
    // README.
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
    matches!(name, "sshd" | "sshd-session" | "sshd-auth")
}

/// Whether a journal record was written by sshd, judged only from fields journald
/// sets itself (`_…`; a client cannot set them). `SYSLOG_IDENTIFIER` is not one:
/// `logger -t sshd` sets it. `_COMM` alone is not enough either: it is the name of
/// the executable, and anyone can run a copy of `logger` named `sshd`. So `_COMM`
/// must be sshd's and either the unit (a cgroup only root puts a process in) is the
/// SSH service or the executable lives in a system directory.
fn journal_is_sshd(v: &Value) -> bool {
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    field("_COMM").is_some_and(is_sshd)
        && (field("_SYSTEMD_UNIT").is_some_and(is_ssh_unit)
            || field("_EXE").is_some_and(is_sshd_exe))
}

/// `ssh.service` (Debian, Ubuntu), `sshd.service` (RHEL, Amazon Linux), and the
/// per-connection `sshd@….service` / `ssh@….service` of socket activation.
fn is_ssh_unit(unit: &str) -> bool {
    let Some(stem) = unit.strip_suffix(".service") else {
        return false;
    };
    let name = stem.split_once('@').map_or(stem, |(n, _)| n);
    matches!(name, "ssh" | "sshd")
}

/// sshd's binaries where the distributions install them (directories only root
/// writes to).
fn is_sshd_exe(path: &str) -> bool {
    const DIRS: &[&str] = &[
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
        "/usr/libexec",
        "/usr/libexec/openssh",
        "/usr/lib/openssh",
        "/usr/lib/ssh",
        "/usr/local/sbin",
        "/usr/local/libexec",
    ];
    path.rsplit_once('/')
        .is_some_and(|(dir, name)| is_sshd(name) && DIRS.contains(&dir))
}

/// `BEFORE ADDR port N` at the end of `s`: the last two words are `port N`, the
/// word before them the address. `BEFORE` is everything ahead of ` ADDR` (empty when
/// `s` starts with the address).
fn tail(s: &str) -> Option<(&str, IpAddr, u16)> {
    let (rest, port) = s.rsplit_once(" port ")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse().ok()?;
    let (before, addr) = rest.rsplit_once(' ').unwrap_or(("", rest));
    Some((before, address(addr)?, port))
}

/// `USER from ADDR port N` at the end of `s`: `USER` is all that comes before the
/// last ` from ADDR port N`.
fn from_tail(s: &str) -> Option<(&str, IpAddr, u16)> {
    let (before, ip, port) = tail(s)?;
    let user = before
        .strip_suffix(" from")
        .or_else(|| (before == "from").then_some(""))?;
    Some((user, ip, port))
}

/// An IPv4-mapped IPv6 address is the IPv4 address.
fn address(word: &str) -> Option<IpAddr> {
    let ip: IpAddr = word.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// `Failed|Accepted …` ends in ` ssh2`, or, for a key, in ` ssh2: TYPE FINGERPRINT`
/// (both written by sshd); returns the text up to ` ssh2`. The other endings (a
/// certificate's `ID <key id> (serial N) CA …`, hostbased's `client user "…"`) hold
/// client-chosen text after the address: `None`.
fn without_key_info(s: &str) -> Option<&str> {
    if let Some(head) = s.strip_suffix(" ssh2") {
        return Some(head);
    }
    let (head, fingerprint) = s.rsplit_once(' ')?;
    let (head, kind) = head.rsplit_once(' ')?;
    let head = head.strip_suffix(" ssh2:")?;
    (is_key_type(kind) && is_fingerprint(fingerprint)).then_some(head)
}

/// `RSA`, `ED25519`, `ECDSA-SK`, … (`sshkey_type`).
fn is_key_type(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

/// `SHA256:<base64>` or `MD5:<hex pairs>`.
fn is_fingerprint(s: &str) -> bool {
    if let Some(b64) = s.strip_prefix("SHA256:") {
        return !b64.is_empty()
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    }
    s.strip_prefix("MD5:")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'))
}

/// `Accepted METHOD for USER from ADDR port N ssh2: …` with a certificate: the user
/// has just logged in (an account name, one word), so the line is read from the
/// start.
fn accepted_from_start(rest: &str) -> Option<(&str, IpAddr, u16)> {
    let mut w = rest.splitn(6, ' ');
    let (user, from, addr, kw, port, ssh2) = (
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
        w.next()?,
    );
    let fixed = from == "from" && kw == "port" && ssh2.starts_with("ssh2: ");
    if !fixed || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((user, address(addr)?, port.parse().ok()?))
}

/// The message without rsyslog's `message repeated N times: [ … ]`, and N.
fn unrepeat(msg: &str) -> (&str, u32) {
    let folded = msg
        .strip_prefix("message repeated ")
        .and_then(|r| r.split_once(" times: ["))
        .and_then(|(n, r)| Some((n.parse::<u32>().ok()?, r.strip_suffix(']')?)));
    match folded {
        Some((n, inner)) => (inner.trim(), n.clamp(1, MAX_REPEAT)),
        None => (msg, 1),
    }
}

/// Parses one line; `None` for anything that is not an sshd line about a remote
/// address Reflex counts.
pub fn parse(line: &str) -> Option<Line> {
    let (pid, host, msg) = split(line)?;
    let (msg, times) = unrepeat(msg.trim());
    let (what, ip, port) = read(msg)?;
    Some(Line {
        ip,
        port,
        pid,
        host,
        what,
        times,
    })
}

/// What one message says, and the address and port from their fixed positions.
fn read(msg: &str) -> Option<(What, IpAddr, u16)> {
    if let Some(rest) = msg.strip_prefix("Failed ") {
        // Failed METHOD for [invalid user ]USER from ADDR port N ssh2[: TYPE FP]
        let (method, rest) = rest.split_once(" for ")?;
        if method.contains(' ') {
            return None;
        }
        let (user, ip, port) = from_tail(without_key_info(rest)?)?;
        let (invalid_user, user) = match user.strip_prefix("invalid user ") {
            Some(u) => (true, u),
            None => (false, user),
        };
        let user = user.to_string();
        return Some((What::FailedAttempt { user, invalid_user }, ip, port));
    }
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        // Accepted METHOD for USER from ADDR port N ssh2[: KEY INFO]
        let (method, rest) = rest.split_once(" for ")?;
        if method.contains(' ') {
            return None;
        }
        let (user, ip, port) = without_key_info(rest)
            .and_then(from_tail)
            .or_else(|| accepted_from_start(rest))?;
        let (user, method) = (user.to_string(), method.to_string());
        return Some((What::Accepted { user, method }, ip, port));
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        // Invalid user USER from ADDR port N
        let (user, ip, port) = from_tail(rest)?;
        let user = Some(user.to_string());
        return Some((What::FailedConnection { user }, ip, port));
    }
    let max_auth = "maximum authentication attempts exceeded for ";
    if let Some(rest) = msg
        .strip_prefix("error: ")
        .unwrap_or(msg)
        .strip_prefix(max_auth)
    {
        // [error: ]maximum authentication attempts exceeded for [invalid user ]USER
        //   from ADDR port N ssh2 [preauth]
        let rest = rest.strip_suffix(" [preauth]").unwrap_or(rest);
        let (user, ip, port) = from_tail(rest.strip_suffix(" ssh2")?)?;
        let user = Some(
            user.strip_prefix("invalid user ")
                .unwrap_or(user)
                .to_string(),
        );
        return Some((What::FailedConnection { user }, ip, port));
    }
    for form in [
        "Connection closed by ",
        "Disconnected from ",
        "Connection reset by ",
    ] {
        // FORM [invalid user USER |authenticating user USER ]ADDR port N [preauth]
        // (without `[preauth]` these are the ends of sessions that logged in)
        if let Some(rest) = msg.strip_prefix(form) {
            let (who, ip, port) = tail(rest.strip_suffix(" [preauth]")?)?;
            let user = match who {
                "" => None,
                _ => Some(
                    who.strip_prefix("invalid user ")
                        .or_else(|| who.strip_prefix("authenticating user "))?
                        .to_string(),
                ),
            };
            return Some((What::FailedConnection { user }, ip, port));
        }
    }
    None
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
            r#"{"__REALTIME_TIMESTAMP":"1","_HOSTNAME":"ubuntu-24","SYSLOG_IDENTIFIER":"sshd-session","_COMM":"sshd-session","_SYSTEMD_UNIT":"ssh.service","_PID":"7000","MESSAGE":"Failed password for invalid user user0 from 2001:db8::bad port 45000 ssh2"}"#,
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

    /// sshd's line for user `user` from 203.0.113.99 in each message form.
    fn forms(user: &str) -> Vec<String> {
        let p = "Nov 24 10:15:01 h sshd[77]: ";
        let a = "203.0.113.99";
        vec![
            format!("{p}Failed password for {user} from {a} port 50000 ssh2"),
            format!("{p}Failed password for invalid user {user} from {a} port 50000 ssh2"),
            format!(
                "{p}Failed publickey for {user} from {a} port 50000 ssh2: ED25519 SHA256:Zm9vYmFy+/0"
            ),
            format!("{p}Failed none for invalid user {user} from {a} port 50000 ssh2"),
            format!("{p}Invalid user {user} from {a} port 50000"),
            format!("{p}Connection closed by invalid user {user} {a} port 50000 [preauth]"),
            format!("{p}Connection closed by authenticating user {user} {a} port 50000 [preauth]"),
            format!("{p}Disconnected from invalid user {user} {a} port 50000 [preauth]"),
            format!("{p}Disconnected from authenticating user {user} {a} port 50000 [preauth]"),
            format!("{p}Connection reset by invalid user {user} {a} port 50000 [preauth]"),
            format!(
                "{p}error: maximum authentication attempts exceeded for {user} from {a} port 50000 ssh2 [preauth]"
            ),
            format!(
                "{p}error: maximum authentication attempts exceeded for invalid user {user} from {a} port 50000 ssh2 [preauth]"
            ),
            format!(
                "{p}message repeated 3 times: [ Failed password for {user} from {a} port 50000 ssh2]"
            ),
        ]
    }

    fn user_of(w: &What) -> Option<&str> {
        match w {
            What::FailedAttempt { user, .. } | What::Accepted { user, .. } => Some(user),
            What::FailedConnection { user } => user.as_deref(),
        }
    }

    #[test]
    fn the_issues_reproduction_yields_the_real_client_address() {
        let l = one(
            "Nov 24 10:15:01 h sshd[9]: Connection closed by invalid user x 8.8.8.8 port 1 203.0.113.99 port 50000 [preauth]",
        );
        assert_eq!(l.ip.to_string(), "203.0.113.99");
        assert_eq!(l.port, 50000);
        assert_eq!(user_of(&l.what), Some("x 8.8.8.8 port 1"));
    }

    #[test]
    fn a_user_name_never_supplies_the_address() {
        let long = format!("a{}", " from 8.8.8.8 port 1 ssh2 [preauth]".repeat(40));
        assert!(long.len() > 1024);
        for user in [
            "x 8.8.8.8 port 1",
            "8.8.8.8",
            "from 8.8.8.8 port 22",
            "x from 8.8.8.8 port 1 ssh2",
            "x from 8.8.8.8 port 1 ssh2: ED25519 SHA256:abc",
            "root [preauth] 8.8.8.8 port 2 [preauth]",
            "y invalid user x 2001:db8::1 port 3",
            "authenticating user 8.8.8.8",
            "a b  c",
            "port",
            "from",
            "ssh2",
            "",
            long.as_str(),
        ] {
            for line in forms(user) {
                let l = one(&line);
                assert_eq!(l.ip.to_string(), "203.0.113.99", "{line}");
                assert_eq!(l.port, 50000, "{line}");
                assert_eq!(user_of(&l.what), Some(user), "{line}");
            }
        }
    }

    #[test]
    fn client_chosen_text_after_the_address_gives_no_address() {
        let p = "Nov 24 10:15:01 h sshd[77]: ";
        for line in [
            // A certificate's key id is the client's.
            format!(
                "{p}Failed publickey for root from 203.0.113.99 port 5 ssh2: RSA-CERT SHA256:abc ID x from 8.8.8.8 port 1 ssh2 (serial 1) CA RSA SHA256:def"
            ),
            // Hostbased: the client's user and host names.
            format!(
                "{p}Failed hostbased for root from 203.0.113.99 port 5 ssh2: RSA SHA256:abc, client user \"u\", client host \"h from 8.8.8.8 port 1 ssh2\""
            ),
            // The text after `:11:` is the client's.
            format!(
                "{p}Received disconnect from 203.0.113.99 port 5:11: from 8.8.8.8 port 1 ssh2 [preauth]"
            ),
            // A session that logged in, then ended: not a failure.
            format!("{p}Disconnected from user root 203.0.113.99 port 5"),
            format!("{p}Connection closed by 203.0.113.99 port 5"),
            // Not sshd's endings.
            format!("{p}Failed password for root from 203.0.113.99 port 5 ssh2 8.8.8.8"),
            format!("{p}Failed password for root from 203.0.113.99 port +5 ssh2"),
            format!("{p}Failed password for root from 203.0.113.99 port 70000 ssh2"),
            format!("{p}Connection closed by invalid user 203.0.113.99 port 5 x [preauth]"),
            format!("{p}Connection closed by someone 203.0.113.99 port 5 [preauth]"),
            format!("{p}Invalid user x 203.0.113.99 port 5"),
        ] {
            assert_eq!(parse(&line), None, "{line}");
        }
        // A certificate login (the user just authenticated) is read from the start.
        let a = one(&format!(
            "{p}Accepted publickey for deploy from 198.51.100.4 port 5 ssh2: RSA-CERT SHA256:abc ID ci from 8.8.8.8 port 1 (serial 1) CA RSA SHA256:def"
        ));
        assert_eq!((a.ip.to_string(), a.port), ("198.51.100.4".into(), 5));
    }

    #[test]
    fn a_repeated_message_counts_its_repeats_and_a_mapped_address_is_ipv4() {
        let l = one(
            "Nov 24 10:15:01 h sshd[77]: message repeated 5 times: [ Failed password for root from ::ffff:203.0.113.99 port 5 ssh2]",
        );
        assert_eq!((l.times, l.ip.to_string()), (5, "203.0.113.99".into()));
        let huge = one(
            "Nov 24 10:15:01 h sshd[77]: message repeated 4294967295 times: [ Failed password for root from 203.0.113.99 port 5 ssh2]",
        );
        assert_eq!(huge.times, MAX_REPEAT);
    }

    #[test]
    fn a_journal_record_is_sshd_s_only_by_the_fields_journald_sets() {
        let msg = r#""MESSAGE":"Failed password for root from 203.0.113.99 port 5 ssh2""#;
        let rec = |fields: &str| format!(r#"{{"_PID":"7",{fields},{msg}}}"#);
        for fields in [
            r#""_COMM":"sshd","_SYSTEMD_UNIT":"sshd.service""#,
            r#""_COMM":"sshd-session","_SYSTEMD_UNIT":"ssh.service""#,
            r#""_COMM":"sshd","_SYSTEMD_UNIT":"sshd@0-10.0.0.1:22-203.0.113.99:5.service""#,
            r#""_COMM":"sshd-session","_EXE":"/usr/lib/openssh/sshd-session""#,
            r#""_COMM":"sshd","_EXE":"/usr/sbin/sshd","SYSLOG_IDENTIFIER":"sshd""#,
        ] {
            assert!(parse(&rec(fields)).is_some(), "{fields}");
        }
        for fields in [
            // `logger -t sshd` (or sd_journal_send) by any local user.
            r#""SYSLOG_IDENTIFIER":"sshd","_COMM":"logger","_SYSTEMD_UNIT":"session-3.scope""#,
            r#""SYSLOG_IDENTIFIER":"sshd""#,
            r#""SYSLOG_IDENTIFIER":"sshd","_COMM":"logger","_SYSTEMD_UNIT":"ssh.service""#,
            // A copy of logger named sshd, run from a home directory.
            r#""_COMM":"sshd","_EXE":"/home/eve/sshd","_SYSTEMD_UNIT":"user@1000.service""#,
            r#""_COMM":"sshd","_EXE":"/tmp/usr/sbin/sshd""#,
            r#""_COMM":"sshd","_SYSTEMD_UNIT":"sshd.service.evil""#,
            r#""_COMM":"sshd""#,
        ] {
            assert_eq!(parse(&rec(fields)), None, "{fields}");
        }
    }
}
