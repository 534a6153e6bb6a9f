#!/usr/bin/env python3
"""make lambda-local: the real Lambda binary under the Lambda runtime API, offline.

Starts moto and the Slack stand-in, creates a group with world-open SSH and RDP, runs
`cargo lambda watch -p close-open-ports` (the runtime API emulator; it builds and starts
the `bootstrap` binary) and sends the CloudTrail event with
`cargo lambda invoke --data-file`. Prints the function's response and checks that both
world-open rules were revoked and one Slack message was posted. Cleans up what it started.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import ROOT, TARGET, VENV, free_port, wait_http  # noqa: E402


def main():
    import boto3

    procs, tmp = [], Path(tempfile.mkdtemp(prefix="reflex-lambda-"))
    env = dict(os.environ, PATH=f"{VENV}:{os.environ['PATH']}")
    try:
        moto_port, slack_port, invoke_port = free_port(), free_port(), free_port()
        procs.append(subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        slack_log = open(tmp / "slack.log", "w")
        procs.append(subprocess.Popen([str(TARGET / "reflex-slack-sink"), str(slack_port)],
                                      stdout=slack_log, stderr=subprocess.STDOUT))
        endpoint = f"http://127.0.0.1:{moto_port}"
        wait_http(f"{endpoint}/moto-api/")
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        gid = ec2.create_security_group(GroupName="lambda-local", Description="x")["GroupId"]
        ids = []
        for port, rng in [(22, {"IpRanges": [{"CidrIp": "0.0.0.0/0"}]}), (3389, {"Ipv6Ranges": [{"CidrIpv6": "::/0"}]}),
                          (22, {"IpRanges": [{"CidrIp": "10.0.0.0/8"}]}), (443, {"IpRanges": [{"CidrIp": "0.0.0.0/0"}]})]:
            out = ec2.authorize_security_group_ingress(
                GroupId=gid, IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **rng}])
            ids.append(out["SecurityGroupRules"][0]["SecurityGroupRuleId"])
        event = json.loads((ROOT / "events/aws/cloudtrail/authorize-mixed-rules.json").read_text())
        event["detail"]["requestParameters"]["groupId"] = gid
        for item, rid in zip(event["detail"]["responseElements"]["securityGroupRuleSet"]["items"], ids):
            item["groupId"], item["securityGroupRuleId"] = gid, rid
        (tmp / "event.json").write_text(json.dumps(event))

        fn_env = dict(env, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                      AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                      REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack_port}/services/T/B/local")
        print(f"==> cargo lambda watch -p close-open-ports (runtime API on 127.0.0.1:{invoke_port})", flush=True)
        watch_log = open(tmp / "watch.log", "w")
        procs.append(subprocess.Popen(["cargo", "lambda", "watch", "-p", "close-open-ports", "-P", str(invoke_port)],
                                      cwd=ROOT, env=fn_env, stdout=watch_log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        # The emulator answers invokes only once the binary is built and running.
        for _ in range(450):
            r = subprocess.run(["cargo", "lambda", "invoke", "close-open-ports", "-P", str(invoke_port),
                                "--data-file", str(tmp / "event.json")], env=env, capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(2)
        else:
            raise SystemExit(f"lambda-local: no answer from the function:\n{r.stderr}")
        outcome = json.loads(r.stdout)
        for a in outcome["actions"]:
            print(f"  {a['status']:>8}  {a['action']} {a['detail'].get('rule_id')}: {a['reason']}")
        print(f"  notifications: {outcome['notifications']}")
        done = [a for a in outcome["actions"] if a["status"] == "done"]
        time.sleep(0.3)
        posted = (tmp / "slack.log").read_text().count("Slack message")
        if len(done) != 2 or posted != 1:
            raise SystemExit(f"lambda-local: expected 2 revokes and 1 Slack post, got {len(done)} and {posted}")
        print("lambda-local: the bootstrap binary revoked both rules and posted once")
    finally:
        for p in procs:
            try:
                if p.args[0] == "cargo":  # watch runs the binary as its child: stop the group
                    os.killpg(p.pid, signal.SIGTERM)
                else:
                    p.terminate()
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
