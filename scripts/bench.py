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
- alert-to-slack: the same cold start on a CloudWatch alarm through SNS, a new alarm
  each run, with a bot token on a local Web API stand-in and the DynamoDB store on moto
  (claim, thread lookup, chat.postMessage, thread save, confirm), and its sizes.
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
    """An incoming webhook (`ok`) and the Web API's chat.postMessage (JSON)."""
    ts = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.end_headers()
        if self.path.startswith("/api/"):
            Slack.ts += 1
            self.wfile.write(json.dumps({"ok": True, "channel": "CBENCH", "ts": f"1.{Slack.ts:06}"}).encode())
        else:
            self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    import boto3

    exe = TARGET / "release" / "reflex"
    boot = TARGET / "release" / "close-open-ports"
    alerts = TARGET / "release" / "alert-to-slack"
    if not Path(TIME).exists():
        raise SystemExit("bench: GNU time missing; install it with `apt-get install time`")
    for f in (exe, boot, alerts):
        if not f.exists():
            raise SystemExit(f"bench: {f} missing; run `make bench` (it builds them)")
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

        def measure(function, event, expect, env):
            """Median cold start over RUNS runs after one warm-up, and peak RSS over 5."""
            def run(i, argv):
                p = subprocess.run(argv, env=env, capture_output=True)
                if p.returncode != 0:
                    raise SystemExit(f"bench: {function} run {i} exited {p.returncode}: {p.stderr.decode().strip()}")
                done = [a["action"] for a in json.loads(p.stdout)["actions"] if a["status"] == "done"]
                if done != expect:
                    raise SystemExit(f"bench: {function} run {i} did {done}, expected {expect}")

            times = []
            for i in range(RUNS + 1):  # the first run warms moto's lazy load; not counted
                f = event(i)
                start = time.perf_counter()
                run(i, [str(exe), "invoke", function, str(f)])
                if i > 0:
                    times.append((time.perf_counter() - start) * 1000)
            rss = []
            for i in range(RUNS + 1, RUNS + 6):  # separate runs: the wrapper is not in the timed window
                f = event(i)
                out = tmp / f"rss-{function}-{i}"
                run(i, [TIME, "-f", "%M", "-o", str(out), str(exe), "invoke", function, str(f)])
                rss.append(int(out.read_text().split()[-1]))
            return times, rss

        def sizes(binary):
            zpath = tmp / f"{binary.name}.zip"
            with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
                z.write(binary, "bootstrap")
            line = (f"stripped bootstrap ({platform.machine()}): {binary.stat().st_size / 1e6:.2f} MB; "
                    f"bootstrap.zip: {zpath.stat().st_size / 1e6:.2f} MB")
            arm = TARGET / "lambda" / binary.name / "bootstrap.zip"
            if arm.exists():
                line += f"; arm64 bootstrap.zip from `make package`: {arm.stat().st_size / 1e6:.2f} MB"
            return line

        def report(label, times, rss, binary):
            print(f"{label}: cold start (spawn -> outcome): median {statistics.median(times):.1f} ms, "
                  f"min {min(times):.1f} ms, max {max(times):.1f} ms")
            print(f"  peak RSS (GNU time, 5 runs): median {statistics.median(rss) / 1024:.1f} MiB, "
                  f"max {max(rss) / 1024:.1f} MiB")
            print(f"  {sizes(binary)}")

        ports = measure("close-open-ports", fixture, ["revoke_ingress", "revoke_ingress"], env)

        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="b", aws_secret_access_key="b")
        ddb.create_table(TableName="reflex-bench", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        alarm = json.loads((ROOT / "events/aws/sns/cloudwatch-alarm-static-threshold.json").read_text())

        def alarm_event(i):
            ev = json.loads(json.dumps(alarm))
            sns = ev["Records"][0]["Sns"]
            sns["MessageId"] = f"bench-{i}"
            sns["Message"] = sns["Message"].replace("web-cpu-high", f"bench-alarm-{i}")
            f = tmp / f"alarm{i}.json"
            f.write_text(json.dumps(ev))
            return f

        alert_env = dict(env, REFLEX_SLACK_BOT_TOKEN="xoxb-bench",
                         REFLEX_SLACK_API_URL=f"http://127.0.0.1:{slack.server_address[1]}/api",
                         REFLEX_SLACK_CHANNEL="#bench", REFLEX_DYNAMODB_TABLE="reflex-bench")
        del alert_env["REFLEX_SLACK_WEBHOOK_URL"]
        alerts_run = measure("alert-to-slack", alarm_event, ["post_message"], alert_env)

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"runs: {RUNS} (after 1 warm-up)")
        report("close-open-ports (re-read, 2 revokes, 1 Slack webhook post)", *ports, boot)
        report("alert-to-slack (SNS alarm; DynamoDB claim + thread, chat.postMessage)", *alerts_run, alerts)
    finally:
        moto.terminate()
        moto.wait(timeout=10)
        slack.shutdown()


if __name__ == "__main__":
    sys.exit(main())
