#!/usr/bin/env python3
"""make bench: cold start, peak RSS and sizes of the release build.

- Cold start: spawn of the release `reflex` process -> outcome JSON on stdout, on the
  CloudTrail fixture (tcp/22 + tcp/3389 world-open) against a local moto. Each run
  gets a fresh group, so every run really re-reads, revokes twice and posts to a
  local Slack stand-in. The moto group setup is outside the timed window.
- Peak RSS of that process, from GNU time's wait4() on a direct child. Not
  getrusage(RUSAGE_CHILDREN) here: Linux carries the parent's memory high-water
  mark into a forked child's maxrss across exec, so every child of this Python
  process (boto3 loaded, ~60 MB) would report at least that much.
- Size of the stripped release bootstrap binary and of bootstrap.zip.
Medians over RUNS runs (default 15). Nothing here is asserted: figures go to the README.
"""
import http.server
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RUNS = int(os.environ.get("RUNS", "15"))
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slack(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    import boto3

    exe = TARGET / "release" / "reflex"
    boot = TARGET / "release" / "close-open-ports"
    if not Path(TIME).exists():
        raise SystemExit("bench: GNU time missing; install it with `apt-get install time`")
    for f in (exe, boot):
        if not f.exists():
            raise SystemExit(f"bench: {f} missing; run `cargo build --release -p reflex-cli -p close-open-ports`")
    moto_port = free_port()
    moto = subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slack = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slack)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="reflex-bench-"))
    try:
        endpoint = f"http://127.0.0.1:{moto_port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="b", aws_secret_access_key="b")
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="b", AWS_SECRET_ACCESS_KEY="b",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack.server_address[1]}/services/T/B/x")
        template = json.loads((ROOT / "events/aws/cloudtrail/authorize-mixed-rules.json").read_text())
        def fixture(i):
            gid = ec2.create_security_group(GroupName=f"bench-{i}", Description="bench")["GroupId"]
            ids = []
            for port, cidr in [(22, "0.0.0.0/0"), (3389, "::/0"), (22, "10.0.0.0/8"), (443, "0.0.0.0/0")]:
                rng = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
                out = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **rng}])
                ids.append(out["SecurityGroupRules"][0]["SecurityGroupRuleId"])
            ev = json.loads(json.dumps(template))
            ev["detail"]["requestParameters"]["groupId"] = gid
            for item, rid in zip(ev["detail"]["responseElements"]["securityGroupRuleSet"]["items"], ids):
                item["groupId"], item["securityGroupRuleId"] = gid, rid
            f = tmp / f"ev{i}.json"
            f.write_text(json.dumps(ev))
            return f

        def run(i, argv):
            p = subprocess.run(argv, env=env, capture_output=True)
            if p.returncode != 0:
                raise SystemExit(f"bench: run {i} exited {p.returncode}: {p.stderr.decode().strip()}")
            done = [a for a in json.loads(p.stdout)["actions"] if a["status"] == "done"]
            if len(done) != 2:
                raise SystemExit(f"bench: run {i} revoked {len(done)} rules, expected 2")

        times = []
        for i in range(RUNS + 1):  # the first run warms moto's lazy EC2 load; not counted
            f = fixture(i)
            start = time.perf_counter()
            run(i, [str(exe), "invoke", "close-open-ports", str(f)])
            if i > 0:
                times.append((time.perf_counter() - start) * 1000)
        rss = []
        for i in range(RUNS + 1, RUNS + 6):  # separate runs: the wrapper is not in the timed window
            f = fixture(i)
            out = tmp / f"rss{i}"
            run(i, [TIME, "-f", "%M", "-o", str(out), str(exe), "invoke", "close-open-ports", str(f)])
            rss.append(int(out.read_text().split()[-1]))
        zpath = tmp / "bootstrap.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.write(boot, "bootstrap")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"runs: {RUNS} (after 1 warm-up)")
        print(f"cold start (spawn -> outcome, 2 revokes + Slack post): median {statistics.median(times):.1f} ms, "
              f"min {min(times):.1f} ms, max {max(times):.1f} ms")
        print(f"peak RSS (GNU time, 5 runs): median {statistics.median(rss) / 1024:.1f} MiB, "
              f"max {max(rss) / 1024:.1f} MiB")
        print(f"stripped bootstrap ({platform.machine()}): {boot.stat().st_size / 1e6:.2f} MB; "
              f"bootstrap.zip: {zpath.stat().st_size / 1e6:.2f} MB")
        arm = TARGET / "lambda" / "close-open-ports" / "bootstrap.zip"
        if arm.exists():
            print(f"arm64 bootstrap.zip from `make package`: {arm.stat().st_size / 1e6:.2f} MB")
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        slack.shutdown()


if __name__ == "__main__":
    sys.exit(main())
