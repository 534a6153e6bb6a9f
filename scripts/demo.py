#!/usr/bin/env python3
"""make demo: close-open-ports end to end, on this machine, with nothing real at stake.

AWS: starts moto (the AWS emulator) and a Slack stand-in, creates a security group with
world-open SSH and RDP plus two legitimate rules, runs `reflex invoke` on a CloudTrail
event, and shows the rules before and after and the Slack message.

Azure: starts the custom-handler host (`reflex-azure-host`, as the Functions host would)
and an ARM + managed-identity stand-in, creates an NSG with `allow-ssh-any` and three
other rules, posts the Activity Log alert an action group would send, and shows the
rules before and after and the Slack message.

alert-to-slack: with a bot token on the Slack stand-in's Web API and a DynamoDB table on
moto (the dedup and thread store), runs `reflex invoke alert-to-slack` on a CloudWatch
alarm (through SNS) firing, on a duplicate delivery of it, and on the alarm resolving,
and shows the channel as one threaded conversation.

drain-before-maintenance: an Auto Scaling group of two instances tagged
`reflex:drain=true` behind an ELBv2 target group on moto; a spot interruption warning
for one of them: it leaves the target group and goes to Standby (Slack: start, done);
the same warning again changes nothing; when the notice goes away, the agent's
recover call brings it back.

reflex-agent: starts the IMDS stand-in and `reflex-agent --cloud azure` with drain and
recover hooks, announces an Azure Redeploy for the VM, and shows the agent's records:
logged, drained, approved (only after the drain), and, once the event is over,
recovered.

Cleans up the processes it started, whatever happens.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30):
    start = time.time()
    while time.time() - start < timeout:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"demo: {url} did not answer within {timeout}s")


def wait_port(port, timeout=10):
    start = time.time()
    while time.time() - start < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo: nothing listens on 127.0.0.1:{port} after {timeout}s")


def step(text):
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def show_rules(ec2, group_id):
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    for r in sorted(rules["SecurityGroupRules"], key=lambda r: r["SecurityGroupRuleId"]):
        if r["IsEgress"]:
            continue
        src = r.get("CidrIpv4") or r.get("CidrIpv6")
        print(f"    {r['SecurityGroupRuleId']}  {r['IpProtocol']}/{r['FromPort']}  from {src}")


NSG = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/"
       "Microsoft.Network/networkSecurityGroups/nsg-web")


def arm(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"authorization": "Bearer demo", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def show_nsg(base):
    doc = arm("GET", f"{base}{NSG}?api-version=2024-07-01")
    for r in doc["properties"]["securityRules"]:
        p = r["properties"]
        ports = p.get("destinationPortRange") or ",".join(p.get("destinationPortRanges", []))
        src = p.get("sourceAddressPrefix") or ",".join(p.get("sourceAddressPrefixes", []))
        print(f"    {r['name']:<16} {p['direction']} {p['access']} {p['protocol']}/{ports} from {src}")


def azure(procs, tmp, slack_port):
    arm_port, host_port = free_port(), free_port()
    step(f"Azure: the ARM stand-in on 127.0.0.1:{arm_port}, the custom handler on 127.0.0.1:{host_port}")
    procs.append(subprocess.Popen([str(TARGET / "reflex-arm-fake"), str(arm_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    base = f"http://127.0.0.1:{arm_port}"
    wait_port(arm_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFLEX_", "AWS_", "IDENTITY_"))}
    env.update(FUNCTIONS_CUSTOMHANDLER_PORT=str(host_port), REFLEX_ARM_ENDPOINT=base,
               IDENTITY_ENDPOINT=f"{base}/msi/token", IDENTITY_HEADER="reflex-test-identity-header",
               REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack_port}/services/T0/B0/demo")
    host_log = open(tmp / "host.log", "w")
    procs.append(subprocess.Popen([str(TARGET / "reflex-azure-host")], env=env,
                                  stdout=host_log, stderr=subprocess.STDOUT))
    wait_http(f"http://127.0.0.1:{host_port}/")

    step("Someone adds allow-ssh-any (tcp/22 from *) to nsg-web")
    def rule(name, prio, port, src, access="Allow"):
        return {"id": f"{NSG}/securityRules/{name}", "name": name, "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port, "sourceAddressPrefix": src,
            "destinationAddressPrefix": "*", "access": access, "priority": prio, "direction": "Inbound"}}
    arm("PUT", f"{base}{NSG}?api-version=2024-07-01", {"location": "westeurope", "tags": {}, "properties": {
        "securityRules": [rule("allow-ssh-any", 100, "22", "*"), rule("allow-https", 110, "443", "Internet"),
                          rule("allow-ssh-corp", 120, "22", "10.0.0.0/8"),
                          rule("deny-rdp", 130, "3389", "*", access="Deny")]}})
    print("  Rules of nsg-web before:")
    show_nsg(base)

    step("The action group posts the Activity Log alert to POST /api/close-open-ports")
    body = (ROOT / "events/azure/common-alert-schema/activity-log-administrative.json").read_bytes()
    req = urllib.request.Request(f"http://127.0.0.1:{host_port}/api/close-open-ports", data=body,
                                 headers={"content-type": "application/json",
                                          "x-azure-functions-invocationid": "demo-0001"})
    with urllib.request.urlopen(req, timeout=60) as r:
        status, outcome = r.status, json.loads(r.read())
    print(f"  HTTP {status}")
    for a in outcome["actions"]:
        print(f"  {a['status']:>8}  {a['action']} {a['detail']['name']}: {a['reason']}")
    for n in outcome["notifications"]:
        print(f"  notification: {n['channel']} {n['status']} after {n['attempts']} attempt(s)")

    print("\n  Rules of nsg-web after:")
    show_nsg(base)

    step("What the Slack channel received")
    time.sleep(0.3)
    text = (tmp / "slack.log").read_text()
    print(text[text.rfind("┌─ Slack message"):])


def invoke_function(env, function, path, target=False):
    """`reflex invoke FUNCTION PATH`: prints what was ignored or done, returns the outcome."""
    run = subprocess.run([str(TARGET / "reflex"), "invoke", function, str(path)],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"demo: reflex exited {run.returncode}: {run.stderr.strip()}")
    outcome = json.loads(run.stdout)
    if outcome["ignored"]:
        print(f"   ignored  {outcome['ignored']}")
    for a in outcome["actions"]:
        where = f" {a['target'].split(':')[-1]}" if target else ""
        print(f"  {a['status']:>8}  {a['action']}{where}: {a['reason']}")
    return outcome


def moto_env(endpoint, table, **extra):
    """The environment of a function run against moto: no inherited REFLEX_* settings,
    demo credentials, DynamoDB table `table`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFLEX_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", REFLEX_DYNAMODB_TABLE=table, **extra)
    return env


def create_table(ddb, name):
    """A state table as the templates create it (hash key pk, on demand)."""
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


def invoke_and_show_slack(env, function, path, slack_log, target=False):
    """`invoke_function`, then what the webhook stand-in logged meanwhile."""
    seen = len(slack_log.read_text())
    outcome = invoke_function(env, function, path, target)
    time.sleep(0.3)
    new = slack_log.read_text()[seen:].strip()
    print("  Slack: " + (new.replace("\n", "\n  ") if new else "(nothing posted)"))
    return outcome


def alert_to_slack(endpoint, slack_port):
    import boto3

    step("alert-to-slack: a DynamoDB table on moto keeps dedup and the alarm -> thread map")
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="demo", aws_secret_access_key="demo")
    create_table(ddb, "reflex-alerts")
    print("  table reflex-alerts (key pk)")
    env = moto_env(endpoint, "reflex-alerts", REFLEX_SLACK_BOT_TOKEN="xoxb-reflex-test-token",
                   REFLEX_SLACK_API_URL=f"http://127.0.0.1:{slack_port}/api", REFLEX_SLACK_CHANNEL="#alerts")

    def invoke(label, fixture):
        step(f"{label}: reflex invoke alert-to-slack {fixture}")
        invoke_function(env, "alert-to-slack", ROOT / fixture)

    def channel(label):
        step(label)
        with urllib.request.urlopen(f"http://127.0.0.1:{slack_port}/_reflex/conversations", timeout=5) as r:
            text = r.read().decode()
        print(text)
        return text

    invoke("The alarm web-cpu-high fires (SNS from CloudWatch)", "events/aws/sns/cloudwatch-alarm-static-threshold.json")
    channel("#alerts in the Slack stand-in: the alarm, firing")
    invoke("SNS delivers the same notification again", "events/aws/sns/cloudwatch-alarm-static-threshold.json")
    invoke("The alarm resolves (state OK)", "events/aws/sns/cloudwatch-alarm-ok.json")
    text = channel("#alerts now: one conversation, the parent edited to show it resolved, the resolution in its thread")
    if text.count("#CALERTS ts=") != 1 or text.count("↳ reply") != 1 or "(edited 1 time(s))" not in text:
        raise SystemExit("demo: expected one edited parent with one reply in #alerts")


def drain(endpoint, slack_port, tmp):
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo")
    ec2, elb, asg, ddb = (boto3.client(s, **kw) for s in ("ec2", "elbv2", "autoscaling", "dynamodb"))
    step("drain-before-maintenance: an Auto Scaling group of two tagged instances behind target group web")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    ec2.create_launch_template(LaunchTemplateName="lt-web", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"})
    asg.create_auto_scaling_group(AutoScalingGroupName="asg-web", MinSize=0, MaxSize=4, DesiredCapacity=2,
                                  LaunchTemplate={"LaunchTemplateName": "lt-web"}, VPCZoneIdentifier=subnet)
    ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]]
    ec2.create_tags(Resources=ids, Tags=[{"Key": "reflex:drain", "Value": "true"}])
    tg = elb.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": i} for i in ids])
    create_table(ddb, "reflex-drain")

    def targets():
        return sorted(d["Target"]["Id"] for d in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"])

    def state(i):
        return asg.describe_auto_scaling_instances(InstanceIds=[i])["AutoScalingInstances"][0]["LifecycleState"]

    print(f"  target group web: {targets()}")
    victim = ids[0]
    env = moto_env(endpoint, "reflex-drain", REFLEX_DRAIN_POLL_SECS="1",
                   REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack_port}/services/T0/B0/demo")

    def invoke(label, event):
        step(label)
        f = tmp / "drain-event.json"
        f.write_text(json.dumps(event))
        return invoke_and_show_slack(env, "drain-before-maintenance", f, tmp / "slack.log", target=True)

    spot = json.loads((ROOT / "events/aws/ec2/spot-interruption-warning.json").read_text())
    spot["detail"]["instance-id"] = victim
    spot["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    invoke(f"EC2 warns: spot interruption of {victim} in two minutes (EventBridge)", spot)
    print(f"\n  target group web now: {targets()}; {victim} is {state(victim)}")
    if victim in targets() or state(victim) != "Standby":
        raise SystemExit("demo: the warned instance should have left the target group and be in Standby")
    invoke("EventBridge delivers the same warning again", spot)
    # reflex-agent on the instance calls the function when the notice leaves IMDS.
    recover = {"source": "reflex-agent", "action": "recover", "node": victim, "maintenance": {
        "cloud": "aws", "id": spot["id"], "kind": "spot-interruption", "phase": "completed", "targets": [victim],
        "not_before": None, "duration_secs": None, "description": None, "lifecycle": None,
        "trigger": "aws.imds/spot-interruption", "scope": "us-east-1"}}
    invoke(f"The instance was not reclaimed after all: reflex-agent on {victim} sees the notice gone and calls recover", recover)
    print(f"\n  target group web now: {targets()}; {victim} is {state(victim)}")
    if victim not in targets() or state(victim) != "InService":
        raise SystemExit("demo: the instance should be registered again and InService")


def agent(procs, tmp):
    port = free_port()
    step(f"reflex-agent: the IMDS stand-in on 127.0.0.1:{port} (VM vm-web-1), the agent polling every second")
    procs.append(subprocess.Popen([str(TARGET / "reflex-imds-fake"), str(port), "vm-web-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(port)
    base = f"http://127.0.0.1:{port}"
    hooks = tmp / "hooks.log"
    records = tmp / "agent.jsonl"
    drain = f'echo "drain hook: taking $REFLEX_EVENT_NODE out of service for $REFLEX_EVENT_TYPE $REFLEX_EVENT_ID" >> {hooks}; sleep 1'
    recover = f'echo "recover hook: $REFLEX_EVENT_NODE back in service" >> {hooks}'
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFLEX_")}
    env.update(REFLEX_IMDS_ENDPOINT=base, RUST_LOG="warn")
    procs.append(subprocess.Popen([str(TARGET / "reflex-agent"), "--cloud", "azure", "--interval", "1s",
                                   "--drain-hook", drain, "--recover-hook", recover, "--log-file", str(records)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def imds_state(body=None):
        req = urllib.request.Request(f"{base}/_reflex/state", method="PUT" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def wait_record(name, timeout=15):
        start = time.time()
        while time.time() - start < timeout:
            lines = records.read_text().splitlines() if records.exists() else []
            if any(json.loads(line)["record"] == name for line in lines):
                return
            time.sleep(0.1)
        raise SystemExit(f"demo: the agent wrote no {name} record within {timeout}s")

    wait_record("started")
    step("Azure announces a Redeploy of vm-web-1 in 10 minutes (IMDS scheduled events)")
    not_before = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 600))
    event_id = "C7061BAC-AFDC-4513-B24B-AA5F13A16123"
    imds_state({"azure_events": [{
        "EventId": event_id, "EventStatus": "Scheduled", "EventType": "Redeploy",
        "ResourceType": "VirtualMachine", "Resources": ["vm-web-1"], "NotBefore": not_before,
        "Description": "Virtual machine is being redeployed", "EventSource": "Platform", "DurationInSeconds": -1}]})
    print(f"  EventId {event_id}, NotBefore {not_before}")
    wait_record("approved")
    print(f"  IMDS approvals (StartRequests received): {imds_state()['approvals']}")
    wait_record("event_status")  # the approval started the event
    step("The redeploy is done: the event leaves the IMDS document")
    imds_state({"azure_events": []})
    wait_record("recover_done")
    step("What the agent recorded (JSON lines in its --log-file, also on stdout for journald)")
    for line in records.read_text().splitlines():
        r = json.loads(line)
        print(f"  {r['time']}  {r['record']:<16} {r.get('kind') or '':<9} {r.get('detail') or ''}")
    step("What the hooks did")
    print("  " + hooks.read_text().strip().replace("\n", "\n  "))


def ssh(endpoint, slack_port, tmp):
    import base64
    import gzip

    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo", aws_secret_access_key="demo")
    ec2, ddb = boto3.client("ec2", **kw), boto3.client("dynamodb", **kw)
    step("block-ssh-bruteforce: an instance in a subnet on moto; /var/log/secure shipped to CloudWatch Logs")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]["InstanceId"]
    acl = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"][0]["NetworkAclId"]
    create_table(ddb, "reflex-ssh")

    def entries():
        acls = ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]["Entries"]
        for e in sorted(acls, key=lambda e: e["RuleNumber"]):
            if not e["Egress"]:
                print(f"    rule {e['RuleNumber']:>5}  {e['RuleAction']:<5} {e.get('CidrBlock') or e.get('Ipv6CidrBlock')}")

    print(f"  {instance} in {subnet}; inbound entries of its network ACL {acl}:")
    entries()
    env = moto_env(endpoint, "reflex-ssh", REFLEX_SSH_BLOCK_SECS="2",
                   REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack_port}/services/T0/B0/demo")

    def invoke(label, path):
        step(label)
        return invoke_and_show_slack(env, "block-ssh-bruteforce", path, tmp / "slack.log")

    # The subscription delivery CloudWatch Logs would send: base64(gzip(JSON)), the log
    # stream named by the instance id (the CloudWatch agent's default).
    logs = json.loads((ROOT / "events/aws/cloudwatch-logs/secure-bruteforce-rhel.decoded.txt").read_text())
    logs["logStream"] = instance
    delivery = tmp / "ssh-delivery.json"
    data = base64.b64encode(gzip.compress(json.dumps(logs).encode())).decode()
    delivery.write_text(json.dumps({"awslogs": {"data": data}}))
    invoke(f"sshd on {instance} logs {len(logs['logEvents'])} lines: a password-guessing burst from 203.0.113.7", delivery)
    print(f"\n  inbound entries of {acl} now:")
    entries()
    invoke("CloudWatch Logs delivers the same batch again", delivery)
    time.sleep(2.5)
    sweep = tmp / "sweep.json"
    sweep.write_text((ROOT / "events/aws/scheduled/daily-sweep.json").read_text())
    invoke("The block expired (REFLEX_SSH_BLOCK_SECS=2 for the demo; a day by default): the scheduled sweep", sweep)
    print(f"\n  inbound entries of {acl} after the sweep:")
    entries()
    left = [e for e in ec2.describe_network_acls(NetworkAclIds=[acl])["NetworkAcls"][0]["Entries"]
            if e.get("CidrBlock") == "203.0.113.7/32"]
    if left:
        raise SystemExit("demo: the expired block should have been removed")


def main():
    import boto3  # installed with moto into .venv

    procs = []
    tmp = Path(tempfile.mkdtemp(prefix="reflex-demo-"))
    try:
        moto_port, slack_port = free_port(), free_port()
        step(f"Starting moto on 127.0.0.1:{moto_port} and a Slack stand-in on 127.0.0.1:{slack_port}")
        procs.append(subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        slack_log = open(tmp / "slack.log", "w")
        procs.append(subprocess.Popen([str(TARGET / "reflex-slack-sink"), str(slack_port)],
                                      stdout=slack_log, stderr=subprocess.STDOUT))
        wait_http(f"http://127.0.0.1:{moto_port}/moto-api/")
        endpoint = f"http://127.0.0.1:{moto_port}"
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="demo", AWS_SECRET_ACCESS_KEY="demo",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   REFLEX_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{slack_port}/services/T0/B0/demo")
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="demo", aws_secret_access_key="demo")

        step("Someone opens SSH and RDP to the world (plus two legitimate rules)")
        gid = ec2.create_security_group(GroupName="web", Description="demo")["GroupId"]
        perms = [("tcp", 22, "0.0.0.0/0"), ("tcp", 3389, "::/0"), ("tcp", 22, "10.0.0.0/8"), ("tcp", 443, "0.0.0.0/0")]
        ids = []
        for proto, port, cidr in perms:
            rng = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
            out = ec2.authorize_security_group_ingress(
                GroupId=gid, IpPermissions=[{"IpProtocol": proto, "FromPort": port, "ToPort": port, **rng}])
            ids.append(out["SecurityGroupRules"][0]["SecurityGroupRuleId"])
        print(f"  Rules of {gid} before:")
        show_rules(ec2, gid)

        # The CloudTrail event EventBridge would deliver for that call.
        event = json.loads((ROOT / "events/aws/cloudtrail/authorize-mixed-rules.json").read_text())
        event["detail"]["requestParameters"]["groupId"] = gid
        for item, rid in zip(event["detail"]["responseElements"]["securityGroupRuleSet"]["items"], ids):
            item["groupId"], item["securityGroupRuleId"] = gid, rid
        event_file = tmp / "event.json"
        event_file.write_text(json.dumps(event))

        step("reflex invoke close-open-ports <CloudTrail AuthorizeSecurityGroupIngress event>")
        run = subprocess.run([str(TARGET / "reflex"), "invoke", "close-open-ports", str(event_file)],
                             env=env, capture_output=True, text=True)
        if run.returncode not in (0, 1):
            raise SystemExit(f"demo: reflex exited {run.returncode}: {run.stderr.strip()}")
        outcome = json.loads(run.stdout)
        for a in outcome["actions"]:
            d = a["detail"]
            print(f"  {a['status']:>8}  {a['action']} {d.get('rule_id')} {d['protocol']}/{d['from_port']} "
                  f"from {d.get('cidr')}: {a['reason']}")
        for n in outcome["notifications"]:
            print(f"  notification: {n['channel']} {n['status']} after {n['attempts']} attempt(s)")
        print(f"  (full outcome JSON: {len(run.stdout)} bytes; exit status {run.returncode})")

        print(f"\n  Rules of {gid} after:")
        show_rules(ec2, gid)

        step("What the Slack channel received")
        time.sleep(0.3)
        slack_log.flush()
        print((tmp / "slack.log").read_text())

        step("A duplicate delivery changes nothing and posts nothing")
        again = subprocess.run([str(TARGET / "reflex"), "invoke", "close-open-ports", str(event_file)],
                               env=env, capture_output=True, text=True)
        o2 = json.loads(again.stdout)
        print("  " + ", ".join(f"{a['detail'].get('rule_id')}: {a['status']} ({a['reason']})" for a in o2["actions"]))
        print(f"  notifications: {o2['notifications']}")

        alert_to_slack(endpoint, slack_port)
        slack_log.flush()
        drain(endpoint, slack_port, tmp)
        ssh(endpoint, slack_port, tmp)
        azure(procs, tmp, slack_port)
        agent(procs, tmp)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        print("\nDemo finished; every process it started is stopped.")


if __name__ == "__main__":
    sys.exit(main())
