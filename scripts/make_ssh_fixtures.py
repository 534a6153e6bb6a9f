#!/usr/bin/env python3
"""Writes the CloudWatch Logs subscription fixtures for block-ssh-bruteforce.

CloudWatch Logs delivers `{"awslogs": {"data": base64(gzip(json))}}`; the JSON holds
messageType, owner, logGroup, logStream, subscriptionFilters and logEvents. The
readable source of each fixture is kept next to it (`*.decoded.txt`, not swept as a fixture) so a reviewer can
see the lines without decoding. Run: python3 scripts/make_ssh_fixtures.py
"""
import base64
import gzip
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "events" / "aws" / "cloudwatch-logs"
BASE_MS = 1795515300000  # 2026-11-24T10:15:00Z
ATTACKER = "203.0.113.7"


def doc(group, stream, messages, kind="DATA_MESSAGE"):
    return {
        "messageType": kind,
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["reflex-ssh"],
        "logEvents": [
            {"id": f"3{i:055d}", "timestamp": BASE_MS + i * 1000, "message": m}
            for i, m in enumerate(messages)
        ],
    }


def write(name, source):
    raw = gzip.compress(json.dumps(source, separators=(",", ":")).encode(), mtime=0)
    (OUT / f"{name}.json").write_text(json.dumps({"awslogs": {"data": base64.b64encode(raw).decode()}}, indent=2) + "\n")
    (OUT / f"{name}.decoded.txt").write_text(json.dumps(source, indent=2) + "\n")


def secure_burst():
    host = "ip-10-0-1-23"
    lines = []
    users = ["root", "admin", "oracle", "ubuntu", "test", "postgres"]
    for i in range(12):
        u = users[i % len(users)]
        pid = 41230 + i
        t = f"Nov 24 10:15:{i * 4:02d}"
        if u == "root":
            lines.append(f"{t} {host} sshd[{pid}]: Failed password for root from {ATTACKER} port {51000 + i} ssh2")
        else:
            lines.append(f"{t} {host} sshd[{pid}]: Invalid user {u} from {ATTACKER} port {51000 + i}")
            lines.append(f"{t} {host} sshd[{pid}]: Failed password for invalid user {u} from {ATTACKER} port {51000 + i} ssh2")
        lines.append(f"{t} {host} sshd[{pid}]: Connection closed by invalid user {u} {ATTACKER} port {51000 + i} [preauth]")
    lines.append(f"Nov 24 10:15:50 {host} sshd[41300]: error: maximum authentication attempts exceeded for root from {ATTACKER} port 51999 ssh2 [preauth]")
    lines.append(f"Nov 24 10:15:51 {host} sshd[41300]: Disconnecting authenticating user root {ATTACKER} port 51999: Too many authentication failures [preauth]")
    # A colleague logging in from the office meanwhile.
    lines.append(f"Nov 24 10:15:52 {host} sshd[41310]: Accepted publickey for ec2-user from 198.51.100.4 port 50022 ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4")
    lines.append(f"Nov 24 10:15:52 {host} sshd[41310]: pam_unix(sshd:session): session opened for user ec2-user(uid=1000) by (uid=0)")
    return doc("/var/log/secure", "i-0abc1234def567890", lines)


def authlog_rfc3339():
    host = "web-2"
    lines = []
    for i in range(11):
        t = f"2026-11-24T10:15:{i * 5:02d}.{i:06d}+00:00"
        lines.append(f"{t} {host} sshd[{9000 + i}]: Disconnected from authenticating user root {ATTACKER} port {40000 + i} [preauth]")
    lines.append(f"2026-11-24T10:16:00.000001+00:00 {host} sshd[9100]: Connection closed by 192.0.2.50 port 33333 [preauth]")
    lines.append(f"2026-11-24T10:16:01.000001+00:00 {host} CRON[9101]: pam_unix(cron:session): session closed for user root")
    return doc("/var/log/auth.log", "i-0def5678abc123456", lines)


def journald_json():
    # fluent-bit / the CloudWatch agent shipping the journal as JSON records.
    lines = []
    for i in range(10):
        rec = {
            "__REALTIME_TIMESTAMP": str((BASE_MS + i * 2000) * 1000),
            "_HOSTNAME": "ubuntu-24",
            "SYSLOG_IDENTIFIER": "sshd-session",
            # Fields journald sets itself: what Reflex trusts to say the record is sshd's.
            "_COMM": "sshd-session",
            "_SYSTEMD_UNIT": "ssh.service",
            "_EXE": "/usr/lib/openssh/sshd-session",
            "_PID": str(7000 + i),
            "MESSAGE": f"Failed password for invalid user user{i} from 2001:db8::bad port {45000 + i} ssh2",
        }
        lines.append(json.dumps(rec, separators=(",", ":")))
    return doc("/reflex/journal", "ubuntu-24", lines)


def journald_short():
    # `journalctl -o short-iso`.
    lines = [
        f"2026-11-24T10:15:{i * 3:02d}+0000 debian-12 sshd[{5000 + i}]: Failed password for root from {ATTACKER} port {38000 + i} ssh2"
        for i in range(10)
    ]
    # The attacker then logs in: a compromised password, to be reported, not blocked.
    lines.append(f"2026-11-24T10:15:40+0000 debian-12 sshd[5099]: Accepted password for root from {ATTACKER} port 38999 ssh2")
    return doc("/var/log/journal", "i-0123456789abcdef0", lines)


def below_threshold():
    lines = [
        f"Nov 24 10:15:{i:02d} ip-10-0-1-23 sshd[{100 + i}]: Failed password for ec2-user from 198.51.100.9 port {1000 + i} ssh2"
        for i in range(3)
    ]
    return doc("/var/log/secure", "i-0abc1234def567890", lines)


def private_source():
    lines = [
        f"Nov 24 10:15:{i:02d} ip-10-0-1-23 sshd[{200 + i}]: Failed password for root from 10.0.5.17 port {2000 + i} ssh2"
        for i in range(15)
    ]
    return doc("/var/log/secure", "i-0abc1234def567890", lines)


def control():
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": BASE_MS, "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda."}],
    }


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    write("secure-bruteforce-rhel", secure_burst())
    write("authlog-bruteforce-ubuntu-rfc3339", authlog_rfc3339())
    write("journald-json-ipv6-bruteforce", journald_json())
    write("journald-short-iso-then-accepted", journald_short())
    write("secure-below-threshold", below_threshold())
    write("secure-private-source", private_source())
    write("control-message", control())
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")
