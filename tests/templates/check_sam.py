#!/usr/bin/env python3
"""Checks template.yaml (AWS SAM) for the Reflex functions close-open-ports, alert-to-slack,
drain-before-maintenance and block-ssh-bruteforce, and for the private-networking option.

    python3 tests/templates/check_sam.py                    # check ./template.yaml
    python3 tests/templates/check_sam.py --template PATH    # check another copy
    python3 tests/templates/check_sam.py --self-test        # prove the checks can fail

1. Runs cfn-lint (in a subprocess, so its monkey-patching of the SAM translator
   does not leak into step 2); any E-level finding fails, warnings are printed.
2. Translates the template with the SAM translator into plain CloudFormation
   and asserts on the result: each function, its events (EventBridge patterns are
   matched against inline events and the fixtures under events/aws), dead-letter
   queues, environment, least-privilege IAM policies, the DynamoDB tables of alert-to-slack
   and drain-before-maintenance, alert-to-slack's alarm topic subscription,
   drain-before-maintenance's tag-conditioned ELBv2 / Auto Scaling grants and resume tick,
   block-ssh-bruteforce's CloudWatch Logs subscription (its filter pattern is matched
   against the sshd lines of the fixtures under events/aws/cloudwatch-logs), sweep schedule,
   network-ACL grants and its WAFv2 IP set alternative (SshWafIpSetArn), alert-to-slack's
   REFLEX_OWN_ROLE_ARNS (the remediating roles whose changes it does not report again, only
   when SlackWebhookSecret lets those functions post their own message), and
   the VPC option (VpcConfig, network-interface grants and VPC endpoints only with
   VpcSubnetIds; the template is evaluated with and without them).

Dependencies: python3 stdlib, cfn-lint, aws-sam-translator. Exit status is 0 only
when every check passes.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import rejected, report  # noqa: E402  (shared by the template checks)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

FUNCTION_ID = "CloseOpenPortsFunction"
BINARY = "close-open-ports"
ALERT_ID = "AlertToSlackFunction"
ALERT_BINARY = "alert-to-slack"
ALERT_TABLE = "AlertToSlackTable"
ALARM_TOPIC = "AlarmTopic"  # created when AlarmTopicArn is empty
DRAIN_ID = "DrainBeforeMaintenanceFunction"
DRAIN_BINARY = "drain-before-maintenance"
DRAIN_TABLE = "DrainBeforeMaintenanceTable"
SSH_ID = "BlockSshBruteforceFunction"
SSH_BINARY = "block-ssh-bruteforce"
SSH_CONDITION = "HasSshLogGroup"  # block-ssh-bruteforce exists only with SshLogGroupName
SSH_PREFIX = "BlockSshBruteforce"  # logical IDs of its resources (and the SAM-generated ones)
FUNCTION_IDS = (FUNCTION_ID, ALERT_ID, DRAIN_ID, SSH_ID)
TABLES = (ALERT_TABLE, DRAIN_TABLE)

# Parameter -> (default, close-open-ports environment variable it feeds).
PARAMETERS = {
    "DryRun": ("false", "REFLEX_DRY_RUN"),
    "ForbiddenPorts": ("22,3389", "REFLEX_FORBIDDEN_PORTS"),
    "AllowedCidrs": ("", "REFLEX_ALLOWED_CIDRS"),
    "ExemptTag": ("reflex:exempt=true", "REFLEX_EXEMPT_TAG"),
    "SlackWebhookSecret": ("", "REFLEX_SLACK_WEBHOOK_SECRET"),
    "SnsTopicArn": ("", "REFLEX_SNS_TOPIC_ARN"),
    "SweepSchedule": ("rate(1 day)", None),
    "ReauthorizeRemainder": ("false", "REFLEX_REAUTHORIZE_REMAINDER"),
    # alert-to-slack only (see ALERT_ENV)
    "SlackBotTokenSecret": ("", None),
    "SlackChannel": ("", None),
    "SlackRoutes": ("", None),
    "DeniedBurst": ("5/300", None),
    "AlarmTopicArn": ("", None),
    # drain-before-maintenance only (see DRAIN_ENV)
    "DrainPolicy": ("", None),
    "DrainMaxConcurrent": ("1", None),
    "DrainMaxConcurrentGlobal": ("0", None),  # 0 = no account-wide cap
    "DrainResumeSchedule": ("rate(1 minute)", None),
    "KubeApiUrl": ("", None),
    # block-ssh-bruteforce only (see SSH_ENV)
    "SshLogGroupName": ("/var/log/secure", None),
    "SshMaxFailures": ("5", None),
    "SshWindowSecs": ("600", None),
    "SshBlockSecs": ("86400", None),
    "NaclRuleRange": ("50-99", None),
    "SshBlockPrivate": ("false", None),
    "SshSweepSchedule": ("rate(5 minutes)", None),
    "SshWafIpSetArn": ("", None),
    # private networking: off unless subnets are given
    "VpcSubnetIds": ("", None),
    "VpcSecurityGroupIds": ("", None),
    "VpcId": ("", None),
    "VpcRouteTableIds": ("", None),
    "CreateVpcEndpoints": ("true", None),
}
ENV_VARS = {env for _, env in PARAMETERS.values() if env}

# alert-to-slack: environment variable -> the value that must feed it.
ALERT_ENV = {
    "REFLEX_DRY_RUN": {"Ref": "DryRun"},
    "REFLEX_SLACK_WEBHOOK_SECRET": {"Ref": "SlackWebhookSecret"},
    "REFLEX_SLACK_BOT_TOKEN_SECRET": {"Ref": "SlackBotTokenSecret"},
    "REFLEX_SLACK_CHANNEL": {"Ref": "SlackChannel"},
    "REFLEX_SLACK_ROUTES": {"Ref": "SlackRoutes"},
    "REFLEX_DYNAMODB_TABLE": {"Ref": ALERT_TABLE},
    "REFLEX_DENIED_BURST": {"Ref": "DeniedBurst"},
    "REFLEX_SNS_TOPIC_ARN": {"Ref": "SnsTopicArn"},
    # The remediating functions' roles: checked on its own (see OWN_ROLES_ENV).
    "REFLEX_OWN_ROLE_ARNS": None,
}
# drain-before-maintenance: environment variable -> the value that must feed it.
# The opt-in tag is fixed: it must equal the aws:ResourceTag condition of the role, and IAM
# condition keys cannot come from a parameter.
DRAIN_TAG_KEY, DRAIN_TAG_VALUE = "reflex:drain", "true"
DRAIN_GLOBAL_CONDITION = "HasDrainGlobalCap"  # DrainMaxConcurrentGlobal > 0
DRAIN_ENV = {
    "REFLEX_DRY_RUN": {"Ref": "DryRun"},
    "REFLEX_DYNAMODB_TABLE": {"Ref": DRAIN_TABLE},
    "REFLEX_DRAIN_POLICY": {"Ref": "DrainPolicy"},
    "REFLEX_DRAIN_TAG": f"{DRAIN_TAG_KEY}={DRAIN_TAG_VALUE}",
    "REFLEX_DRAIN_MAX_CONCURRENT": {"Ref": "DrainMaxConcurrent"},
    "REFLEX_SLACK_WEBHOOK_SECRET": {"Ref": "SlackWebhookSecret"},
    "REFLEX_SNS_TOPIC_ARN": {"Ref": "SnsTopicArn"},
    # Only when KubeApiUrl is set: the function rejects an empty URL.
    "REFLEX_KUBE_API_URL": {"Fn::If": ["HasKubeApiUrl", {"Ref": "KubeApiUrl"}, {"Ref": "AWS::NoValue"}]},
    # Only when DrainMaxConcurrentGlobal > 0: the function takes 1 to 1000, unset = no cap.
    "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL": {"Fn::If": [DRAIN_GLOBAL_CONDITION, {"Ref": "DrainMaxConcurrentGlobal"},
                                                      {"Ref": "AWS::NoValue"}]},
}
# Variables set only when their parameter is given (an Fn::If with AWS::NoValue).
DRAIN_CONDITIONAL_ENV = {"REFLEX_KUBE_API_URL", "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"}
# block-ssh-bruteforce: environment variable -> the value that must feed it. Its block records
# live in alert-to-slack's table ("the same store as for alerts"): no table of its own.
SSH_ENV = {
    "REFLEX_DRY_RUN": {"Ref": "DryRun"},
    "REFLEX_DYNAMODB_TABLE": {"Ref": ALERT_TABLE},
    "REFLEX_ALLOWED_CIDRS": {"Ref": "AllowedCidrs"},
    "REFLEX_SSH_MAX_FAILURES": {"Ref": "SshMaxFailures"},
    "REFLEX_SSH_WINDOW_SECS": {"Ref": "SshWindowSecs"},
    "REFLEX_SSH_BLOCK_SECS": {"Ref": "SshBlockSecs"},
    "REFLEX_NACL_RULE_RANGE": {"Ref": "NaclRuleRange"},
    "REFLEX_SSH_BLOCK_PRIVATE": {"Ref": "SshBlockPrivate"},
    # Empty (the default) is unset to the function: block in the network ACL.
    "REFLEX_SSH_WAF_IPSET_ARN": {"Ref": "SshWafIpSetArn"},
    "REFLEX_SLACK_WEBHOOK_SECRET": {"Ref": "SlackWebhookSecret"},
    "REFLEX_SNS_TOPIC_ARN": {"Ref": "SnsTopicArn"},
}
# Which Slack secret parameters each function's role may read.
SECRET_PARAMETERS = {
    FUNCTION_ID: ("SlackWebhookSecret",),
    ALERT_ID: ("SlackWebhookSecret", "SlackBotTokenSecret"),
    DRAIN_ID: ("SlackWebhookSecret",),
    SSH_ID: ("SlackWebhookSecret",),
}

# Private networking: what Lambda needs to manage the functions' network interfaces in
# VpcSubnetIds (AWSLambdaVPCAccessExecutionRole's EC2 actions). Granted only with InVpc.
# The Describe calls work only on Resource "*"; Create (authorised against the interface,
# subnet and security group) and the others get this account's resources in the region,
# with the CDK app's Sids (infra/cdk/lib/reflex-stack.ts, vpcStatements).
VPC_CONDITION = "InVpc"
VPC_ENI_STAR_ACTIONS = {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
VPC_ENI_CHANGE_ACTIONS = {"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                          "ec2:UnassignPrivateIpAddresses"}
VPC_DESCRIBE_SID, VPC_CHANGES_SID = "VpcDescribeNetworkInterfaces", "VpcNetworkInterfaceChanges"
VPC_ENI_ACTIONS = VPC_ENI_STAR_ACTIONS | VPC_ENI_CHANGE_ACTIONS
VPC_ENI_ARN = "arn:aws:ec2:us-east-1:123456789012:*/*"
# Parameter values of a deploy into a VPC.
VPC_ARGS = {"VpcSubnetIds": "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2", "VpcSecurityGroupIds": "sg-0ccccccccccccccc3",
            "VpcId": "vpc-0ddddddddddddddd4", "VpcRouteTableIds": "rtb-0eeeeeeeeeeeeeee5,rtb-0fffffffffffffff6"}

# Every action the function's role may be granted. Anything else is a regression.
# What every function's role may have: its logs, its DLQ, the SNS copy, the Slack secret
# (and, only with InVpc, the network-interface actions: see the private networking checks).
COMMON_ROLE_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "sns:Publish",
    "ssm:GetParameter",
    "secretsmanager:GetSecretValue",
} | VPC_ENI_ACTIONS
ALLOWED_ROLE_ACTIONS = COMMON_ROLE_ACTIONS | {
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:GetManagedPrefixListEntries",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupIngress",
    "logs:CreateLogGroup",
}
# Every action alert-to-slack's role may be granted.
ALERT_DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
ALERT_ROLE_ACTIONS = ALERT_DYNAMODB_ACTIONS | COMMON_ROLE_ACTIONS
# drain-before-maintenance. Read-only calls without resource-level permissions (Resource "*"):
DRAIN_READ_ACTIONS = {
    "ec2:DescribeInstances",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "autoscaling:DescribeAutoScalingInstances",
}
# Mutating calls: only on this account's target groups / Auto Scaling groups carrying the tag.
DRAIN_ELB_ACTIONS = {"elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:RegisterTargets"}
DRAIN_ASG_ACTIONS = {"autoscaling:EnterStandby", "autoscaling:ExitStandby", "autoscaling:CompleteLifecycleAction",
                     "autoscaling:RecordLifecycleActionHeartbeat"}
DRAIN_TARGET_GROUP_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/*/*"
DRAIN_ASG_ARN = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:*:autoScalingGroupName/*"
# Its own table: item calls, and Scan to list the pending drains.
DRAIN_DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"}
DRAIN_ROLE_ACTIONS = DRAIN_READ_ACTIONS | DRAIN_ELB_ACTIONS | DRAIN_ASG_ACTIONS | DRAIN_DYNAMODB_ACTIONS | COMMON_ROLE_ACTIONS
# block-ssh-bruteforce. The instance (its subnet) and the subnet's ACL: Describe calls on "*".
SSH_READ_ACTIONS = {"ec2:DescribeInstances", "ec2:DescribeNetworkAcls"}
# DENY entries in and out: only this account's network ACLs in the region, never "*".
SSH_NACL_ACTIONS = {"ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAclEntry"}
SSH_NACL_ARN = "arn:aws:ec2:us-east-1:123456789012:network-acl/*"
# alert-to-slack's table: item calls, and Scan to list the blocks the sweep may remove.
SSH_DYNAMODB_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan"}
# The WAFv2 alternative (SshWafIpSetArn): read the IP set with its lock token, write it back;
# only on that IP set, only when it is given.
SSH_WAF_PARAM = "SshWafIpSetArn"
SSH_WAF_CONDITION = "HasSshWafIpSet"
SSH_WAF_ACTIONS = {"wafv2:GetIPSet", "wafv2:UpdateIPSet"}
SSH_WAF_SID = "WafIpSet"
SSH_WAF_ARNS = ("arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh/91f365c5-9053-4502-aef5-7b140e2c85db",
                "arn:aws:wafv2:us-east-1:123456789012:global/ipset/edge_v4/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
SSH_ROLE_ACTIONS = SSH_READ_ACTIONS | SSH_NACL_ACTIONS | SSH_DYNAMODB_ACTIONS | SSH_WAF_ACTIONS | COMMON_ROLE_ACTIONS
ROLE_ACTIONS = {FUNCTION_ID: ALLOWED_ROLE_ACTIONS, ALERT_ID: ALERT_ROLE_ACTIONS, DRAIN_ID: DRAIN_ROLE_ACTIONS, SSH_ID: SSH_ROLE_ACTIONS}
# Read-only actions that may be granted on Resource "*" (besides ec2:Describe* and logs).
READ_ONLY_ON_STAR = DRAIN_READ_ACTIONS | SSH_READ_ACTIONS
# Managed policies tolerated on the role (logs only). The template uses none.
ALLOWED_MANAGED_POLICY_SUFFIXES = ("policy/service-role/AWSLambdaBasicExecutionRole",)

CONFIG_RULE_PREFIXES = [
    "restricted-ssh",
    "restricted-common-ports",
    "vpc-sg-open-only-to-authorized-ports",
    "securityhub-restricted-ssh-",
    "securityhub-restricted-common-ports-",
    "securityhub-vpc-sg-open-only-to-authorized-ports-",
]

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "reflex",
    "AWS::URLSuffix": "amazonaws.com",
}
SG_ARN = "arn:aws:ec2:us-east-1:123456789012:security-group/*"


class CheckFailed(Exception):
    pass


def require(cond: Any, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- loading


def load_source(path: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse  # handles !Ref, !Sub, ... (and JSON)

    data = yaml_parse(path.read_text())
    require(isinstance(data, dict), f"{path} is not a template mapping")
    return data


class StubManagedPolicyLoader:
    """Stands in for samtranslator.translator.managed_policy_translator.ManagedPolicyLoader,
    which would call iam:ListPolicies. transform() only ever calls .load()."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        }


def translate(source: dict) -> dict:
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    sam = copy.deepcopy(source)
    # The translator only accepts S3 URIs; sam build/package rewrite local paths.
    for res in sam.get("Resources", {}).values():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and not str(props.get("CodeUri", "")).startswith("s3://"):
            props["CodeUri"] = "s3://reflex-artifacts/close-open-ports.zip"
    return transform(sam, {}, StubManagedPolicyLoader())


def run_cfn_lint(path: Path) -> tuple[list[dict], list[dict]]:
    code = "import sys; from cfnlint.runner.cli import main; sys.argv[0] = 'cfn-lint'; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--format", "json", "--", str(path)],
        capture_output=True,
        text=True,
        cwd=str(path.parent),
    )
    try:
        matches = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise CheckFailed(f"cfn-lint did not run (exit {proc.returncode}): {proc.stdout}{proc.stderr}".strip())
    errors = [m for m in matches if m.get("Level") == "Error"]
    others = [m for m in matches if m.get("Level") != "Error"]
    if proc.returncode & 1 or (proc.returncode & 2 and not errors):
        raise CheckFailed(f"cfn-lint failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return errors, others


def fmt_match(m: dict) -> str:
    loc = m.get("Location", {}).get("Start", {})
    return f"{m['Rule']['Id']} {m['Message']} ({Path(m.get('Filename', '')).name}:{loc.get('LineNumber', '?')})"


# --------------------------------------------------------------------------- intrinsics


class Env:
    """Parameter values + pseudo parameters, for evaluating Conditions and simple intrinsics."""

    def __init__(self, template: dict, overrides: dict[str, str] | None = None):
        self.template = template
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(overrides or {})
        self.params.update(PSEUDO)
        # Ref of a CommaDelimitedList is a list ("" is [""], as in CloudFormation).
        self.lists = {k for k, v in template.get("Parameters", {}).items() if v.get("Type") == "CommaDelimitedList"}

    def condition(self, name: str) -> bool:
        conds = self.template.get("Conditions", {})
        require(name in conds, f"condition {name} is not defined")
        return bool(self.eval(conds[name]))

    def eval(self, node: Any) -> Any:
        if isinstance(node, (str, int, float, bool)):
            return node
        if isinstance(node, list):
            return [self.eval(n) for n in node]
        if not isinstance(node, dict) or len(node) != 1:
            return node
        (fn, arg), = node.items()
        if fn == "Ref":
            if arg in self.lists:
                return self.params[arg].split(",")
            return self.params.get(arg, f"<{arg}>")
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.eval(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.eval(arg[0])
        if fn == "Fn::And":
            return all(self.eval(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.eval(x) for x in arg)
        if fn == "Fn::If":
            return self.eval(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Select":
            return self.eval(arg[1])[int(self.eval(arg[0]))]
        if fn == "Fn::Split":
            return str(self.eval(arg[1])).split(arg[0])
        if fn == "Fn::Join":
            return arg[0].join(str(x) for x in as_list(self.eval(arg[1])))
        if fn == "Fn::EachMemberEquals":  # Rules only
            return all(str(x) == str(self.eval(arg[1])) for x in as_list(self.eval(arg[0])))
        if fn == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

            def sub(m: re.Match) -> str:
                name = m.group(1)
                if name in extra:
                    return str(self.eval(extra[name]))
                return str(self.params.get(name, f"<{name}>"))

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if fn == "Fn::GetAtt":
            target = arg if isinstance(arg, list) else arg.split(".", 1)
            return f"<{target[0]}.{target[1]}>"
        return node


def is_no_value(node: Any) -> bool:
    return node == {"Ref": "AWS::NoValue"}


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def expand_if(node: Any, conds: tuple = ()) -> Iterator[tuple[Any, tuple]]:
    """Yields (value, ((condition, branch), ...)) for every Fn::If branch; drops AWS::NoValue."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        name, yes, no = node["Fn::If"]
        yield from expand_if(yes, conds + ((name, True),))
        yield from expand_if(no, conds + ((name, False),))
    elif not is_no_value(node):
        yield node, conds


class Statement:
    def __init__(self, where: str, raw: dict, conds: tuple):
        self.where, self.raw, self.conds = where, raw, conds
        self.effect = raw.get("Effect")
        self.actions = [a for v in as_list(raw.get("Action", [])) for a, _ in expand_if(v)]
        self.resources = [r for v in as_list(raw.get("Resource", [])) for r, _ in expand_if(v)]

    def label(self) -> str:
        sid = self.raw.get("Sid", "<no Sid>")
        when = " if " + " and ".join(f"{'' if b else 'not '}{c}" for c, b in self.conds) if self.conds else ""
        return f"{self.where} {sid}{when}"

    def active(self, env: Env) -> bool:
        return all(env.condition(c) == b for c, b in self.conds)


def is_vpc_statement(st: Statement) -> bool:
    """A network-interface grant of the private-networking option (checked on its own, strictly:
    only these actions, only with InVpc); the per-function role checks skip it."""
    return bool(set(st.actions) & VPC_ENI_ACTIONS)


def policy_documents(resources: dict) -> Iterator[tuple[str, dict]]:
    """Every policy document anywhere in the resources: (location, document)."""

    def walk(node: Any, path: str) -> Iterator[tuple[str, dict]]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("PolicyDocument", "AssumeRolePolicyDocument"):
                    for doc, _ in expand_if(v):
                        yield f"{path}.{k}", doc
                else:
                    yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")

    for rid, res in resources.items():
        yield from walk(res, rid)


def statements(resources: dict) -> list[Statement]:
    out = []
    for where, doc in policy_documents(resources):
        if not isinstance(doc, dict):
            continue
        for item in as_list(doc.get("Statement", [])):
            for raw, conds in expand_if(item):
                require(isinstance(raw, dict), f"{where}: statement is not a mapping: {raw!r}")
                out.append(Statement(where, raw, conds))
    return out


def role_statements(cfn: dict, fid: str = FUNCTION_ID) -> list[Statement]:
    """Statements of the function's execution role (inline policies and attached AWS::IAM::Policy)."""
    resources = cfn["Resources"]
    role_id = function_role_id(cfn, fid)
    role = resources[role_id]
    docs = {f"{role_id}.Policies[{i}]": p.get("PolicyDocument") for i, p in enumerate(role["Properties"].get("Policies", []))}
    for rid, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = res["Properties"].get("Roles", [])
            if {"Ref": role_id} in roles:
                docs[rid] = res["Properties"].get("PolicyDocument")
    return statements({k: {"PolicyDocument": v} for k, v in docs.items()})


def function_role_id(cfn: dict, fid: str = FUNCTION_ID) -> str:
    role = function(cfn, fid)["Properties"].get("Role")
    require(isinstance(role, dict) and "Fn::GetAtt" in role, f"function Role is not a GetAtt of a role in this stack: {role!r}")
    target = role["Fn::GetAtt"]
    target = target if isinstance(target, list) else target.split(".", 1)
    require(cfn["Resources"].get(target[0], {}).get("Type") == "AWS::IAM::Role", f"{target[0]} is not an AWS::IAM::Role")
    return target[0]


def function(cfn: dict, fid: str = FUNCTION_ID) -> dict:
    fns = {k: v for k, v in cfn["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    require(sorted(fns) == sorted(FUNCTION_IDS), f"expected exactly the Lambda functions {sorted(FUNCTION_IDS)}, found {sorted(fns)}")
    return fns[fid]


def getatt_target(node: Any) -> str | None:
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        t = node["Fn::GetAtt"]
        return (t if isinstance(t, list) else t.split(".", 1))[0]
    return None


# --------------------------------------------------------------------------- EventBridge


def pattern_matches(pattern: dict, event: dict) -> bool:
    """A small EventBridge matcher: exact values, prefix, suffix, wildcard, exists, anything-but, $or."""
    for key, want in pattern.items():
        if key == "$or":
            require(isinstance(want, list) and len(want) >= 2, f"$or needs a list of at least two patterns: {want!r}")
            if not any(pattern_matches(branch, event) for branch in want):
                return False
            continue
        present = isinstance(event, dict) and key in event
        value = event.get(key) if present else None
        if isinstance(want, dict):
            if not (present and isinstance(value, dict) and pattern_matches(want, value)):
                return False
            continue
        if not any(_match_one(w, present, value) for w in want):
            return False
    return True


def _match_one(rule: Any, present: bool, value: Any) -> bool:
    if isinstance(rule, dict):
        (op, arg), = rule.items()
        if op == "exists":
            return present == arg
        if not present:
            return False
        values = value if isinstance(value, list) else [value]
        if op == "prefix":
            return any(isinstance(v, str) and v.startswith(arg) for v in values)
        if op == "suffix":
            return any(isinstance(v, str) and v.endswith(arg) for v in values)
        if op == "wildcard":
            return any(isinstance(v, str) and fnmatch.fnmatchcase(v, arg) for v in values)
        if op == "anything-but":
            return all(not _match_one(a, True, v) for a in as_list(arg) for v in values)
        raise CheckFailed(f"pattern operator {op!r} not supported by this checker")
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    return rule in values


def cloudtrail_event(name: str, error: str | None = None) -> dict:
    detail = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"},
        "eventSource": "ec2.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "requestParameters": {"groupId": "sg-0123456789abcdef0"},
    }
    if error:
        detail["errorCode"] = error
        detail["errorMessage"] = "You are not authorized to perform this operation."
    return {"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", "detail": detail}


def config_event(rule: str, compliance: str = "NON_COMPLIANT", rtype: str = "AWS::EC2::SecurityGroup") -> dict:
    """Shape of a real 'Config Rules Compliance Change' event: resourceType appears at
    detail.resourceType and in newEvaluationResult.evaluationResultIdentifier.evaluationResultQualifier."""
    qualifier = {"configRuleName": rule, "resourceType": rtype, "resourceId": "sg-0123456789abcdef0"}
    return {
        "source": "aws.config",
        "detail-type": "Config Rules Compliance Change",
        "detail": {
            "resourceId": "sg-0123456789abcdef0",
            "awsRegion": "us-east-1",
            "awsAccountId": "123456789012",
            "configRuleName": rule,
            "recordVersion": "1.0",
            "configRuleARN": "arn:aws:config:us-east-1:123456789012:config-rule/config-rule-abc123",
            "messageType": "ComplianceChangeNotification",
            "newEvaluationResult": {
                "evaluationResultIdentifier": {
                    "evaluationResultQualifier": qualifier,
                    "orderingTimestamp": "2024-05-01T10:00:00.000Z",
                },
                "complianceType": compliance,
                "resultRecordedTime": "2024-05-01T10:00:01.000Z",
                "configRuleInvokedTime": "2024-05-01T10:00:00.500Z",
            },
            "oldEvaluationResult": {
                "evaluationResultIdentifier": {"evaluationResultQualifier": qualifier},
                "complianceType": "COMPLIANT",
            },
            "notificationCreationTime": "2024-05-01T10:00:02.000Z",
            "resourceType": rtype,
        },
    }


def api_event(name: str, event_source: str, error: str | None = None, identity: str = "IAMUser",
              invoked_by: str | None = None, read_only: bool = False, source: str | None = None) -> dict:
    """An 'AWS API Call via CloudTrail' event for any service (source aws.<service> unless given)."""
    arn = "arn:aws:iam::123456789012:root" if identity == "Root" else "arn:aws:iam::123456789012:user/alice"
    user: dict[str, Any] = {"type": identity, "principalId": "AIDAEXAMPLEPRINCIPAL", "arn": arn, "accountId": "123456789012"}
    if invoked_by:
        user["invokedBy"] = invoked_by
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": user,
        "eventSource": event_source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10",
        "requestParameters": {},
        "responseElements": None,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "eventCategory": "Management",
    }
    if error:
        detail["errorCode"] = error
        detail["errorMessage"] = "User is not authorized to perform this action"
    service = event_source.split(".", 1)[0]
    return {"source": source or f"aws.{service}", "detail-type": "AWS API Call via CloudTrail", "detail": detail}


def signin_event(identity: str = "Root", result: str = "Success", name: str = "ConsoleLogin") -> dict:
    arn = "arn:aws:iam::123456789012:root" if identity == "Root" else "arn:aws:iam::123456789012:user/alice"
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": identity, "principalId": "123456789012", "arn": arn, "accountId": "123456789012"},
        "eventSource": "signin.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "responseElements": {name: result},
        "additionalEventData": {"MFAUsed": "No", "MobileVersion": "No"},
        "eventType": "AwsConsoleSignIn",
        "managementEvent": True,
    }
    if result == "Failure":
        detail["errorMessage"] = "Failed authentication"
    return {"source": "aws.signin", "detail-type": "AWS Console Sign In via CloudTrail", "detail": detail}


def alarm_event(state: str = "ALARM", detail_type: str = "CloudWatch Alarm State Change") -> dict:
    return {
        "source": "aws.cloudwatch",
        "detail-type": detail_type,
        "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:api-5xx"],
        "detail": {
            "alarmName": "api-5xx",
            "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2024-05-01T10:00:00.000+0000"},
            "previousState": {"value": "OK" if state != "OK" else "ALARM"},
            "configuration": {"metrics": []},
        },
    }


def health_event(category: str = "issue", detail_type: str = "AWS Health Event") -> dict:
    return {
        "source": "aws.health",
        "detail-type": detail_type,
        "detail": {"eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_OPERATIONAL_ISSUE/x", "service": "EC2",
                   "eventTypeCode": "AWS_EC2_OPERATIONAL_ISSUE", "eventTypeCategory": category, "statusCode": "open"},
    }


def guardduty_event(severity: float = 8.0, detail_type: str = "GuardDuty Finding") -> dict:
    return {
        "source": "aws.guardduty",
        "detail-type": detail_type,
        "detail": {"schemaVersion": "2.0", "id": "a1b2c3", "type": "UnauthorizedAccess:EC2/SSHBruteForce", "severity": severity},
    }


def function_rules(cfn: dict, fid: str = FUNCTION_ID) -> dict[str, dict]:
    """AWS::Events::Rule resources with the function as a target."""
    out = {}
    for rid, res in cfn["Resources"].items():
        if res["Type"] != "AWS::Events::Rule":
            continue
        for t in res["Properties"].get("Targets", []):
            if getatt_target(t.get("Arn")) == fid:
                out[rid] = res
    return out


def rule_with(cfn: dict, pred: Callable[[dict], bool], what: str, fid: str = FUNCTION_ID) -> tuple[str, dict]:
    found = [(rid, r) for rid, r in function_rules(cfn, fid).items() if pred(r["Properties"])]
    require(len(found) == 1, f"expected exactly one {what} rule targeting {fid}, found {[r for r, _ in found]}")
    return found[0]


def source_is(src: str) -> Callable[[dict], bool]:
    return lambda p: src in as_list(p.get("EventPattern", {}).get("source", []))


# --------------------------------------------------------------------------- checks

CHECKS: list[tuple[str, Callable[["Ctx"], None]]] = []


def check(title: str):
    def deco(fn):
        CHECKS.append((title, fn))
        return fn

    return deco


class Ctx:
    def __init__(self, path: Path):
        self.path = path
        self._source: dict | None = None
        self._cfn: dict | None = None

    @property
    def source(self) -> dict:
        if self._source is None:
            self._source = load_source(self.path)
        return self._source

    @property
    def cfn(self) -> dict:
        if self._cfn is None:
            try:
                self._cfn = translate(self.source)
            except Exception as e:  # the translator raises several exception types
                causes = getattr(e, "causes", None)
                detail = "; ".join(getattr(c, "message", str(c)) for c in causes) if causes else str(e)
                raise CheckFailed(f"SAM translation failed: {detail}")
        return self._cfn

    @property
    def resources(self) -> dict:
        return self.cfn["Resources"]


@check("cfn-lint reports no errors")
def _(ctx: Ctx) -> None:
    errors, others = run_cfn_lint(ctx.path)
    for m in others:
        print(f"      cfn-lint {m.get('Level', '?').lower()}: {fmt_match(m)}")
    require(not errors, "cfn-lint errors:\n" + "\n".join(f"        {fmt_match(m)}" for m in errors))


@check("SAM translator produces plain CloudFormation")
def _(ctx: Ctx) -> None:
    require(ctx.source.get("Transform") in ("AWS::Serverless-2016-10-31", ["AWS::Serverless-2016-10-31"]),
            "Transform is not AWS::Serverless-2016-10-31")
    types = {r["Type"] for r in ctx.resources.values()}
    require(not [t for t in types if t.startswith("AWS::Serverless::")], f"untranslated resources: {types}")
    require("Transform" not in ctx.cfn, "Transform still present after translation")


def require_al2023_arm64(p: dict) -> None:
    """A function's Properties: provided.al2023 on arm64, handler bootstrap, 128 MB."""
    require(p.get("Runtime") == "provided.al2023", f"Runtime is {p.get('Runtime')!r}")
    require(p.get("Architectures") == ["arm64"], f"Architectures is {p.get('Architectures')!r}")
    require(p.get("Handler") == "bootstrap", f"Handler is {p.get('Handler')!r}")
    require(p.get("MemorySize") == 128, f"MemorySize is {p.get('MemorySize')!r}")


@check("function is provided.al2023 / arm64 / bootstrap, 128 MB, 60 s")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn)["Properties"]
    require_al2023_arm64(p)
    require(p.get("Timeout") == 60, f"Timeout is {p.get('Timeout')!r}")


def require_cargo_lambda_build(ctx: Ctx, fid: str, binary: str) -> None:
    res = ctx.source["Resources"].get(fid, {})
    require(res.get("Type") == "AWS::Serverless::Function", f"{fid} is not an AWS::Serverless::Function")
    meta = res.get("Metadata", {})
    require(meta.get("BuildMethod") == "rust-cargolambda", f"{fid} Metadata.BuildMethod is {meta.get('BuildMethod')!r}")
    require(meta.get("BuildProperties", {}).get("Binary") == binary,
            f"{fid} Metadata.BuildProperties.Binary is {meta.get('BuildProperties', {}).get('Binary')!r}, expected {binary!r}")
    require(res.get("Properties", {}).get("CodeUri") in (".", "./"), f"{fid} CodeUri is not the workspace root '.'")


@check("function is built by cargo-lambda from the workspace binary close-open-ports")
def _(ctx: Ctx) -> None:
    require_cargo_lambda_build(ctx, FUNCTION_ID, BINARY)


@check("alert-to-slack is built by cargo-lambda from the workspace binary alert-to-slack")
def _(ctx: Ctx) -> None:
    require_cargo_lambda_build(ctx, ALERT_ID, ALERT_BINARY)


@check("alert-to-slack is provided.al2023 / arm64 / bootstrap, 128 MB, 120 s, no reserved concurrency")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn, ALERT_ID)["Properties"]
    require_al2023_arm64(p)
    # 50 alarms at ~1 Slack message/s/channel must fit in one invocation's time budget.
    require(p.get("Timeout") == 120, f"Timeout is {p.get('Timeout')!r}, expected 120")
    require("ReservedConcurrentExecutions" not in p,
            f"ReservedConcurrentExecutions is {p.get('ReservedConcurrentExecutions')!r}; it must not be set")


@check("JSON logging into a log group with retention")
def _(ctx: Ctx) -> None:
    groups = []
    for fid in FUNCTION_IDS:
        lc = function(ctx.cfn, fid)["Properties"].get("LoggingConfig", {})
        require(lc.get("LogFormat") == "JSON", f"{fid} LoggingConfig.LogFormat is {lc.get('LogFormat')!r}")
        ref = lc.get("LogGroup")
        require(isinstance(ref, dict) and "Ref" in ref, f"{fid} LoggingConfig.LogGroup is not a Ref to a log group: {ref!r}")
        lg = ctx.resources.get(ref["Ref"], {})
        require(lg.get("Type") == "AWS::Logs::LogGroup", f"{ref['Ref']} is not an AWS::Logs::LogGroup")
        require(lg["Properties"].get("RetentionInDays") is not None, f"log group {ref['Ref']} has no RetentionInDays")
        groups.append(ref["Ref"])
    require(len(set(groups)) == len(groups), f"functions share a log group: {groups}")


@check("parameters exist with the expected defaults")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})
    for name, (default, _) in PARAMETERS.items():
        require(name in params, f"parameter {name} missing")
        require(str(params[name].get("Default")) == default,
                f"parameter {name} default is {params[name].get('Default')!r}, expected {default!r}")
    for name in ("DryRun", "ReauthorizeRemainder"):
        require(sorted(params[name].get("AllowedValues", [])) == ["false", "true"], f"{name} must allow only true/false")


@check("alert-to-slack parameters: DeniedBurst, SlackBotTokenSecret, SlackChannel, AlarmTopicArn patterns; every parameter in a ParameterGroup")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})

    def pattern_of(name: str) -> str:
        pat = params.get(name, {}).get("AllowedPattern")
        require(pat, f"parameter {name} has no AllowedPattern")
        return pat

    cases = {
        "DeniedBurst": (["5/300", "1/60", "20/3600"], ["", "5", "0/300", "5/0", "5/300s", "five/300", "-1/300"]),
        "SlackBotTokenSecret": (["", "/reflex/slack-bot-token", "arn:aws:secretsmanager:us-east-1:123456789012:secret:reflex/bot-AbCdEf"],
                                ["reflex/slack-bot-token", "xoxb-123-456-abc", "arn:aws:ssm:us-east-1:123456789012:parameter/x"]),
        "SlackChannel": (["", "#alerts", "#sec-ops_1", "C0123456", "G0ABCDEF12"], ["#", "#a b", "#a,#b", "alerts channel"]),
        "AlarmTopicArn": (["", "arn:aws:sns:us-east-1:123456789012:alarms", "arn:aws-us-gov:sns:us-gov-west-1:123456789012:a-b_c"],
                          ["alarms", "arn:aws:sns:us-east-1:123456789012:alarms.fifo", "arn:aws:sqs:us-east-1:123456789012:q"]),
    }
    for name, (good, bad) in cases.items():
        pat = pattern_of(name)
        for v in good:
            require(re.fullmatch(pat, v), f"{name} AllowedPattern rejects {v!r}")
        for v in bad:
            require(not re.fullmatch(pat, v), f"{name} AllowedPattern accepts {v!r}")
    require(pattern_of("SlackBotTokenSecret") == pattern_of("SlackWebhookSecret"),
            "SlackBotTokenSecret and SlackWebhookSecret have different AllowedPatterns")
    groups = ctx.source.get("Metadata", {}).get("AWS::CloudFormation::Interface", {}).get("ParameterGroups", [])
    grouped = [n for g in groups for n in g.get("Parameters", [])]
    require(len(grouped) == len(set(grouped)), f"a parameter is in more than one ParameterGroup: {grouped}")
    missing = set(params) - set(grouped)
    require(not missing, f"parameters in no ParameterGroup: {sorted(missing)}")
    require(not set(grouped) - set(params), f"ParameterGroups name undeclared parameters: {sorted(set(grouped) - set(params))}")


@check("environment: exactly the REFLEX_* variables, each fed by its parameter")
def _(ctx: Ctx) -> None:
    env = function(ctx.cfn)["Properties"].get("Environment", {}).get("Variables", {})
    missing, extra = ENV_VARS - set(env), set(env) - ENV_VARS
    require(not missing, f"missing environment variables: {sorted(missing)}")
    require(not extra, f"unexpected environment variables: {sorted(extra)}")
    for param, (_, var) in PARAMETERS.items():
        if var:
            require(env[var] == {"Ref": param}, f"{var} is {env[var]!r}, expected Ref {param}")


@check("alert-to-slack environment: exactly its REFLEX_* variables, fed by its parameters and the table")
def _(ctx: Ctx) -> None:
    env = function(ctx.cfn, ALERT_ID)["Properties"].get("Environment", {}).get("Variables", {})
    missing, extra = set(ALERT_ENV) - set(env), set(env) - set(ALERT_ENV)
    require(not missing, f"missing environment variables: {sorted(missing)}")
    require(not extra, f"unexpected environment variables: {sorted(extra)}")
    for var, want in ALERT_ENV.items():
        if want is None:  # checked on its own
            continue
        require(env[var] == want, f"{var} is {env[var]!r}, expected {want!r}")
        ref = want.get("Ref")
        require(ref in ctx.source.get("Parameters", {}) or ref in ctx.resources, f"{var}: {ref} is neither a parameter nor a resource")
    require(ctx.resources.get(ALERT_TABLE, {}).get("Type") == "AWS::DynamoDB::Table", f"{ALERT_TABLE} is not a DynamoDB table")


@check("drain-before-maintenance is built by cargo-lambda from the workspace binary drain-before-maintenance")
def _(ctx: Ctx) -> None:
    require_cargo_lambda_build(ctx, DRAIN_ID, DRAIN_BINARY)


@check("drain-before-maintenance is provided.al2023 / arm64 / bootstrap, 128 MB, 900 s, no reserved concurrency")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn, DRAIN_ID)["Properties"]
    require_al2023_arm64(p)
    # ELBv2 draining is waited for within the notice (spot: 2 minutes, deregistration delay up
    # to the target group's setting); longer waits are resumed by the schedule.
    require(p.get("Timeout") == 900, f"Timeout is {p.get('Timeout')!r}, expected 900")
    # The drain cap is a lease in the table; a reservation would only delay drains.
    require("ReservedConcurrentExecutions" not in p,
            f"ReservedConcurrentExecutions is {p.get('ReservedConcurrentExecutions')!r}; it must not be set")


def resolve(env: Env, node: Any) -> Any:
    """The value an environment variable gets: Fn::If branches taken, None for AWS::NoValue."""
    while isinstance(node, dict) and set(node) == {"Fn::If"}:
        name, yes, no = node["Fn::If"]
        node = yes if env.condition(name) else no
    return None if is_no_value(node) else env.eval(node)


@check("drain-before-maintenance environment: exactly its REFLEX_* variables; REFLEX_KUBE_API_URL only when KubeApiUrl is set, "
       "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL only when DrainMaxConcurrentGlobal > 0")
def _(ctx: Ctx) -> None:
    env = function(ctx.cfn, DRAIN_ID)["Properties"].get("Environment", {}).get("Variables", {})
    missing, extra = set(DRAIN_ENV) - set(env), set(env) - set(DRAIN_ENV)
    require(not missing, f"missing environment variables: {sorted(missing)}")
    require(not extra, f"unexpected environment variables: {sorted(extra)}")
    for var, want in DRAIN_ENV.items():
        require(env[var] == want, f"{var} is {env[var]!r}, expected {want!r}")
    require(ctx.resources.get(DRAIN_TABLE, {}).get("Type") == "AWS::DynamoDB::Table", f"{DRAIN_TABLE} is not a DynamoDB table")
    url = "https://ABC.gr7.eu-west-1.eks.amazonaws.com"
    for value, want in (("", None), (url, url)):
        got = resolve(Env(ctx.source, {"KubeApiUrl": value}), env["REFLEX_KUBE_API_URL"])
        require(got == want, f"KubeApiUrl={value!r}: REFLEX_KUBE_API_URL is {got!r}, expected {'unset' if want is None else want!r}")
    # 0 = no account-wide cap: the variable must be absent, never "0" (the function rejects it).
    for value, want in (("0", None), ("1", "1"), ("25", "25"), ("1000", "1000")):
        got = resolve(Env(ctx.source, {"DrainMaxConcurrentGlobal": value}), env["REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"])
        require(got == want, f"DrainMaxConcurrentGlobal={value}: REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL is {got!r}, "
                f"expected {'unset' if want is None else repr(want)}")
    for var, value in env.items():
        if var not in DRAIN_CONDITIONAL_ENV:
            require(not (isinstance(value, dict) and "Fn::If" in value), f"{var} depends on a condition")


@check("drain-before-maintenance parameters: DrainPolicy, DrainMaxConcurrent (1-1000), DrainMaxConcurrentGlobal (0-1000, "
       "in the drain group), DrainResumeSchedule, KubeApiUrl constraints")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})

    def pattern_of(name: str) -> str:
        pat = params.get(name, {}).get("AllowedPattern")
        require(pat, f"parameter {name} has no AllowedPattern")
        return pat

    cases = {
        "DrainPolicy": (["", "freeze=ignore-under:60, maintenance=before:900", "rebalance=now,spot-interruption=ignore"],
                        ["freeze=now; reboot=now", "$(reboot)", "freeze=\"now\""]),
        "DrainResumeSchedule": (["rate(1 minute)", "rate(5 minutes)", "cron(0/2 * * * ? *)"],
                                ["", "1 minute", "every minute", "rate 1 minute"]),
        "KubeApiUrl": (["", "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "https://10.0.0.1:6443", "http://127.0.0.1:8001"],
                       ["ABC.gr7.eu-west-1.eks.amazonaws.com", "ftp://k8s.example", " ", "https://"]),
    }
    for name, (good, bad) in cases.items():
        pat = pattern_of(name)
        for v in good:
            require(re.fullmatch(pat, v), f"{name} AllowedPattern rejects {v!r}")
        for v in bad:
            require(not re.fullmatch(pat, v), f"{name} AllowedPattern accepts {v!r}")
    mc = params.get("DrainMaxConcurrent", {})
    # The function accepts 1 to 1000 and fails at cold start outside that range.
    require(mc.get("Type") == "Number", f"DrainMaxConcurrent Type is {mc.get('Type')!r}, expected Number")
    require(mc.get("MinValue") == 1 and mc.get("MaxValue") == 1000,
            f"DrainMaxConcurrent range is {mc.get('MinValue')!r}..{mc.get('MaxValue')!r}, expected 1..1000")
    # The account-wide cap: 1 to 1000 as the function takes it, plus 0 for "no cap" (unset).
    mg = params.get("DrainMaxConcurrentGlobal", {})
    require(mg.get("Type") == "Number", f"DrainMaxConcurrentGlobal Type is {mg.get('Type')!r}, expected Number")
    require(mg.get("MinValue") == 0 and mg.get("MaxValue") == 1000,
            f"DrainMaxConcurrentGlobal range is {mg.get('MinValue')!r}..{mg.get('MaxValue')!r}, expected 0..1000 (0 = no cap)")
    desc = " ".join(str(mg.get("Description", "")).split())
    require("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL" in desc and re.search(r"\b0 = no\b", desc),
            f"DrainMaxConcurrentGlobal Description does not name REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL and say 0 = no cap: {desc!r}")
    groups = ctx.source.get("Metadata", {}).get("AWS::CloudFormation::Interface", {}).get("ParameterGroups", [])
    drain_group = [g.get("Parameters", []) for g in groups if "DrainMaxConcurrent" in g.get("Parameters", [])]
    require(drain_group and "DrainMaxConcurrentGlobal" in drain_group[0],
            "DrainMaxConcurrentGlobal is not in the drain parameter group (with DrainMaxConcurrent)")


@check("EventBridge rule: CloudTrail AuthorizeSecurityGroupIngress / ModifySecurityGroupRules")
def _(ctx: Ctx) -> None:
    _, rule = rule_with(ctx.cfn, source_is("aws.ec2"), "CloudTrail (aws.ec2)")
    pat = rule["Properties"]["EventPattern"]
    require(pat.get("source") == ["aws.ec2"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["AWS API Call via CloudTrail"], f"detail-type is {pat.get('detail-type')!r}")
    d = pat.get("detail", {})
    require(d.get("eventSource") == ["ec2.amazonaws.com"], f"detail.eventSource is {d.get('eventSource')!r}")
    require(sorted(d.get("eventName", [])) == ["AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"],
            f"detail.eventName is {d.get('eventName')!r}")
    for name in ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"):
        require(pattern_matches(pat, cloudtrail_event(name)), f"pattern does not match a {name} event")
    for name in ("RevokeSecurityGroupIngress", "CreateSecurityGroup"):
        require(not pattern_matches(pat, cloudtrail_event(name)), f"pattern matches a {name} event")
    require(not pattern_matches(pat, cloudtrail_event("AuthorizeSecurityGroupIngress", "Client.UnauthorizedOperation")),
            "pattern matches a failed (errorCode) call")


@check("EventBridge rule: Config / Security Hub NON_COMPLIANT security groups")
def _(ctx: Ctx) -> None:
    _, rule = rule_with(ctx.cfn, source_is("aws.config"), "Config (aws.config)")
    pat = rule["Properties"]["EventPattern"]
    require(pat.get("detail-type") == ["Config Rules Compliance Change"], f"detail-type is {pat.get('detail-type')!r}")
    d = pat.get("detail", {})
    require(d.get("messageType") == ["ComplianceChangeNotification"], f"detail.messageType is {d.get('messageType')!r}")
    require(d.get("newEvaluationResult", {}).get("complianceType") == ["NON_COMPLIANT"],
            "detail.newEvaluationResult.complianceType is not [NON_COMPLIANT]")
    names = d.get("configRuleName", [])
    for prefix in CONFIG_RULE_PREFIXES:
        require({"prefix": prefix} in names or {"wildcard": prefix + "*"} in names,
                f"configRuleName has no prefix/wildcard match for {prefix!r}")
    should = [
        "restricted-ssh",
        "restricted-ssh-conformance-pack-abcdefgh",
        "restricted-common-ports",
        "vpc-sg-open-only-to-authorized-ports",
        "securityhub-restricted-ssh-0a1b2c3d",
        "securityhub-restricted-common-ports-0a1b2c3d",
        "securityhub-vpc-sg-open-only-to-authorized-ports-0a1b2c3d",
    ]
    for name in should:
        require(pattern_matches(pat, config_event(name)), f"pattern does not match a NON_COMPLIANT {name} event")
    require(not pattern_matches(pat, config_event("restricted-ssh", "COMPLIANT")), "pattern matches a COMPLIANT event")
    require(not pattern_matches(pat, config_event("s3-bucket-public-read-prohibited")), "pattern matches an unrelated rule")
    require(not pattern_matches(pat, config_event("restricted-ssh", rtype="AWS::EC2::Instance")),
            "pattern matches a non-security-group resource")
    other = config_event("restricted-ssh")
    other["detail"]["messageType"] = "ConfigRulesEvaluationStarted"
    require(not pattern_matches(pat, other), "pattern matches a non-ComplianceChangeNotification message")


# alert-to-slack's EventBridge rules: SAM event name -> logical ID of the generated rule.
ALERT_RULES = {name: ALERT_ID + name for name in
               ("CloudWatchAlarm", "CloudTrailSecurity", "ConsoleSignIn", "ConfigCompliance", "Health", "GuardDuty")}
# drain-before-maintenance's rules (the last one is the resume schedule).
DRAIN_RULES = {name: DRAIN_ID + name for name in ("Health", "SpotAndRebalance", "LifecycleTerminate", "Resume")}
COP_CLOUDTRAIL = FUNCTION_ID + "CloudTrailIngress"
COP_CONFIG = FUNCTION_ID + "ConfigCompliance"

# CloudTrailSecurity: the change branches, by eventSource (successful calls only).
SECURITY_CHANGES = {
    "ec2.amazonaws.com": [
        "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress", "CreateSecurityGroup", "DeleteSecurityGroup", "ModifySecurityGroupRules",
        "CreateNetworkAcl", "CreateNetworkAclEntry", "DeleteNetworkAcl", "DeleteNetworkAclEntry",
        "ReplaceNetworkAclEntry", "ReplaceNetworkAclAssociation",
    ],
    "iam.amazonaws.com": [  # CIS "IAM policy changes"
        "DeleteGroupPolicy", "DeleteRolePolicy", "DeleteUserPolicy", "PutGroupPolicy", "PutRolePolicy",
        "PutUserPolicy", "CreatePolicy", "DeletePolicy", "CreatePolicyVersion", "DeletePolicyVersion",
        "SetDefaultPolicyVersion", "AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy",
        "DetachUserPolicy", "AttachGroupPolicy", "DetachGroupPolicy",
    ],
    "cloudtrail.amazonaws.com": ["StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"],
}
DENIED_ERRORS = ["AccessDenied", "Client.UnauthorizedOperation", "UnauthorizedOperation", "AccessDeniedException"]

FIXTURE_DIR = REPO_ROOT / "events" / "aws"
# Which rules (logical IDs, any function) each fixture under events/aws must reach; () = none.
# The SG-change fixtures reach both functions: close-open-ports remediates, alert-to-slack reports.
FIXTURE_ROUTES: dict[str, tuple[str, ...]] = {
    "cloudtrail/authorize-all-traffic.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-failed-duplicate.json": (),  # errorCode (not a denial): the call changed nothing
    "cloudtrail/authorize-https-world-open.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-mixed-rules.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-prefix-list-only.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-rdp-ipv6.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-ssh-world-open.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-via-cloudformation.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/authorize-wide-range.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "cloudtrail/modify-rule-to-ssh-world.json": (COP_CLOUDTRAIL, ALERT_RULES["CloudTrailSecurity"]),
    "config/restricted-common-ports-noncompliant.json": (COP_CONFIG, ALERT_RULES["ConfigCompliance"]),
    "config/restricted-ssh-compliant.json": (ALERT_RULES["ConfigCompliance"],),  # resolves the thread
    "config/restricted-ssh-noncompliant.json": (COP_CONFIG, ALERT_RULES["ConfigCompliance"]),
    "config/restricted-ssh-not-applicable.json": (ALERT_RULES["ConfigCompliance"],),  # deleted: resolves the thread
    "config/s3-versioning-noncompliant.json": (ALERT_RULES["ConfigCompliance"],),
    "config/securityhub-restricted-ssh-noncompliant.json": (COP_CONFIG, ALERT_RULES["ConfigCompliance"]),
    "config/vpc-sg-open-only-to-authorized-ports-noncompliant.json": (COP_CONFIG, ALERT_RULES["ConfigCompliance"]),
    "eventbridge/ec2-instance-state-change.json": (),
    "scheduled/daily-sweep.json": (),  # delivered by the schedule rule, not by a pattern
    # alert-to-slack
    "cloudtrail-security/access-denied-ec2.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/access-denied-s3.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/cloudtrail-delete-trail.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/cloudtrail-stop-logging.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/console-login-failure.json": (ALERT_RULES["ConsoleSignIn"],),
    "cloudtrail-security/iam-attach-user-policy.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/iam-put-role-policy.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/nacl-entry-created.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/root-api-call.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/root-console-login.json": (ALERT_RULES["ConsoleSignIn"],),
    # SG egress: alert-to-slack reports it; close-open-ports only handles ingress.
    "cloudtrail-security/security-group-egress-authorized.json": (ALERT_RULES["CloudTrailSecurity"],),
    # Reflex's own remediations still reach the rule; alert-to-slack skips them by their role
    # (REFLEX_OWN_ROLE_ARNS), since the function that made the change reported it.
    "cloudtrail-security/nacl-entry-created-by-reflex.json": (ALERT_RULES["CloudTrailSecurity"],),
    "cloudtrail-security/sg-ingress-revoked-by-reflex.json": (ALERT_RULES["CloudTrailSecurity"],),
    "eventbridge/custom-app-event.json": (),
    "eventbridge/ecs-task-state-change.json": (),
    # drain-before-maintenance: EC2 scheduled changes reach it and alert-to-slack (which reports them).
    "health/ec2-instance-retirement-scheduled.json": (ALERT_RULES["Health"], DRAIN_RULES["Health"]),
    "health/ec2-maintenance-closed.json": (ALERT_RULES["Health"], DRAIN_RULES["Health"]),  # recovers
    "health/ec2-maintenance-entity-arn.json": (ALERT_RULES["Health"], DRAIN_RULES["Health"]),
    "health/ec2-scheduled-maintenance.json": (ALERT_RULES["Health"], DRAIN_RULES["Health"]),
    "health/service-issue-closed.json": (ALERT_RULES["Health"],),  # an issue, not a scheduled change
    "health/service-issue-open.json": (ALERT_RULES["Health"],),
    "ec2/rebalance-recommendation.json": (DRAIN_RULES["SpotAndRebalance"],),
    "ec2/spot-interruption-stop.json": (DRAIN_RULES["SpotAndRebalance"],),
    "ec2/spot-interruption-warning.json": (DRAIN_RULES["SpotAndRebalance"],),
    "autoscaling/terminate-lifecycle-action.json": (DRAIN_RULES["LifecycleTerminate"],),
    "autoscaling/launch-lifecycle-action.json": (),  # only terminate hooks drain
}
# Fixtures not listed above get the expectation of their directory (new fixtures there are
# checked without editing this file). sns/ holds Lambda SNS events (Records[].Sns): they come
# through the alarm-topic subscription and must match no EventBridge rule.
FIXTURE_DIR_ROUTES: dict[str, tuple[str, ...]] = {
    "cloudwatch/": (ALERT_RULES["CloudWatchAlarm"],),
    "guardduty/": (ALERT_RULES["GuardDuty"],),
    "health/": (ALERT_RULES["Health"],),
    "ec2/": (DRAIN_RULES["SpotAndRebalance"],),
    "sns/": (),
    # CloudWatch Logs subscription deliveries ({"awslogs": {"data": ...}}) for block-ssh-bruteforce.
    "cloudwatch-logs/": (),
}


def fixture_expectation(rel: str) -> tuple[str, ...] | None:
    if rel in FIXTURE_ROUTES:
        return FIXTURE_ROUTES[rel]
    for prefix, want in FIXTURE_DIR_ROUTES.items():
        if rel.startswith(prefix):
            return want
    return None


def all_patterns(cfn: dict) -> dict[str, dict]:
    """Rule logical ID -> event pattern, for every pattern rule targeting any of the functions."""
    out = {}
    for fid in FUNCTION_IDS:
        for rid, rule in function_rules(cfn, fid).items():
            pat = rule["Properties"].get("EventPattern")
            if pat:
                out[rid] = pat
    return out


@check("event fixtures in events/aws reach exactly the expected rules")
def _(ctx: Ctx) -> None:
    if not FIXTURE_DIR.is_dir():
        print(f"      (no fixtures at {FIXTURE_DIR}; skipped)")
        return
    patterns = all_patterns(ctx.cfn)
    files = sorted(p.relative_to(FIXTURE_DIR).as_posix() for p in FIXTURE_DIR.rglob("*.json"))
    for rel in files:
        event = json.loads((FIXTURE_DIR / rel).read_text())
        hits = tuple(sorted(rid for rid, pat in patterns.items() if pattern_matches(pat, event)))
        if rel.startswith("sns/"):
            records = event.get("Records") if isinstance(event, dict) else None
            require(isinstance(records, list) and records and all(r.get("EventSource") == "aws:sns" and "Sns" in r for r in records),
                    f"{rel} is not a Lambda SNS event (Records[].EventSource aws:sns)")
        if rel.startswith("cloudwatch-logs/"):
            require(isinstance(event, dict) and set(event) == {"awslogs"} and isinstance(event["awslogs"].get("data"), str),
                    f"{rel} is not a CloudWatch Logs subscription delivery ({{\"awslogs\": {{\"data\": ...}}}})")
        want = fixture_expectation(rel)
        if want is None:
            print(f"      fixture {rel} has no expectation here; it matches {list(hits) or 'no rule'}")
            continue
        want = tuple(sorted(want))
        require(hits == want, f"{rel} matches {list(hits) or 'no rule'}, expected {list(want) or 'no rule'}")
    missing = sorted(set(FIXTURE_ROUTES) - set(files))
    if missing:
        print(f"      (fixtures expected here but absent: {missing})")


def alert_rule(ctx: Ctx, name: str) -> tuple[dict, dict]:
    """(rule properties, event pattern) of alert-to-slack's rule from SAM event `name`."""
    rid = ALERT_RULES[name]
    rules = function_rules(ctx.cfn, ALERT_ID)
    require(rid in rules, f"no rule {rid} targeting {ALERT_ID} (found {sorted(rules)})")
    props = rules[rid]["Properties"]
    pat = props.get("EventPattern")
    require(isinstance(pat, dict), f"{rid} has no EventPattern object")
    return props, pat


def require_matches(pat: dict, should: list[tuple[str, dict]], should_not: list[tuple[str, dict]]) -> None:
    for what, event in should:
        require(pattern_matches(pat, event), f"pattern does not match {what}")
    for what, event in should_not:
        require(not pattern_matches(pat, event), f"pattern matches {what}")


def require_state(props: dict, want: str | None) -> None:
    got = props.get("State")
    ok = got == want if want else got in (None, "ENABLED")
    require(ok, f"State is {got!r}, expected {want or 'ENABLED (or unset)'}")


@check("alert-to-slack rule CloudWatchAlarm: every alarm state change, nothing else")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "CloudWatchAlarm")
    require_state(props, None)
    require(pat.get("source") == ["aws.cloudwatch"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["CloudWatch Alarm State Change"], f"detail-type is {pat.get('detail-type')!r}")
    require_matches(pat, [(f"an {s} alarm", alarm_event(s)) for s in ("ALARM", "OK", "INSUFFICIENT_DATA")], [
        ("an alarm configuration change", alarm_event("ALARM", "CloudWatch Alarm Configuration Change")),
        ("a Health event", health_event()),
    ])


@check("alert-to-slack rule CloudTrailSecurity: root usage, access denied, SG/NACL/IAM/CloudTrail changes; read-only events included")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "CloudTrailSecurity")
    # Denied reads and root's reads are read-only management events: an ENABLED rule never sees them.
    require_state(props, "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
    require(pat.get("detail-type") == ["AWS API Call via CloudTrail"], f"detail-type is {pat.get('detail-type')!r}")
    should: list[tuple[str, dict]] = []
    for src, names in SECURITY_CHANGES.items():
        should += [(f"a successful {src} {n}", api_event(n, src)) for n in names]
    for err in DENIED_ERRORS:
        should.append((f"a read-only call denied with {err}", api_event("DescribeInstances", "ec2.amazonaws.com", err, read_only=True)))
        should.append((f"a write denied with {err}", api_event("PutObject", "s3.amazonaws.com", err)))
    should += [
        ("root reading S3", api_event("ListBuckets", "s3.amazonaws.com", identity="Root", read_only=True)),
        ("root creating an access key", api_event("CreateAccessKey", "iam.amazonaws.com", identity="Root")),
        ("a denied IAM policy change", api_event("PutRolePolicy", "iam.amazonaws.com", "AccessDenied")),
    ]
    should_not = [
        ("a failed (not denied) SG change", api_event("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com", "Client.InvalidPermission.Duplicate")),
        ("a failed (not denied) IAM change", api_event("DeletePolicy", "iam.amazonaws.com", "NoSuchEntity")),
        ("an unrelated EC2 call", api_event("RunInstances", "ec2.amazonaws.com")),
        ("an IAM read", api_event("GetPolicy", "iam.amazonaws.com", read_only=True)),
        ("an IAM change outside the CIS list", api_event("CreateUser", "iam.amazonaws.com")),
        ("Organizations CreatePolicy (same name, other service)", api_event("CreatePolicy", "organizations.amazonaws.com")),
        ("IoT DeletePolicy (same name, other service)", api_event("DeletePolicy", "iot.amazonaws.com")),
        ("CloudTrail StartLogging", api_event("StartLogging", "cloudtrail.amazonaws.com")),
        ("a call a service made on root's behalf", api_event("ListBuckets", "s3.amazonaws.com", identity="Root", invoked_by="support.amazonaws.com")),
        ("a forged event (custom source)", api_event("DescribeInstances", "ec2.amazonaws.com", "AccessDenied", source="custom.attacker")),
        ("a failed console sign-in", signin_event("IAMUser", "Failure")),
        ("another denial-like error code", api_event("GetObject", "s3.amazonaws.com", "NoSuchKey")),
    ]
    require_matches(pat, should, should_not)


@check("alert-to-slack rule ConsoleSignIn: root sign-ins and failed sign-ins")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "ConsoleSignIn")
    require_state(props, None)
    require(pat.get("source") == ["aws.signin"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["AWS Console Sign In via CloudTrail"], f"detail-type is {pat.get('detail-type')!r}")
    require_matches(pat, [
        ("a root sign-in", signin_event("Root", "Success")),
        ("a failed root sign-in", signin_event("Root", "Failure")),
        ("a failed IAM user sign-in", signin_event("IAMUser", "Failure")),
    ], [
        ("a successful IAM user sign-in", signin_event("IAMUser", "Success")),
        ("a successful assumed-role (SSO) sign-in", signin_event("AssumedRole", "Success")),
        ("a root API call", api_event("ListBuckets", "s3.amazonaws.com", identity="Root")),
    ])


@check("alert-to-slack rule ConfigCompliance: every Config rule, NON_COMPLIANT, COMPLIANT and NOT_APPLICABLE")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "ConfigCompliance")
    require_state(props, None)
    require(pat.get("source") == ["aws.config"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["Config Rules Compliance Change"], f"detail-type is {pat.get('detail-type')!r}")
    should = []
    for rule, rtype in (("restricted-ssh", "AWS::EC2::SecurityGroup"), ("s3-bucket-versioning-enabled", "AWS::S3::Bucket"),
                        ("securityhub-iam-root-access-key-check-0a1b2c3d", "AWS::::Account")):
        for comp in ("NON_COMPLIANT", "COMPLIANT", "NOT_APPLICABLE"):
            should.append((f"{comp} {rule}", config_event(rule, comp, rtype)))
    other = config_event("restricted-ssh")
    other["detail"]["messageType"] = "ConfigRulesEvaluationStarted"
    require_matches(pat, should, [
        ("INSUFFICIENT_DATA", config_event("restricted-ssh", "INSUFFICIENT_DATA")),
        ("a non-ComplianceChangeNotification message", other),
    ])


@check("alert-to-slack rule Health: AWS Health events")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "Health")
    require_state(props, None)
    require(pat.get("source") == ["aws.health"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["AWS Health Event"], f"detail-type is {pat.get('detail-type')!r}")
    require_matches(pat, [(f"a Health {c} event", health_event(c)) for c in ("issue", "scheduledChange", "accountNotification")],
                    [("a GuardDuty finding", guardduty_event()), ("an alarm", alarm_event())])


@check("alert-to-slack rule GuardDuty: GuardDuty findings of every severity")
def _(ctx: Ctx) -> None:
    props, pat = alert_rule(ctx, "GuardDuty")
    require_state(props, None)
    require(pat.get("source") == ["aws.guardduty"], f"source is {pat.get('source')!r}")
    require(pat.get("detail-type") == ["GuardDuty Finding"], f"detail-type is {pat.get('detail-type')!r}")
    require_matches(pat, [(f"a severity {v} finding", guardduty_event(v)) for v in (2.0, 5.0, 8.0)],
                    [("a Health event", health_event()), ("a GuardDuty scan result", guardduty_event(5.0, "GuardDuty Malware Protection Object Scan Result"))])


@check("alert-to-slack: exactly the six EventBridge rules; no event reaches two of them")
def _(ctx: Ctx) -> None:
    rules = function_rules(ctx.cfn, ALERT_ID)
    require(sorted(rules) == sorted(ALERT_RULES.values()), f"rules targeting {ALERT_ID}: {sorted(rules)}, expected {sorted(ALERT_RULES.values())}")
    samples = [alarm_event(), api_event("PutUserPolicy", "iam.amazonaws.com"), api_event("ListBuckets", "s3.amazonaws.com", identity="Root"),
               api_event("GetObject", "s3.amazonaws.com", "AccessDenied"), signin_event("Root"), signin_event("IAMUser", "Failure"),
               config_event("restricted-ssh"), health_event(), guardduty_event()]
    for event in samples:
        hits = [rid for rid, r in rules.items() if pattern_matches(r["Properties"].get("EventPattern", {}), event)]
        require(len(hits) == 1, f"a {event['detail-type']} event ({event['detail'].get('eventName', '')}) reaches {hits or 'no rule'}: one rule each, or the function runs twice")


def drain_health_event(service: str = "EC2", category: str = "scheduledChange", status: str = "upcoming",
                       source: str = "aws.health") -> dict:
    return {
        "source": source,
        "detail-type": "AWS Health Event",
        "resources": ["i-0123456789abcdef0"],
        "detail": {"eventArn": f"arn:aws:health:us-east-1::event/{service}/AWS_{service}_MAINTENANCE_SCHEDULED/x",
                   "service": service, "eventTypeCode": f"AWS_{service}_MAINTENANCE_SCHEDULED",
                   "eventTypeCategory": category, "statusCode": status,
                   "affectedEntities": [{"entityValue": "i-0123456789abcdef0"}]},
    }


def ec2_notice(detail_type: str, source: str = "aws.ec2") -> dict:
    detail = {"instance-id": "i-0123456789abcdef0"}
    if detail_type == "EC2 Spot Instance Interruption Warning":
        detail["instance-action"] = "terminate"
    return {"source": source, "detail-type": detail_type, "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"],
            "detail": detail}


def lifecycle_event(transition: str = "terminate") -> dict:
    return {
        "source": "aws.autoscaling",
        "detail-type": f"EC2 Instance-{transition} Lifecycle Action",
        "resources": ["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:1a2b:autoScalingGroupName/web"],
        "detail": {"LifecycleActionToken": "87654321-4321-4321-4321-210987654321", "AutoScalingGroupName": "web",
                   "LifecycleHookName": "drain", "EC2InstanceId": "i-0123456789abcdef0",
                   "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{'TERMINATING' if transition == 'terminate' else 'LAUNCHING'}"},
    }


def drain_rule(ctx: Ctx, name: str) -> dict:
    """Properties of drain-before-maintenance's rule from SAM event `name`."""
    rid = DRAIN_RULES[name]
    rules = function_rules(ctx.cfn, DRAIN_ID)
    require(rid in rules, f"no rule {rid} targeting {DRAIN_ID} (found {sorted(rules)})")
    return rules[rid]["Properties"]


def drain_pattern(ctx: Ctx, name: str, want: dict) -> dict:
    props = drain_rule(ctx, name)
    require_state(props, None)
    pat = props.get("EventPattern")
    require(isinstance(pat, dict), f"{DRAIN_RULES[name]} has no EventPattern object")
    norm = {k: (sorted(v) if isinstance(v, list) else v) for k, v in pat.items()}
    require(norm == want, f"{DRAIN_RULES[name]} pattern is {pat!r}, expected exactly {want!r}")
    return pat


@check("drain-before-maintenance rule Health: AWS Health EC2 scheduledChange events only")
def _(ctx: Ctx) -> None:
    pat = drain_pattern(ctx, "Health", {"source": ["aws.health"], "detail-type": ["AWS Health Event"],
                                         "detail": {"service": ["EC2"], "eventTypeCategory": ["scheduledChange"]}})
    require_matches(pat, [(f"an EC2 scheduledChange ({s})", drain_health_event(status=s)) for s in ("upcoming", "open", "closed")], [
        ("an EC2 issue", drain_health_event(category="issue", status="open")),
        ("an EC2 account notification", drain_health_event(category="accountNotification")),
        ("an RDS scheduledChange", drain_health_event(service="RDS")),
        ("a forged Health event (custom source)", drain_health_event(source="custom.attacker")),
        ("a spot warning", ec2_notice("EC2 Spot Instance Interruption Warning")),
    ])


@check("drain-before-maintenance rule SpotAndRebalance: aws.ec2 spot interruption warnings and rebalance recommendations only")
def _(ctx: Ctx) -> None:
    pat = drain_pattern(ctx, "SpotAndRebalance", {"source": ["aws.ec2"], "detail-type": sorted(
        ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"])})
    require_matches(pat, [
        ("a spot interruption warning", ec2_notice("EC2 Spot Instance Interruption Warning")),
        ("a rebalance recommendation", ec2_notice("EC2 Instance Rebalance Recommendation")),
    ], [
        ("an instance state change", ec2_notice("EC2 Instance State-change Notification")),
        ("a forged spot warning (custom source)", ec2_notice("EC2 Spot Instance Interruption Warning", source="custom.attacker")),
        ("a CloudTrail EC2 call", cloudtrail_event("AuthorizeSecurityGroupIngress")),
    ])


@check("drain-before-maintenance rule LifecycleTerminate: Auto Scaling terminate lifecycle actions only")
def _(ctx: Ctx) -> None:
    pat = drain_pattern(ctx, "LifecycleTerminate", {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"]})
    require_matches(pat, [("a terminate lifecycle action", lifecycle_event("terminate"))],
                    [("a launch lifecycle action", lifecycle_event("launch"))])


@check("drain-before-maintenance rule Resume: schedule from DrainResumeSchedule (default rate(1 minute)) with the reflex resume input")
def _(ctx: Ctx) -> None:
    props = drain_rule(ctx, "Resume")
    require_state(props, None)
    require("EventPattern" not in props, "the resume rule also has an EventPattern")
    require(props.get("ScheduleExpression") == {"Ref": "DrainResumeSchedule"},
            f"ScheduleExpression is {props.get('ScheduleExpression')!r}, expected Ref DrainResumeSchedule")
    targets = [t for t in props.get("Targets", []) if getatt_target(t.get("Arn")) == DRAIN_ID]
    require(len(targets) == 1, f"expected one target on {DRAIN_ID}, found {len(targets)}")
    raw = targets[0].get("Input")
    try:
        got = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        got = None
    require(got == {"source": "reflex", "action": "resume"}, f"target Input is {raw!r}, expected the resume payload")
    default = str(ctx.source.get("Parameters", {}).get("DrainResumeSchedule", {}).get("Default"))
    require(default == "rate(1 minute)", f"DrainResumeSchedule defaults to {default!r}, expected rate(1 minute)")


@check("drain-before-maintenance: exactly the four rules (three patterns, one schedule); no event reaches two of them")
def _(ctx: Ctx) -> None:
    rules = function_rules(ctx.cfn, DRAIN_ID)
    require(sorted(rules) == sorted(DRAIN_RULES.values()), f"rules targeting {DRAIN_ID}: {sorted(rules)}, expected {sorted(DRAIN_RULES.values())}")
    samples = [drain_health_event(), ec2_notice("EC2 Spot Instance Interruption Warning"),
               ec2_notice("EC2 Instance Rebalance Recommendation"), lifecycle_event("terminate")]
    for event in samples:
        hits = [rid for rid, r in rules.items() if r["Properties"].get("EventPattern") and pattern_matches(r["Properties"]["EventPattern"], event)]
        require(len(hits) == 1, f"a {event['detail-type']} event reaches {hits or 'no rule'}: one rule each, or the function runs twice")


# --------------------------------------------------------------------------- block-ssh-bruteforce

SSH_RULES = {name: SSH_ID + name for name in ("Sweep",)}  # its only EventBridge rule: the sweep schedule
SSH_SUBSCRIPTION = SSH_ID + "SshLogs"  # SAM-generated AWS::Logs::SubscriptionFilter
SSH_FIXTURE_DIR = FIXTURE_DIR / "cloudwatch-logs"
# One line of each kind the function counts (functions/block-ssh-bruteforce/src/sshd.rs), in each
# format it reads: the filter pattern must let every one through.
SSH_SAMPLE_LINES = [
    "Nov 24 10:15:00 ip-10-0-1-23 sshd[41230]: Failed password for root from 203.0.113.7 port 51000 ssh2",
    "Nov 24 10:15:00 ip-10-0-1-23 sshd[41230]: Failed password for invalid user admin from 203.0.113.7 port 51001 ssh2",
    "Nov 24 10:15:00 ip-10-0-1-23 sshd[41230]: Failed publickey for git from 2001:db8::bad port 51002 ssh2: ED25519 SHA256:abc",
    "Nov 24 10:15:00 ip-10-0-1-23 sshd[41230]: Failed none for invalid user x from 203.0.113.7 port 51003 ssh2",
    "Nov 24 10:15:04 ip-10-0-1-23 sshd[41231]: Invalid user admin from 203.0.113.7 port 51001",
    "Nov 24 10:15:04 ip-10-0-1-23 sshd[41231]: Connection closed by invalid user admin 203.0.113.7 port 51001 [preauth]",
    "Nov 24 10:15:04 ip-10-0-1-23 sshd[41231]: Connection closed by authenticating user root 203.0.113.7 port 51001 [preauth]",
    "Nov 24 10:15:04 ip-10-0-1-23 sshd[41231]: Connection closed by 203.0.113.7 port 51001 [preauth]",
    "Nov 24 10:15:04 ip-10-0-1-23 sshd[41231]: Connection reset by 203.0.113.7 port 51001 [preauth]",
    "2026-11-24T10:15:00.000000+00:00 web-2 sshd[9000]: Disconnected from authenticating user root 203.0.113.7 port 40000 [preauth]",
    "2026-11-24T10:15:00.000000+00:00 web-2 sshd[9000]: Disconnected from invalid user oracle 203.0.113.7 port 40000 [preauth]",
    "Nov 24 10:15:50 ip-10-0-1-23 sshd[41300]: error: maximum authentication attempts exceeded for root from 203.0.113.7 port 51999 ssh2 [preauth]",
    "Nov 24 10:15:52 ip-10-0-1-23 sshd[41310]: Accepted publickey for ec2-user from 198.51.100.4 port 50022 ssh2: ED25519 SHA256:Zm9v",
    "2026-11-24T10:15:40+0000 debian-12 sshd[5099]: Accepted password for root from 203.0.113.7 port 38999 ssh2",
    '{"_HOSTNAME":"ubuntu-24","SYSLOG_IDENTIFIER":"sshd-session","_PID":"7000","MESSAGE":"Failed password for invalid user u from 2001:db8::bad port 45000 ssh2"}',
    '{"_HOSTNAME":"ubuntu-24","SYSLOG_IDENTIFIER":"sshd-session","_PID":"7001","MESSAGE":"Connection closed by invalid user u 2001:db8::bad port 45001 [preauth]"}',
]
# Lines of the same log groups the pattern must keep away from the function (each one an invocation).
SSH_NOISE_LINES = [
    "Nov 24 10:15:52 ip-10-0-1-23 sshd[41310]: pam_unix(sshd:session): session opened for user ec2-user(uid=1000) by (uid=0)",
    "Nov 24 10:16:01 ip-10-0-1-23 CRON[9101]: pam_unix(cron:session): session closed for user root",
    "Nov 24 10:16:02 ip-10-0-1-23 sudo[9102]: ec2-user : TTY=pts/0 ; PWD=/home/ec2-user ; USER=root ; COMMAND=/bin/ls",
    "Nov 24 10:16:03 ip-10-0-1-23 sshd[900]: Server listening on 0.0.0.0 port 22.",
    "Nov 24 10:16:04 ip-10-0-1-23 systemd-logind[700]: New session 5 of user ec2-user.",
    "Nov 24 10:16:05 ip-10-0-1-23 sshd[41310]: pam_unix(sshd:session): session closed for user ec2-user",
]
_SYSLOG_SSHD = re.compile(r"\ssshd(?:-session)?\[\d+\]: (.*)$")


def sshd_message(line: str) -> str | None:
    """The sshd message of a log line (classic/RFC 3339 syslog, short-iso, journal JSON), else None."""
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return None
        ok = isinstance(rec, dict) and rec.get("SYSLOG_IDENTIFIER") in ("sshd", "sshd-session") and isinstance(rec.get("MESSAGE"), str)
        return rec["MESSAGE"].strip() if ok else None
    m = _SYSLOG_SSHD.search(line)
    return m.group(1).strip() if m else None


def ssh_counted(line: str) -> bool:
    """Whether block-ssh-bruteforce counts the line (its parser's prefixes, sshd.rs `parse`)."""
    msg = sshd_message(line)
    if msg is None:
        return False
    if msg.startswith(("Failed ", "Accepted ", "Invalid user ")):
        return True
    return msg.endswith("[preauth]") and (msg.startswith(("Connection closed by ", "Disconnected from ", "Connection reset by "))
                                           or "maximum authentication attempts exceeded" in msg)


_TERM = re.compile(r'\s*\?(?:"((?:[^"\\]|\\.)+)"|([A-Za-z0-9_]+))')


def or_terms(pattern: str) -> list[str]:
    """The terms of an unstructured CloudWatch Logs filter pattern made of OR terms only:
    ?"a phrase" ?word ... (quoted when not purely alphanumeric/underscore). A pattern of any
    other shape (AND terms, JSON, space-delimited, regex, empty) is rejected."""
    require(isinstance(pattern, str), f"FilterPattern is {pattern!r}, not a literal string")
    terms, pos, end = [], 0, len(pattern.rstrip())
    while pos < end:
        m = _TERM.match(pattern, pos)
        require(m, f"FilterPattern {pattern!r} is not a list of OR terms (?\"...\" or ?word) at {pattern[pos:]!r}")
        term = m.group(1) if m.group(1) is not None else m.group(2)
        terms.append(re.sub(r"\\(.)", r"\1", term))
        pos = m.end()
    require(terms, f"FilterPattern {pattern!r} is empty: every log event would invoke the function")
    return terms


def filter_matches(terms: list[str], line: str, strip: bool = False) -> bool:
    """OR of case-sensitive substring terms. strip=True: as if CloudWatch trimmed the quoted terms
    (the broader reading)."""
    return any((t.strip() if strip else t) in line for t in terms)


def decoded_log_events(path: Path) -> tuple[dict, list[str]]:
    """(decoded payload, messages) of a CloudWatch Logs subscription fixture."""
    event = json.loads(path.read_text())
    data = gzip.decompress(base64.b64decode(event["awslogs"]["data"]))
    payload = json.loads(data)
    return payload, [e["message"] for e in payload.get("logEvents", [])]


@check("block-ssh-bruteforce is built by cargo-lambda from the workspace binary block-ssh-bruteforce")
def _(ctx: Ctx) -> None:
    require_cargo_lambda_build(ctx, SSH_ID, SSH_BINARY)


@check("block-ssh-bruteforce is provided.al2023 / arm64 / bootstrap, 128 MB, 60 s")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn, SSH_ID)["Properties"]
    require_al2023_arm64(p)
    require(p.get("Timeout") == 60, f"Timeout is {p.get('Timeout')!r}, expected 60")


@check("block-ssh-bruteforce environment: exactly its REFLEX_* variables; state in alert-to-slack's table (no table of its own)")
def _(ctx: Ctx) -> None:
    env = function(ctx.cfn, SSH_ID)["Properties"].get("Environment", {}).get("Variables", {})
    missing, extra = set(SSH_ENV) - set(env), set(env) - set(SSH_ENV)
    require(not missing, f"missing environment variables: {sorted(missing)}")
    require(not extra, f"unexpected environment variables: {sorted(extra)}")
    for var, want in SSH_ENV.items():
        require(env[var] == want, f"{var} is {env[var]!r}, expected {want!r}")
        require(want["Ref"] in ctx.source.get("Parameters", {}) or want["Ref"] in ctx.resources,
                f"{var}: {want['Ref']} is neither a parameter nor a resource")
    tables = sorted(k for k, v in ctx.resources.items() if v["Type"] == "AWS::DynamoDB::Table")
    require(tables == sorted(TABLES), f"DynamoDB tables {tables}, expected {sorted(TABLES)}: block records go to {ALERT_TABLE}")


@check("block-ssh-bruteforce parameters: SshLogGroupName, NaclRuleRange, SshSweepSchedule patterns; SshMaxFailures 1-1000, "
       "SshWindowSecs 1-86400, SshBlockSecs 1-2592000; SshBlockPrivate true/false")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})

    def pattern_of(name: str) -> str:
        pat = params.get(name, {}).get("AllowedPattern")
        require(pat, f"parameter {name} has no AllowedPattern")
        return pat

    cases = {
        "SshLogGroupName": (["", "/var/log/secure", "/var/log/auth.log", "prod/ssh#1", "a" * 512],
                            ["/var/log/secure,/var/log/auth.log", "/var/log/*", "log group", "a" * 513]),
        # The function accepts FIRST-LAST with 1 <= FIRST <= LAST <= 32766 (FIRST <= LAST it checks itself).
        "NaclRuleRange": (["50-99", "1-32766", "100-100", "32000-32766", "9999-10000"],
                          ["", "0-10", "50", "50-", "-99", "50-32767", "50-99999", "a-b", "50-99,200-299", "050-99"]),
        "SshSweepSchedule": (["rate(5 minutes)", "rate(1 hour)", "cron(0/5 * * * ? *)"], ["", "5 minutes", "every 5 minutes"]),
    }
    for name, (good, bad) in cases.items():
        pat = pattern_of(name)
        for v in good:
            require(re.fullmatch(pat, v), f"{name} AllowedPattern rejects {v!r}")
        for v in bad:
            require(not re.fullmatch(pat, v), f"{name} AllowedPattern accepts {v!r}")
    # The function fails at cold start outside these ranges (reflex_core::settings::number).
    for name, lo, hi in (("SshMaxFailures", 1, 1000), ("SshWindowSecs", 1, 86_400), ("SshBlockSecs", 1, 30 * 86_400)):
        p = params.get(name, {})
        require(p.get("Type") == "Number", f"{name} Type is {p.get('Type')!r}, expected Number")
        require(p.get("MinValue") == lo and p.get("MaxValue") == hi,
                f"{name} range is {p.get('MinValue')!r}..{p.get('MaxValue')!r}, expected {lo}..{hi}")
    require(sorted(params.get("SshBlockPrivate", {}).get("AllowedValues", [])) == ["false", "true"], "SshBlockPrivate must allow only true/false")


@check("block-ssh-bruteforce trigger: a CloudWatch Logs subscription on SshLogGroupName whose filter pattern passes every sshd line "
       "the function counts (fixtures included) and not the log group's other lines; invoke permission for that log group")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    subs = {k: v for k, v in res.items() if v["Type"] == "AWS::Logs::SubscriptionFilter"}
    mine = {k: v for k, v in subs.items() if getatt_target(v["Properties"].get("DestinationArn")) == SSH_ID}
    require(list(mine) == [SSH_SUBSCRIPTION], f"subscription filters to {SSH_ID}: {sorted(mine)}, expected [{SSH_SUBSCRIPTION}]")
    require(sorted(subs) == [SSH_SUBSCRIPTION], f"subscription filters {sorted(subs)}: only {SSH_SUBSCRIPTION} is expected")
    p = mine[SSH_SUBSCRIPTION]["Properties"]
    require(p.get("LogGroupName") == {"Ref": "SshLogGroupName"}, f"LogGroupName is {p.get('LogGroupName')!r}, expected Ref SshLogGroupName")
    terms = or_terms(p.get("FilterPattern"))
    for t in terms:
        require(len(t.strip()) >= 3, f"filter term {t!r} is too short: it would pass almost every line")
    lines = list(SSH_SAMPLE_LINES)
    fixtures = sorted(SSH_FIXTURE_DIR.glob("*.json")) if SSH_FIXTURE_DIR.is_dir() else []
    require(fixtures, f"no CloudWatch Logs fixtures under {SSH_FIXTURE_DIR.relative_to(REPO_ROOT)}")
    counted_in_fixtures = 0
    for path in fixtures:
        try:
            payload, messages = decoded_log_events(path)
        except Exception as e:  # not base64 / gzip / JSON
            raise CheckFailed(f"{path.name}: not a decodable awslogs delivery ({type(e).__name__}: {e})")
        require(payload.get("messageType") in ("DATA_MESSAGE", "CONTROL_MESSAGE"), f"{path.name}: messageType {payload.get('messageType')!r}")
        lines += messages
        counted_in_fixtures += sum(ssh_counted(m) for m in messages)
    require(counted_in_fixtures > 0, "no fixture line is one the function counts: the fixtures prove nothing")
    for line in lines:
        if ssh_counted(line):
            require(filter_matches(terms, line), f"the filter pattern drops a line the function counts: {line!r}")
    for line in SSH_NOISE_LINES:
        require(not ssh_counted(line), f"noise sample {line!r} is a counted line")
        require(not filter_matches(terms, line, strip=True), f"the filter pattern passes a line the function ignores: {line!r}")
    # The invoke permission SAM adds, for exactly that log group.
    perms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Permission"
             and r["Properties"].get("FunctionName") in ({"Ref": SSH_ID}, {"Fn::GetAtt": [SSH_ID, "Arn"]})
             and str(r["Properties"].get("Principal", "")).startswith("logs.")]
    require(len(perms) == 1, f"expected one logs.amazonaws.com invoke permission on {SSH_ID}, found {len(perms)}")
    for group in ("/var/log/secure", "/var/log/auth.log"):
        env = Env(ctx.source, {"SshLogGroupName": group})
        got = env.eval(perms[0].get("SourceArn"))
        want = f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"
        require(got == want, f"SshLogGroupName={group!r}: the invoke permission's SourceArn is {got!r}, expected {want!r}")
    require(perms[0].get("SourceAccount") in (None, {"Ref": "AWS::AccountId"}), f"SourceAccount is {perms[0].get('SourceAccount')!r}")


@check("block-ssh-bruteforce rule Sweep: schedule from SshSweepSchedule (default rate(5 minutes)) delivering the standard Scheduled Event (no Input)")
def _(ctx: Ctx) -> None:
    rules = function_rules(ctx.cfn, SSH_ID)
    require(sorted(rules) == sorted(SSH_RULES.values()), f"rules targeting {SSH_ID}: {sorted(rules)}, expected {sorted(SSH_RULES.values())}")
    props = rules[SSH_RULES["Sweep"]]["Properties"]
    require_state(props, None)
    require("EventPattern" not in props, "the sweep rule also has an EventPattern")
    require(props.get("ScheduleExpression") == {"Ref": "SshSweepSchedule"},
            f"ScheduleExpression is {props.get('ScheduleExpression')!r}, expected Ref SshSweepSchedule")
    targets = [t for t in props.get("Targets", []) if getatt_target(t.get("Arn")) == SSH_ID]
    require(len(targets) == 1, f"expected one target on {SSH_ID}, found {len(targets)}")
    # The function sweeps on source aws.events + detail-type "Scheduled Event": the event EventBridge
    # sends when the target has no Input, InputPath or InputTransformer.
    shaped = sorted(k for k in ("Input", "InputPath", "InputTransformer") if k in targets[0])
    require(not shaped, f"the sweep target sets {shaped}: the function would not see a Scheduled Event")
    default = str(ctx.source.get("Parameters", {}).get("SshSweepSchedule", {}).get("Default"))
    require(default == "rate(5 minutes)", f"SshSweepSchedule defaults to {default!r}, expected rate(5 minutes)")
    for path in sorted((FIXTURE_DIR / "scheduled").glob("*.json")):
        event = json.loads(path.read_text())
        require(event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event",
                f"scheduled/{path.name} is not an EventBridge Scheduled Event")


@check("block-ssh-bruteforce role: Describe calls on '*'; NACL entry create/delete only on this account's network ACLs; "
       "DynamoDB on alert-to-slack's table only; no other function may write NACL entries")
def _(ctx: Ctx) -> None:
    env = Env(ctx.source)
    table_arn = {"Fn::GetAtt": [ALERT_TABLE, "Arn"]}
    granted: set[str] = set()
    for st in role_statements(ctx.cfn, SSH_ID):
        if st.effect != "Allow" or is_vpc_statement(st):
            continue
        acts = set(st.actions)
        wild = [a for a in acts if "*" in a]
        require(not wild, f"{st.label()}: wildcard actions {wild}")
        if "*" in st.resources:
            require(acts <= SSH_READ_ACTIONS, f"{st.label()}: {sorted(acts - SSH_READ_ACTIONS)} on Resource '*' (only the Describe calls may be)")
            require(st.resources == ["*"] and not st.conds, f"{st.label()}: the Describe calls must be granted unconditionally on '*' alone")
        nacl = acts & SSH_NACL_ACTIONS
        if nacl:
            require(acts <= SSH_NACL_ACTIONS, f"{st.label()}: {sorted(acts)} mixes the NACL entry writes with other actions")
            got = [env.eval(r) for r in st.resources]
            require(got == [SSH_NACL_ARN], f"{st.label()}: {sorted(acts)} on {got}, expected [{SSH_NACL_ARN}]")
            require(not st.conds and "Condition" not in st.raw, f"{st.label()}: the NACL writes must not depend on a condition")
        ddb = {a for a in acts if a.lower().startswith("dynamodb:")}
        if ddb:
            require(st.resources == [table_arn], f"{st.label()}: {sorted(ddb)} on {st.resources!r}, expected only {table_arn}")
            require(not st.conds, f"{st.label()}: DynamoDB access must not depend on a condition")
        if not st.conds:
            granted |= acts
    want = SSH_READ_ACTIONS | SSH_NACL_ACTIONS | SSH_DYNAMODB_ACTIONS | {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}
    require(granted == want, f"unconditional actions {sorted(granted)}; missing {sorted(want - granted)}, unexpected {sorted(granted - want)}")
    for fid in (FUNCTION_ID, ALERT_ID, DRAIN_ID):
        for st in role_statements(ctx.cfn, fid):
            other = set(st.actions) & (SSH_NACL_ACTIONS | {"ec2:ReplaceNetworkAclEntry", "ec2:DescribeNetworkAcls"})
            require(not other, f"{st.label()}: {fid} must not have block-ssh-bruteforce's NACL actions {sorted(other)}")


@check("block-ssh-bruteforce WAFv2 alternative: SshWafIpSetArn (empty or an IP set ARN, in the SSH parameter group, honest about "
       "not stopping SSH) feeds REFLEX_SSH_WAF_IPSET_ARN; wafv2:GetIPSet and UpdateIPSet on that IP set only, only when it is set; "
       "the NACL writes stay for the sweep; no other role has WAF actions")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})
    p = params.get(SSH_WAF_PARAM)
    require(isinstance(p, dict), f"parameter {SSH_WAF_PARAM} missing")
    require(p.get("Type") == "String" and str(p.get("Default")) == "",
            f"{SSH_WAF_PARAM} is {p.get('Type')!r} with default {p.get('Default')!r}, expected a String defaulting to \"\" (the NACL)")
    pat = p.get("AllowedPattern")
    require(pat, f"parameter {SSH_WAF_PARAM} has no AllowedPattern")
    good = ["", *SSH_WAF_ARNS,
            "arn:aws-us-gov:wafv2:us-gov-west-1:123456789012:regional/ipset/ssh-block_1/abc"]
    bad = ["reflex-ssh", "91f365c5-9053-4502-aef5-7b140e2c85db",
           "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/web/91f365c5-9053-4502-aef5-7b140e2c85db",
           "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh",
           "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex-ssh/91f365c5/extra",
           "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/*/*",
           "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/reflex ssh/abc",
           "arn:aws:wafv2:us-east-1:1234:regional/ipset/reflex-ssh/abc",
           "arn:aws:waf::123456789012:ipset/91f365c5-9053-4502-aef5-7b140e2c85db",
           "arn:aws:waf-regional:us-east-1:123456789012:ipset/91f365c5-9053-4502-aef5-7b140e2c85db",
           SSH_WAF_ARNS[0] + ",arn:aws:wafv2:us-east-1:123456789012:regional/ipset/v6/abc"]
    for v in good:
        require(re.fullmatch(pat, v), f"{SSH_WAF_PARAM} AllowedPattern rejects {v!r}")
    for v in bad:
        require(not re.fullmatch(pat, v), f"{SSH_WAF_PARAM} AllowedPattern accepts {v!r}")
    # WAF filters HTTP(S) to ALB / API Gateway / CloudFront / AppSync: the description must not
    # let anyone believe the switch blocks SSH.
    desc = " ".join(str(p.get("Description", "")).split())
    require(re.search(r"\bnot stop SSH\b", desc, re.I), f"{SSH_WAF_PARAM} Description does not say that WAF does not stop SSH: {desc!r}")
    groups = ctx.source.get("Metadata", {}).get("AWS::CloudFormation::Interface", {}).get("ParameterGroups", [])
    ssh_group = [g for g in groups if "SshLogGroupName" in g.get("Parameters", [])]
    require(ssh_group and SSH_WAF_PARAM in ssh_group[0]["Parameters"], f"{SSH_WAF_PARAM} is not in the SSH parameter group (with SshLogGroupName)")
    # The condition: only with the function, only with an ARN.
    for group, arn, want in (("/var/log/secure", "", False), ("/var/log/secure", SSH_WAF_ARNS[0], True),
                             ("/var/log/auth.log", SSH_WAF_ARNS[1], True), ("", SSH_WAF_ARNS[0], False)):
        got = Env(ctx.source, {"SshLogGroupName": group, SSH_WAF_PARAM: arn}).condition(SSH_WAF_CONDITION)
        require(got is want, f"SshLogGroupName={group!r}, {SSH_WAF_PARAM}={arn!r}: {SSH_WAF_CONDITION} is {got}, expected {want}")
    env_vars = function(ctx.cfn, SSH_ID)["Properties"].get("Environment", {}).get("Variables", {})
    var = env_vars.get("REFLEX_SSH_WAF_IPSET_ARN")
    require(var == {"Ref": SSH_WAF_PARAM}, f"REFLEX_SSH_WAF_IPSET_ARN is {var!r}, expected Ref {SSH_WAF_PARAM}")
    waf = [st for st in role_statements(ctx.cfn, SSH_ID) if any(str(a).lower().startswith("wafv2:") for a in st.actions)]
    require(len(waf) == 1, f"block-ssh-bruteforce's role has {len(waf)} WAF statements ({[s.label() for s in waf]}), expected one")
    st = waf[0]
    require(st.effect == "Allow" and sorted(st.actions) == sorted(SSH_WAF_ACTIONS),
            f"{st.label()}: {st.effect} {st.actions}, expected Allow exactly {sorted(SSH_WAF_ACTIONS)}")
    require(st.raw.get("Sid") == SSH_WAF_SID, f"{st.label()}: Sid {st.raw.get('Sid')!r}, expected {SSH_WAF_SID!r}")
    require(st.resources == [{"Ref": SSH_WAF_PARAM}], f"{st.label()}: on {st.resources!r}, expected only Ref {SSH_WAF_PARAM}")
    require(st.conds == ((SSH_WAF_CONDITION, True),), f"{st.label()}: not guarded by Fn::If {SSH_WAF_CONDITION} alone")
    require("Condition" not in st.raw and "NotResource" not in st.raw, f"{st.label()}: an IAM Condition or NotResource")
    # Granted exactly when the function blocks in the IP set (an empty ARN is unset to it).
    for arn in ("", *SSH_WAF_ARNS):
        env = Env(ctx.source, {SSH_WAF_PARAM: arn})
        require(st.active(env) is bool(arn), f"{SSH_WAF_PARAM}={arn!r}: the WAF statement is {'granted' if st.active(env) else 'not granted'}")
        if arn:
            got = [env.eval(r) for r in st.resources]
            require(got == [arn], f"{SSH_WAF_PARAM}={arn!r}: WAF actions on {got}")
            # The sweep still removes the NACL blocks recorded before the switch to WAF.
            live = {a for s2 in role_statements(ctx.cfn, SSH_ID) if s2.effect == "Allow" and s2.active(env) for a in s2.actions}
            require(SSH_NACL_ACTIONS <= live, f"{SSH_WAF_PARAM}={arn!r}: {sorted(SSH_NACL_ACTIONS - live)} not granted; "
                    "the sweep could not remove the NACL blocks made before the switch")
    for fid in (FUNCTION_ID, ALERT_ID, DRAIN_ID):
        for s2 in role_statements(ctx.cfn, fid):
            other = [a for a in s2.actions if str(a).lower().startswith("wafv2:")]
            require(not other, f"{s2.label()}: {fid} must not have WAF actions {other}")


def references(node: Any, conds: tuple = ()) -> Iterator[tuple[str, tuple]]:
    """Logical IDs a template value refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub), each with the
    Fn::If branches it sits in."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            yield from references(yes, conds + ((name, True),))
            yield from references(no, conds + ((name, False),))
            return
        if set(node) == {"Ref"}:
            yield str(node["Ref"]), conds
            return
        if set(node) == {"Fn::GetAtt"}:
            yield str(getatt_target(node)), conds
            return
        if set(node) == {"Fn::Sub"}:
            arg = node["Fn::Sub"]
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            for name in re.findall(r"\$\{([^}!.]+)", text):
                if name not in extra:
                    yield name, conds
            yield from references(extra, conds)
            return
        for v in node.values():
            yield from references(v, conds)
    elif isinstance(node, list):
        for v in node:
            yield from references(v, conds)


@check("block-ssh-bruteforce exists only when SshLogGroupName is set: all its resources (function, role, log group, DLQ, "
       "subscription, rule, permissions) and outputs carry HasSshLogGroup, nothing else does, other resources refer to them only under it")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    require(Env(ctx.source).condition(SSH_CONDITION) is True, f"{SSH_CONDITION} is false with the defaults: the function is not deployed")
    require(Env(ctx.source, {"SshLogGroupName": ""}).condition(SSH_CONDITION) is False,
            f"{SSH_CONDITION} is true with SshLogGroupName empty: a subscription on no log group fails the stack")
    require(Env(ctx.source, {"SshLogGroupName": "/var/log/auth.log"}).condition(SSH_CONDITION) is True,
            f"{SSH_CONDITION} is false with SshLogGroupName /var/log/auth.log")
    conditional = {k for k, v in res.items() if v.get("Condition") == SSH_CONDITION}
    prefixed = {k for k in res if k.startswith(SSH_PREFIX)}
    require(prefixed <= conditional, f"block-ssh-bruteforce resources without Condition {SSH_CONDITION}: {sorted(prefixed - conditional)}")
    require(conditional <= prefixed, f"resources of other functions under {SSH_CONDITION}: {sorted(conditional - prefixed)}")
    core = {SSH_ID, SSH_SUBSCRIPTION, SSH_RULES["Sweep"], function_role_id(ctx.cfn, SSH_ID)}
    core.add(getatt_target(function(ctx.cfn, SSH_ID)["Properties"].get("DeadLetterConfig", {}).get("TargetArn")) or "<no DLQ>")
    core.add(str((function(ctx.cfn, SSH_ID)["Properties"].get("LoggingConfig", {}).get("LogGroup") or {}).get("Ref")))
    require(core <= conditional, f"not under {SSH_CONDITION}: {sorted(core - conditional)}")
    for rid, r in res.items():
        if rid in conditional:
            continue
        for ref, conds in references({k: v for k, v in r.items() if k != "Condition"}):
            if ref in conditional:
                require((SSH_CONDITION, True) in conds, f"{rid} refers to {ref} outside Fn::If {SSH_CONDITION}: it would fail without it")
        for dep in as_list(r.get("DependsOn", [])):
            require(dep not in conditional, f"{rid} DependsOn {dep}, which exists only with {SSH_CONDITION}")
    for oid, out in ctx.cfn.get("Outputs", {}).items():
        refs = {ref for ref, conds in references(out.get("Value")) if (SSH_CONDITION, True) not in conds}
        if refs & conditional:
            require(out.get("Condition") == SSH_CONDITION, f"output {oid} refers to {sorted(refs & conditional)} without Condition {SSH_CONDITION}")


# alert-to-slack's REFLEX_OWN_ROLE_ARNS: the roles whose successful security-group / NACL changes
# it does not report (the remediating function posted its own message about each one). They are
# the roles granted a change CloudTrailSecurity reports, as IAM actions:
SG_NACL_CHANGE_ACTIONS = {f"ec2:{name}" for name in SECURITY_CHANGES["ec2.amazonaws.com"]}
OWN_ROLES_ENV = "REFLEX_OWN_ROLE_ARNS"
# Those functions post to Slack only through the webhook (SlackWebhookSecret): without it (say
# alert-to-slack has a bot token alone) alert-to-slack must report their changes, so the variable
# is set only with a webhook secret (either form: SSM parameter name or Secrets Manager ARN).
OWN_ROLES_WEBHOOKS = ("/reflex/slack-webhook", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:reflex/slack-webhook-AbCdEf")


def reachable(resources: dict, start: str) -> set[str]:
    """Logical IDs `start` depends on, directly or not (Ref, Fn::GetAtt, Fn::Sub, DependsOn)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        rid = todo.pop()
        if rid in seen or rid not in resources:
            continue
        seen.add(rid)
        res = resources[rid]
        todo += [ref for ref, _ in references(res.get("Properties", {}))] + [str(d) for d in as_list(res.get("DependsOn", []))]
    return seen


@check("alert-to-slack REFLEX_OWN_ROLE_ARNS: only with SlackWebhookSecret (the remediating functions post to Slack only through "
       "the webhook), the GetAtt ARNs of exactly the roles that change security groups or network ACLs "
       "(close-open-ports; block-ssh-bruteforce's only when it is deployed); none of them depends on alert-to-slack")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    env_vars = function(ctx.cfn, ALERT_ID)["Properties"].get("Environment", {}).get("Variables", {})
    require(OWN_ROLES_ENV in env_vars, f"{ALERT_ID} has no {OWN_ROLES_ENV}: every remediation is reported twice")
    node = env_vars[OWN_ROLES_ENV]
    changers: dict[str, list[str]] = {}
    for fid in FUNCTION_IDS:
        acts = {a for st in role_statements(ctx.cfn, fid) if st.effect == "Allow" for a in st.actions} & SG_NACL_CHANGE_ACTIONS
        if acts:
            changers[function_role_id(ctx.cfn, fid)] = sorted(acts)
    require(function_role_id(ctx.cfn, FUNCTION_ID) in changers and function_role_id(ctx.cfn, SSH_ID) in changers,
            f"roles granted security-group / NACL changes: {changers}; expected close-open-ports' and block-ssh-bruteforce's")
    for webhook in ("", *OWN_ROLES_WEBHOOKS):
        for bot_token in ("", "/reflex/slack-bot-token"):
            for group in ("/var/log/secure", ""):
                env = Env(ctx.source, {"SlackWebhookSecret": webhook, "SlackBotTokenSecret": bot_token, "SshLogGroupName": group})
                where = f"SlackWebhookSecret={webhook!r}, SlackBotTokenSecret={bot_token!r}, SshLogGroupName={group!r}"
                value = resolve(env, node)
                if not webhook:
                    require(value is None, f"{where}: {OWN_ROLES_ENV} is {value!r}, expected unset: without the webhook the "
                            "remediating functions post nothing to Slack, so alert-to-slack must report their changes")
                    continue
                require(isinstance(value, str) and value, f"{where}: {OWN_ROLES_ENV} is {value!r}")
                got = []
                for item in (x.strip() for x in value.split(",")):
                    m = re.fullmatch(r"<([A-Za-z0-9]+)\.Arn>", item)
                    require(m, f"{where}: {OWN_ROLES_ENV} item {item!r} is not Fn::GetAtt <role>.Arn of a role in this stack")
                    got.append(m.group(1))
                require(len(got) == len(set(got)), f"{where}: {OWN_ROLES_ENV} repeats a role: {got}")
                for rid in got:
                    require(res.get(rid, {}).get("Type") == "AWS::IAM::Role", f"{OWN_ROLES_ENV}: {rid} is not an AWS::IAM::Role")
                    require(created(env, res[rid]), f"{where}: {OWN_ROLES_ENV} names {rid}, which is not created then")
                want = sorted(rid for rid in changers if created(env, res[rid]))
                require(sorted(got) == want, f"{where}: {OWN_ROLES_ENV} names {sorted(got)}, expected {want} "
                        "(the roles whose security-group / NACL changes their own function reports)")
    for rid in changers:
        require(ALERT_ID not in reachable(res, rid), f"{rid} depends on {ALERT_ID}, which names it in {OWN_ROLES_ENV}: a cycle")


@check("EventBridge rule: scheduled sweep from the SweepSchedule parameter")
def _(ctx: Ctx) -> None:
    _, rule = rule_with(ctx.cfn, lambda p: "ScheduleExpression" in p, "schedule")
    require(rule["Properties"]["ScheduleExpression"] == {"Ref": "SweepSchedule"},
            f"ScheduleExpression is {rule['Properties']['ScheduleExpression']!r}")
    require(len(function_rules(ctx.cfn)) == 3, f"expected 3 rules targeting the function, found {sorted(function_rules(ctx.cfn))}")


def queue_policy_allows(res: dict, qid: str, service: str, source_arn: Any, exists_if: str | None = None) -> bool:
    """Does a queue policy on `qid` let `service` sqs:SendMessage with aws:SourceArn `source_arn`?
    An ARN listed inside Fn::If counts only under the condition the source itself exists under
    (`exists_if`, the Condition of a conditional rule)."""
    for pid, pol in res.items():
        if pol["Type"] != "AWS::SQS::QueuePolicy" or {"Ref": qid} not in pol["Properties"].get("Queues", []):
            continue
        for st in statements({pid: pol}):
            if st.effect == "Allow" and "sqs:SendMessage" in st.actions and st.raw.get("Principal", {}) == {"Service": service}:
                arns = []
                for op in ("ArnEquals", "ArnLike", "StringEquals"):
                    for item in as_list(st.raw.get("Condition", {}).get(op, {}).get("aws:SourceArn", [])):
                        # The value itself (e.g. the alarm topic's Fn::If), or each branch of an Fn::If.
                        arns += [(item, ())] + ([] if item == source_arn else list(expand_if(item)))
                for arn, conds in arns:
                    if arn == source_arn and set(conds) <= ({(exists_if, True)} if exists_if else set()):
                        return True
    return False


@check("every rule target has a dead-letter queue that lets that rule send to it")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    for fid, rid, rule in [(f, r, x) for f in FUNCTION_IDS for r, x in function_rules(ctx.cfn, f).items()]:
        targets = [t for t in rule["Properties"]["Targets"] if getatt_target(t.get("Arn")) == fid]
        for t in targets:
            qid = getatt_target(t.get("DeadLetterConfig", {}).get("Arn"))
            require(qid and res.get(qid, {}).get("Type") == "AWS::SQS::Queue", f"{rid}: target has no SQS DeadLetterConfig")
            allowed = queue_policy_allows(res, qid, "events.amazonaws.com", {"Fn::GetAtt": [rid, "Arn"]}, rule.get("Condition"))
            require(allowed, f"{rid}: no queue policy on {qid} lets this rule (aws:SourceArn) send messages")


@check("function has an SQS dead-letter queue and EventInvokeConfig MaximumRetryAttempts 2")
def _(ctx: Ctx) -> None:
    queues = []
    for fid in FUNCTION_IDS:
        p = function(ctx.cfn, fid)["Properties"]
        qid = getatt_target(p.get("DeadLetterConfig", {}).get("TargetArn"))
        require(qid and ctx.resources.get(qid, {}).get("Type") == "AWS::SQS::Queue", f"{fid} has no SQS DeadLetterConfig")
        eic = [r for r in ctx.resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
               and r["Properties"].get("FunctionName") == {"Ref": fid}]
        require(len(eic) == 1, f"expected one EventInvokeConfig for {fid}, found {len(eic)}")
        require(eic[0]["Properties"].get("MaximumRetryAttempts") == 2,
                f"{fid} MaximumRetryAttempts is {eic[0]['Properties'].get('MaximumRetryAttempts')!r}")
        role_ok = [s for s in role_statements(ctx.cfn, fid) if s.effect == "Allow" and "sqs:SendMessage" in s.actions
                   and {"Fn::GetAtt": [qid, "Arn"]} in s.resources]
        require(role_ok, f"the {fid} role cannot sqs:SendMessage to {qid}")
        queues.append(qid)
    require(len(set(queues)) == len(queues), f"functions share a dead-letter queue: {queues}")


@check("every SQS queue is encrypted at rest")
def _(ctx: Ctx) -> None:
    queues = {k: v for k, v in ctx.resources.items() if v["Type"] == "AWS::SQS::Queue"}
    require(queues, "no SQS queues")
    for qid, q in queues.items():
        p = q.get("Properties", {})
        require(p.get("SqsManagedSseEnabled") is True or p.get("KmsMasterKeyId"), f"{qid} has no SSE")


@check("no IAM statement anywhere has Action '*' or 'service:*' (or NotAction)")
def _(ctx: Ctx) -> None:
    sts = statements(ctx.resources)
    require(sts, "no policy statements found")
    for st in sts:
        require("NotAction" not in st.raw, f"{st.label()}: uses NotAction")
        for a in st.actions:
            require(isinstance(a, str), f"{st.label()}: non-literal action {a!r}")
            require(a != "*" and not re.fullmatch(r"[A-Za-z0-9-]+:\*", a), f"{st.label()}: wildcard action {a!r}")
        if st.effect == "Allow":
            require("NotResource" not in st.raw, f"{st.label()}: Allow with NotResource")
    for rid, res in ctx.resources.items():
        if res["Type"] == "AWS::Lambda::Permission":
            a = res["Properties"].get("Action")
            require(a not in ("*", "lambda:*"), f"{rid}: Lambda permission action {a!r}")


@check("function role: only expected actions, no broad managed policies")
def _(ctx: Ctx) -> None:
    roles = []
    for fid in FUNCTION_IDS:
        role_id = function_role_id(ctx.cfn, fid)
        roles.append(role_id)
        for arn in ctx.resources[role_id]["Properties"].get("ManagedPolicyArns", []):
            text = json.dumps(arn)
            require(any(text.rstrip('"').endswith(s) for s in ALLOWED_MANAGED_POLICY_SUFFIXES),
                    f"{role_id} has managed policy {text}")
        for st in role_statements(ctx.cfn, fid):
            if st.effect == "Allow":
                unexpected = set(st.actions) - ROLE_ACTIONS[fid]
                require(not unexpected, f"{st.label()}: unexpected actions {sorted(unexpected)}")
        trust = ctx.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]
        for item in as_list(trust["Statement"]):
            require(item.get("Principal") == {"Service": "lambda.amazonaws.com"}, f"{role_id} trusts {item.get('Principal')!r}")
    require(len(set(roles)) == len(roles), f"functions share a role: {roles}")


@check("alert-to-slack role: DynamoDB item actions on its table only, nothing on '*'")
def _(ctx: Ctx) -> None:
    table_arn = {"Fn::GetAtt": [ALERT_TABLE, "Arn"]}
    granted: set[str] = set()
    for st in role_statements(ctx.cfn, ALERT_ID):
        if st.effect != "Allow" or is_vpc_statement(st):
            continue
        require("*" not in st.resources, f"{st.label()}: Resource '*' (every alert-to-slack action supports resource-level permissions)")
        ddb = [a for a in st.actions if a.lower().startswith("dynamodb:")]
        if ddb:
            require(st.resources == [table_arn], f"{st.label()}: {ddb} on {st.resources!r}, expected only the table ARN {table_arn}")
            require(not st.conds, f"{st.label()}: DynamoDB access must not depend on a condition")
            granted |= set(ddb)
    require(granted == ALERT_DYNAMODB_ACTIONS,
            f"DynamoDB actions {sorted(granted)}, expected exactly {sorted(ALERT_DYNAMODB_ACTIONS)}")
    for st in role_statements(ctx.cfn, FUNCTION_ID):
        ddb = [a for a in st.actions if a.lower().startswith("dynamodb:")]
        require(not ddb, f"{st.label()}: close-open-ports must not touch DynamoDB ({ddb})")


def tag_condition(st: Statement) -> dict:
    return st.raw.get("Condition") or {}


@check("drain-before-maintenance role: Describe* on '*'; ELBv2 / Auto Scaling changes only on this account's target groups / groups tagged reflex:drain=true; DynamoDB on its table only")
def _(ctx: Ctx) -> None:
    env = Env(ctx.source)
    table_arn = {"Fn::GetAtt": [DRAIN_TABLE, "Arn"]}
    drain_tag = function(ctx.cfn, DRAIN_ID)["Properties"].get("Environment", {}).get("Variables", {}).get("REFLEX_DRAIN_TAG")
    require(isinstance(drain_tag, str) and "=" in drain_tag, f"REFLEX_DRAIN_TAG is {drain_tag!r}, not a literal key=value")
    tag_key, tag_value = drain_tag.split("=", 1)
    # The opt-in tag the function checks on instances is the tag IAM requires on what it changes.
    want_cond = {"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}}
    scoped = {frozenset(DRAIN_ELB_ACTIONS): DRAIN_TARGET_GROUP_ARN, frozenset(DRAIN_ASG_ACTIONS): DRAIN_ASG_ARN}
    granted: set[str] = set()
    for st in role_statements(ctx.cfn, DRAIN_ID):
        if st.effect != "Allow" or is_vpc_statement(st):
            continue
        acts = set(st.actions)
        wild = [a for a in acts if "*" in a]
        require(not wild, f"{st.label()}: wildcard actions {wild}")
        if "*" in st.resources:
            require(acts <= DRAIN_READ_ACTIONS, f"{st.label()}: {sorted(acts - DRAIN_READ_ACTIONS)} on Resource '*' (only the read-only Describe calls may be)")
            require(st.resources == ["*"] and not st.conds, f"{st.label()}: the Describe calls must be granted unconditionally on '*' alone")
        mutating = acts & (DRAIN_ELB_ACTIONS | DRAIN_ASG_ACTIONS)
        if mutating:
            group = next((g for g in scoped if mutating <= g), None)
            require(group is not None and acts <= group,
                    f"{st.label()}: {sorted(acts)} mixes actions of different services or with other actions")
            got = [env.eval(r) for r in st.resources]
            require(got == [scoped[group]], f"{st.label()}: {sorted(acts)} on {got}, expected [{scoped[group]}]")
            require(tag_condition(st) == want_cond,
                    f"{st.label()}: Condition is {tag_condition(st)!r}, expected {want_cond!r} (the REFLEX_DRAIN_TAG opt-in)")
            require(not st.conds, f"{st.label()}: must not depend on a template condition")
        ddb = {a for a in acts if a.lower().startswith("dynamodb:")}
        if ddb:
            require(st.resources == [table_arn], f"{st.label()}: {sorted(ddb)} on {st.resources!r}, expected only {table_arn}")
            require(not st.conds, f"{st.label()}: DynamoDB access must not depend on a condition")
        if not st.conds:
            granted |= acts
    want = DRAIN_READ_ACTIONS | DRAIN_ELB_ACTIONS | DRAIN_ASG_ACTIONS | DRAIN_DYNAMODB_ACTIONS | {
        "logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}
    require(granted == want, f"unconditional actions {sorted(granted)}; missing {sorted(want - granted)}, unexpected {sorted(granted - want)}")
    for fid in (FUNCTION_ID, ALERT_ID):
        for st in role_statements(ctx.cfn, fid):
            other = set(st.actions) & (DRAIN_ELB_ACTIONS | DRAIN_ASG_ACTIONS | DRAIN_READ_ACTIONS)
            require(not other, f"{st.label()}: {fid} must not have drain actions {sorted(other)}")


@check("DynamoDB table: key pk (S) only, on-demand, TTL on expires_at, SSE, point-in-time recovery, explicit deletion policy")
def _(ctx: Ctx) -> None:
    # alert-to-slack's and drain-before-maintenance's tables: same store layout (reflex_core::store).
    for table in TABLES:
        require_table(ctx, table)


def require_table(ctx: Ctx, table: str) -> None:
    res = ctx.source["Resources"].get(table, {})
    require(res.get("Type") == "AWS::DynamoDB::Table", f"{table} is not an AWS::DynamoDB::Table")
    p = res.get("Properties", {})
    require(p.get("KeySchema") == [{"AttributeName": "pk", "KeyType": "HASH"}], f"{table} KeySchema is {p.get('KeySchema')!r}, expected HASH pk only")
    require(p.get("AttributeDefinitions") == [{"AttributeName": "pk", "AttributeType": "S"}],
            f"{table} AttributeDefinitions is {p.get('AttributeDefinitions')!r}, expected pk (S) only")
    require(p.get("BillingMode") == "PAY_PER_REQUEST", f"{table} BillingMode is {p.get('BillingMode')!r}")
    ttl = p.get("TimeToLiveSpecification") or {}
    require(ttl.get("AttributeName") == "expires_at" and ttl.get("Enabled") is True,
            f"{table} TimeToLiveSpecification is {ttl!r}, expected expires_at enabled")
    require((p.get("SSESpecification") or {}).get("SSEEnabled") is True, f"{table} SSESpecification is {p.get('SSESpecification')!r}")
    pitr = p.get("PointInTimeRecoverySpecification") or {}
    require(pitr.get("PointInTimeRecoveryEnabled") is True, f"{table} PointInTimeRecoverySpecification is {pitr!r}")
    require("TableName" not in p, f"{table} TableName is fixed: a second stack in the account/region would collide")
    for key in ("DeletionPolicy", "UpdateReplacePolicy"):
        require(res.get(key) in ("Delete", "Retain", "Snapshot", "RetainExceptOnCreate"), f"{table} has no explicit {key}")
    require(not p.get("StreamSpecification") and not p.get("GlobalSecondaryIndexes"), f"{table} has streams or GSIs the function does not use")


@check("Resource '*' only on read-only Describe* actions (and logs)")
def _(ctx: Ctx) -> None:
    for st in statements(ctx.resources):
        if st.effect != "Allow" or "*" not in st.resources:
            continue
        # Lambda's DescribeNetworkInterfaces / DescribeSubnets work only on "*": only with InVpc.
        vpc = st.conds == ((VPC_CONDITION, True),)
        bad = [a for a in st.actions if not (a.startswith("ec2:Describe") or a.startswith("logs:") or a in READ_ONLY_ON_STAR
                                             or (vpc and a in VPC_ENI_STAR_ACTIONS))]
        require(not bad, f"{st.label()}: Resource '*' with {bad}")
    describe = [s for s in role_statements(ctx.cfn) if "ec2:DescribeSecurityGroups" in s.actions]
    require(describe and not describe[0].conds, "ec2:DescribeSecurityGroups is not granted unconditionally")


@check("ec2 Revoke/Authorize scoped to this account's security groups; Authorize only with ReauthorizeRemainder")
def _(ctx: Ctx) -> None:
    sts = role_statements(ctx.cfn)
    for action in ("ec2:RevokeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupIngress"):
        grants = [s for s in sts if s.effect == "Allow" and action in s.actions]
        require(grants, f"{action} is never granted")
        for s in grants:
            env = Env(ctx.source)
            got = [env.eval(r) for r in s.resources]
            require(got == [SG_ARN], f"{s.label()}: {action} on {got}, expected [{SG_ARN}]")
    for value, expect in (("false", False), ("true", True)):
        env = Env(ctx.source, {"ReauthorizeRemainder": value})
        live = any(s.active(env) for s in sts if "ec2:AuthorizeSecurityGroupIngress" in s.actions)
        require(live == expect, f"ReauthorizeRemainder={value}: AuthorizeSecurityGroupIngress granted={live}")
    env = Env(ctx.source)
    require(any(s.active(env) for s in sts if "ec2:RevokeSecurityGroupIngress" in s.actions),
            "RevokeSecurityGroupIngress is not granted with default parameters")


@check("sns:Publish only on the SnsTopicArn parameter, only when it is set")
def _(ctx: Ctx) -> None:
    # Identity policies (the alarm topic's own resource policy is checked with the topic).
    identity = {k: v for k, v in ctx.resources.items() if v["Type"] != "AWS::SNS::TopicPolicy"}
    grants = [s for s in statements(identity) if "sns:Publish" in s.actions and s.effect == "Allow"]
    require(grants, "sns:Publish is never granted")
    for fid in FUNCTION_IDS:
        require([s for s in role_statements(ctx.cfn, fid) if "sns:Publish" in s.actions], f"{fid} cannot sns:Publish")
    for s in grants:
        require(s.resources == [{"Ref": "SnsTopicArn"}], f"{s.label()}: sns:Publish on {s.resources!r}")
        require(s.conds == (("HasSnsTopic", True),), f"{s.label()}: not guarded by Fn::If HasSnsTopic")
    topic = "arn:aws:sns:us-east-1:123456789012:reflex-reports"
    require(not any(s.active(Env(ctx.source)) for s in grants), "sns:Publish granted while SnsTopicArn is empty")
    require(all(s.active(Env(ctx.source, {"SnsTopicArn": topic})) for s in grants), "sns:Publish not granted when set")


@check("Slack secret: ssm:GetParameter for a name, secretsmanager:GetSecretValue for an ARN, nothing when empty")
def _(ctx: Ctx) -> None:
    # Each function's role may read exactly the secrets named by its parameters (SECRET_PARAMETERS),
    # and only in the form each value has.
    values = {
        "SlackWebhookSecret": ("/reflex/slack-webhook", "arn:aws:secretsmanager:us-east-1:123456789012:secret:reflex/slack-webhook-AbCdEf"),
        "SlackBotTokenSecret": ("/reflex/slack-bot-token", "arn:aws:secretsmanager:us-east-1:123456789012:secret:reflex/slack-bot-AbCdEf"),
    }
    for fid, names in SECRET_PARAMETERS.items():
        sts = [s for s in role_statements(ctx.cfn, fid) if s.effect == "Allow"]
        ssm = [s for s in sts if "ssm:GetParameter" in s.actions]
        sm = [s for s in sts if "secretsmanager:GetSecretValue" in s.actions]
        require(ssm and sm, f"{fid}: ssm:GetParameter or secretsmanager:GetSecretValue is never granted")
        combos: list[dict[str, str]] = [{}]
        for n in values:  # every parameter: empty, SSM name, Secrets Manager ARN
            combos = [{**c, n: v} for c in combos for v in ("", *values[n])]
        for combo in combos:
            env = Env(ctx.source, combo)
            want_ssm = sorted(f"arn:aws:ssm:us-east-1:123456789012:parameter{combo[n]}" for n in names if combo[n].startswith("/"))
            want_sm = sorted(combo[n] for n in names if combo[n].startswith("arn:"))
            got_ssm = sorted(env.eval(r) for s in ssm if s.active(env) for r in s.resources)
            got_sm = sorted(env.eval(r) for s in sm if s.active(env) for r in s.resources)
            label = ", ".join(f"{n}={combo[n]!r}" for n in values)
            require(got_ssm == want_ssm, f"{fid} with {label}: ssm:GetParameter on {got_ssm}, expected {want_ssm}")
            require(got_sm == want_sm, f"{fid} with {label}: secretsmanager:GetSecretValue on {got_sm}, expected {want_sm}")
    for n, (name, arn) in values.items():
        pattern = ctx.source["Parameters"][n].get("AllowedPattern")
        if pattern:
            for ok in ("", name, arn):
                require(re.fullmatch(pattern, ok), f"{n} AllowedPattern rejects {ok!r}")
            require(not re.fullmatch(pattern, "arn:aws:ssm:us-east-1:123456789012:parameter/x"),
                    f"{n} AllowedPattern accepts an SSM ARN (it would be treated as a Secrets Manager ARN)")


def alarm_topic_arn(env: Env) -> str:
    return env.eval({"Fn::If": ["CreateAlarmTopic", {"Ref": ALARM_TOPIC}, {"Ref": "AlarmTopicArn"}]})


@check("alarm topic: created only when AlarmTopicArn is empty; only this account's CloudWatch alarms may publish to it")
def _(ctx: Ctx) -> None:
    src = ctx.source["Resources"]
    topic = src.get(ALARM_TOPIC, {})
    require(topic.get("Type") == "AWS::SNS::Topic", f"{ALARM_TOPIC} is not an AWS::SNS::Topic")
    cond = topic.get("Condition")
    require(cond, f"{ALARM_TOPIC} has no Condition: it would be created even when AlarmTopicArn is given")
    given = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
    require(Env(ctx.source).condition(cond) is True, f"{ALARM_TOPIC} is not created when AlarmTopicArn is empty")
    require(Env(ctx.source, {"AlarmTopicArn": given}).condition(cond) is False, f"{ALARM_TOPIC} is created although AlarmTopicArn is set")
    pols = [(k, v) for k, v in src.items() if v.get("Type") == "AWS::SNS::TopicPolicy" and {"Ref": ALARM_TOPIC} in v["Properties"].get("Topics", [])]
    require(len(pols) == 1, f"expected one AWS::SNS::TopicPolicy on {ALARM_TOPIC}, found {[k for k, _ in pols]}")
    pid, pol = pols[0]
    require(pol.get("Condition") == cond, f"{pid} Condition is {pol.get('Condition')!r}, expected {cond!r} like the topic")
    sts = statements(ctx.resources if pid in ctx.resources else {pid: pol})
    sts = [s for s in sts if s.where.startswith(pid)]
    allows = [s for s in sts if s.effect == "Allow"]
    require(allows, f"{pid} allows nothing: CloudWatch alarms could not publish")
    for st in allows:
        require(st.raw.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}, f"{st.label()}: principal {st.raw.get('Principal')!r}")
        require(st.actions == ["sns:Publish"], f"{st.label()}: actions {st.actions}")
        cond_block = st.raw.get("Condition", {})
        account = cond_block.get("StringEquals", {}).get("aws:SourceAccount")
        require(account == {"Ref": "AWS::AccountId"}, f"{st.label()}: no aws:SourceAccount = this account (confused deputy)")
        src_arn = cond_block.get("ArnLike", {}).get("aws:SourceArn") or cond_block.get("ArnEquals", {}).get("aws:SourceArn")
        got = Env(ctx.source).eval(src_arn) if src_arn else None
        require(got == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*", f"{st.label()}: aws:SourceArn is {got!r}, expected this account's alarms")
    deny = [s for s in sts if s.effect == "Deny" and s.raw.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    require(deny, f"{pid} does not deny publishing over plain HTTP")


@check("SNS subscription: alert-to-slack on the alarm topic (AlarmTopicArn or the created one), invoke permission for that topic, redrive to a DLQ that allows it")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    subs = {k: v for k, v in res.items() if v["Type"] == "AWS::SNS::Subscription"}
    require(len(subs) == 1, f"expected one SNS subscription, found {sorted(subs)}")
    sid, sub = next(iter(subs.items()))
    p = sub["Properties"]
    require(p.get("Protocol") == "lambda" and getatt_target(p.get("Endpoint")) == ALERT_ID,
            f"{sid} is {p.get('Protocol')!r} to {p.get('Endpoint')!r}, expected lambda to {ALERT_ID}")
    given = "arn:aws:sns:us-east-1:123456789012:ops-alarms"
    for value, want in (("", f"<{ALARM_TOPIC}>"), (given, given)):
        env = Env(ctx.source, {"AlarmTopicArn": value})
        got = env.eval(p.get("TopicArn"))
        require(got == want, f"AlarmTopicArn={value!r}: subscription TopicArn is {got!r}, expected {want!r}")
        perms = [r for r in res.values() if r["Type"] == "AWS::Lambda::Permission" and r["Properties"].get("Principal") == "sns.amazonaws.com"]
        require(len(perms) == 1, f"expected one sns.amazonaws.com invoke permission, found {len(perms)}")
        pp = perms[0]["Properties"]
        require(pp.get("FunctionName") in ({"Ref": ALERT_ID}, {"Fn::GetAtt": [ALERT_ID, "Arn"]}), f"SNS permission is on {pp.get('FunctionName')!r}")
        require(env.eval(pp.get("SourceArn")) == want, f"AlarmTopicArn={value!r}: SNS invoke permission SourceArn is {env.eval(pp.get('SourceArn'))!r}")
        out = [o for o in ctx.cfn.get("Outputs", {}).values() if env.eval(o.get("Value")) == want]
        require(out, f"AlarmTopicArn={value!r}: no output with the alarm topic ARN {want!r}")
    qid = getatt_target((p.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
    require(qid and res.get(qid, {}).get("Type") == "AWS::SQS::Queue", f"{sid} has no RedrivePolicy to an SQS queue")
    require(queue_policy_allows(res, qid, "sns.amazonaws.com", p.get("TopicArn")),
            f"no queue policy on {qid} lets the alarm topic (aws:SourceArn {p.get('TopicArn')!r}) send messages")


def require_rules(ctx: Ctx, cases: list[tuple[dict[str, str], bool]]) -> None:
    """The template's Rules accept exactly the parameter sets marked True."""
    rules = ctx.source.get("Rules", {})
    for args, allowed in cases:
        env = Env(ctx.source, args)
        ok = all(env.eval(a["Assert"]) is True for r in rules.values() if "RuleCondition" not in r or env.eval(r["RuleCondition"]) is True
                 for a in r.get("Assertions", []))
        require(ok == allowed, f"parameters {args or 'defaults'}: the template's Rules {'reject' if allowed else 'accept'} them")


@check("Rules: SnsTopicArn may not be the alarm topic (the function would receive its own messages)")
def _(ctx: Ctx) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:ops"
    require_rules(ctx, [({}, True), ({"SnsTopicArn": topic}, True), ({"AlarmTopicArn": topic}, True),
                        ({"SnsTopicArn": topic, "AlarmTopicArn": topic + "-2"}, True), ({"SnsTopicArn": topic, "AlarmTopicArn": topic}, False)])


@check("outputs: function ARN and DLQ URL of each function, table names")
def _(ctx: Ctx) -> None:
    outs = ctx.cfn.get("Outputs", {})
    values = [o.get("Value") for o in outs.values()]
    for fid in FUNCTION_IDS:
        require({"Fn::GetAtt": [fid, "Arn"]} in values, f"no output with the {fid} ARN")
        qid = getatt_target(function(ctx.cfn, fid)["Properties"].get("DeadLetterConfig", {}).get("TargetArn"))
        require({"Ref": qid} in values or {"Fn::GetAtt": [qid, "QueueUrl"]} in values, f"no output with the URL of {qid}")
    for table in TABLES:
        require({"Ref": table} in values, f"no output with the {table} name")
    require({"Ref": "EventDeliveryDLQ"} in values, "no output with the EventDeliveryDLQ URL")


# --------------------------------------------------------------------------- private networking

# Interface endpoints: one per AWS API the functions call from the VPC, plus CloudWatch Logs (the
# issue asks for it; Lambda ships function logs outside the VPC, but the CloudWatch agent on the
# instances in these subnets, which feeds block-ssh-bruteforce, needs it). DynamoDB: a gateway.
VPC_INTERFACE_SERVICES = {"ec2", "elasticloadbalancing", "autoscaling", "sns", "logs", "secretsmanager", "ssm"}
VPC_GATEWAY_SERVICES = {"dynamodb"}
# Role actions the Lambda service uses on the function's behalf, not the function code in the
# VPC: the log stream writes and the async dead-letter queue send. They need no endpoint.
NOT_CALLED_FROM_THE_VPC = {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}
# Services called without an endpoint in VpcSubnetIds -> the only condition they may be granted
# under. WAF: block-ssh-bruteforce calls it in the IP set's region (us-east-1 for a CloudFront
# set), which need not be the stack's; like Slack, it goes through the VPC's NAT or proxy.
NO_ENDPOINT_SERVICES = {"wafv2": SSH_WAF_CONDITION}
ENDPOINT_PREFIX = "com.amazonaws.us-east-1."


def vpc_config(env: Env, fn: dict) -> dict | None:
    """A function's VpcConfig with the template's conditions evaluated; None when absent."""
    node = resolve(env, fn["Properties"].get("VpcConfig", {"Ref": "AWS::NoValue"}))
    if node is None:
        return None
    require(isinstance(node, dict), f"VpcConfig evaluates to {node!r}")
    return {k: env.eval(resolve(env, v)) for k, v in node.items()}


def endpoints(ctx: Ctx) -> dict[str, dict]:
    return {k: v for k, v in ctx.resources.items() if v["Type"] == "AWS::EC2::VPCEndpoint"}


def created(env: Env, res: dict) -> bool:
    return "Condition" not in res or env.condition(res["Condition"])


@check("private networking: with the defaults no function has a VpcConfig and no VPC endpoint exists; with VpcSubnetIds every function "
       "has VpcConfig (those subnets, VpcSecurityGroupIds) and the endpoints exist unless CreateVpcEndpoints is false")
def _(ctx: Ctx) -> None:
    eps = endpoints(ctx)
    require(eps, "no AWS::EC2::VPCEndpoint in the template")
    default = Env(ctx.source)
    in_vpc = Env(ctx.source, VPC_ARGS)
    no_endpoints = Env(ctx.source, {**VPC_ARGS, "CreateVpcEndpoints": "false"})
    subnets, groups = VPC_ARGS["VpcSubnetIds"].split(","), VPC_ARGS["VpcSecurityGroupIds"].split(",")
    for fid in FUNCTION_IDS:
        fn = function(ctx.cfn, fid)
        got = vpc_config(default, fn)
        require(got is None, f"{fid} has VpcConfig {got!r} with the default parameters (no VpcSubnetIds)")
        for label, env in (("VPC parameters", in_vpc), ("VPC parameters, CreateVpcEndpoints false", no_endpoints)):
            got = vpc_config(env, fn)
            require(got == {"SubnetIds": subnets, "SecurityGroupIds": groups},
                    f"{fid} with {label}: VpcConfig is {got!r}, expected SubnetIds {subnets} and SecurityGroupIds {groups}")
    for eid, ep in eps.items():
        require(not created(default, ep), f"{eid} is created with the default parameters (no VpcSubnetIds)")
        require(not created(Env(ctx.source, {"CreateVpcEndpoints": "true"}), ep), f"{eid} is created without VpcSubnetIds")
        require(created(in_vpc, ep), f"{eid} is not created with VpcSubnetIds and CreateVpcEndpoints true")
        require(not created(no_endpoints, ep), f"{eid} is created although CreateVpcEndpoints is false")


@check("private networking: VPC endpoints for every AWS API the functions call (interface, private DNS, VpcSubnetIds, VpcSecurityGroupIds: "
       "ec2, elasticloadbalancing, autoscaling, sns, logs, secretsmanager, ssm; gateway on VpcRouteTableIds: dynamodb), no other")
def _(ctx: Ctx) -> None:
    env = Env(ctx.source, VPC_ARGS)
    interface: dict[str, str] = {}
    gateway: dict[str, str] = {}
    for eid, ep in endpoints(ctx).items():
        p = ep["Properties"]
        name = str(env.eval(p.get("ServiceName")))
        require(name.startswith(ENDPOINT_PREFIX), f"{eid}: ServiceName {name!r} is not com.amazonaws.<this region>.<service>")
        service = name[len(ENDPOINT_PREFIX):]
        require(p.get("VpcId") == {"Ref": "VpcId"}, f"{eid}: VpcId is {p.get('VpcId')!r}, expected Ref VpcId")
        kind = p.get("VpcEndpointType", "Gateway")
        if kind == "Interface":
            require(service not in interface, f"{eid}: a second {service} interface endpoint ({interface.get(service)})")
            interface[service] = eid
            require(p.get("PrivateDnsEnabled") is True, f"{eid}: PrivateDnsEnabled is {p.get('PrivateDnsEnabled')!r}; the SDK resolves the public name")
            require(p.get("SubnetIds") == {"Ref": "VpcSubnetIds"}, f"{eid}: SubnetIds is {p.get('SubnetIds')!r}, expected Ref VpcSubnetIds")
            require(p.get("SecurityGroupIds") == {"Ref": "VpcSecurityGroupIds"},
                    f"{eid}: SecurityGroupIds is {p.get('SecurityGroupIds')!r}, expected Ref VpcSecurityGroupIds")
        else:
            require(kind == "Gateway", f"{eid}: VpcEndpointType {kind!r}")
            require(service not in gateway, f"{eid}: a second {service} gateway endpoint ({gateway.get(service)})")
            gateway[service] = eid
            require(p.get("RouteTableIds") == {"Ref": "VpcRouteTableIds"}, f"{eid}: RouteTableIds is {p.get('RouteTableIds')!r}, expected Ref VpcRouteTableIds")
    require(set(interface) == VPC_INTERFACE_SERVICES,
            f"interface endpoints {sorted(interface)}; missing {sorted(VPC_INTERFACE_SERVICES - set(interface))}, unexpected {sorted(set(interface) - VPC_INTERFACE_SERVICES)}")
    require(set(gateway) == VPC_GATEWAY_SERVICES,
            f"gateway endpoints {sorted(gateway)}; missing {sorted(VPC_GATEWAY_SERVICES - set(gateway))}, unexpected {sorted(set(gateway) - VPC_GATEWAY_SERVICES)}")
    # Every service a role grants actions of, and the code calls, has its endpoint.
    def needs_endpoint(st: Statement, action: str) -> bool:
        service = action.split(":", 1)[0]
        exempt = service in NO_ENDPOINT_SERVICES and (NO_ENDPOINT_SERVICES[service], True) in st.conds
        return action not in NOT_CALLED_FROM_THE_VPC and not exempt

    called = {a.split(":", 1)[0] for fid in FUNCTION_IDS for st in role_statements(ctx.cfn, fid)
              if st.effect == "Allow" and not is_vpc_statement(st) for a in st.actions if needs_endpoint(st, a)}
    missing = called - set(interface) - set(gateway)
    require(not missing, f"the functions call {sorted(missing)} without a VPC endpoint: they would need a NAT for it")


@check("private networking: each role gets Lambda's network-interface actions only with InVpc (Describe on '*'; Create / Delete / "
       "Assign / Unassign on this account's resources, never on '*'; the CDK app's Sids), exactly those, no managed policy")
def _(ctx: Ctx) -> None:
    default, in_vpc = Env(ctx.source), Env(ctx.source, VPC_ARGS)
    for fid in FUNCTION_IDS:
        vpc = [st for st in role_statements(ctx.cfn, fid) if is_vpc_statement(st)]
        require(vpc, f"{fid}: no network-interface statement; Lambda cannot attach the function to VpcSubnetIds")
        granted: set[str] = set()
        for st in vpc:
            acts = set(st.actions)
            require(st.effect == "Allow" and acts <= VPC_ENI_ACTIONS,
                    f"{st.label()}: {sorted(acts - VPC_ENI_ACTIONS)} in a network-interface statement")
            require(st.conds == ((VPC_CONDITION, True),), f"{st.label()}: not guarded by Fn::If {VPC_CONDITION} alone")
            require("Condition" not in st.raw, f"{st.label()}: an IAM Condition may stop Lambda from managing its interfaces")
            got = [in_vpc.eval(r) for r in st.resources]
            sid = st.raw.get("Sid")
            if acts & VPC_ENI_STAR_ACTIONS:
                require(acts <= VPC_ENI_STAR_ACTIONS and got == ["*"], f"{st.label()}: {sorted(acts)} on {got}; only "
                        f"{sorted(VPC_ENI_STAR_ACTIONS)} belong on '*' (they work only there; CreateNetworkInterface gets "
                        f"this account's resources, as in the CDK app)")
                require(sid == VPC_DESCRIBE_SID, f"{st.label()}: Sid {sid!r}, expected {VPC_DESCRIBE_SID!r} (the CDK app's)")
            else:
                require(got == [VPC_ENI_ARN], f"{st.label()}: {sorted(acts)} on {got}, expected [{VPC_ENI_ARN}]")
                require(sid == VPC_CHANGES_SID, f"{st.label()}: Sid {sid!r}, expected {VPC_CHANGES_SID!r} (the CDK app's)")
            require(not st.active(default) and st.active(in_vpc), f"{st.label()}: granted {'with' if st.active(default) else 'without'} the defaults")
            granted |= acts
        require(granted == VPC_ENI_ACTIONS, f"{fid}: network-interface actions {sorted(granted)}, missing {sorted(VPC_ENI_ACTIONS - granted)}")
        role = ctx.resources[function_role_id(ctx.cfn, fid)]
        require(not role["Properties"].get("ManagedPolicyArns"),
                f"{fid}: managed policies {role['Properties'].get('ManagedPolicyArns')!r} (AWSLambdaVPCAccessExecutionRole adds logs on '*')")


@check("Rules: VpcSecurityGroupIds with VpcSubnetIds; VpcId and VpcRouteTableIds when the VPC endpoints are created")
def _(ctx: Ctx) -> None:
    no_sg = {k: v for k, v in VPC_ARGS.items() if k != "VpcSecurityGroupIds"}
    no_vpc = {k: v for k, v in VPC_ARGS.items() if k != "VpcId"}
    no_rtb = {k: v for k, v in VPC_ARGS.items() if k != "VpcRouteTableIds"}
    require_rules(ctx, [
        ({}, True),
        (VPC_ARGS, True),
        (no_sg, False),
        (no_vpc, False),
        (no_rtb, False),
        ({**no_vpc, "CreateVpcEndpoints": "false"}, True),
        ({**no_rtb, "CreateVpcEndpoints": "false"}, True),
        ({"VpcSubnetIds": VPC_ARGS["VpcSubnetIds"], "VpcSecurityGroupIds": VPC_ARGS["VpcSecurityGroupIds"], "CreateVpcEndpoints": "false"}, True),
        ({"CreateVpcEndpoints": "true"}, True),
        ({"VpcSecurityGroupIds": "sg-0ccccccccccccccc3"}, True),  # no subnets: no VPC, nothing required
    ])


def run_checks(path: Path, quiet: bool = False) -> tuple[int, int, list[str]]:
    ctx = Ctx(path)
    passed, failed, failures = 0, 0, []
    for title, fn in CHECKS:
        try:
            fn(ctx)
        except CheckFailed as e:
            failed += 1
            failures.append(title)
            if not quiet:
                print(f"FAIL  {title}\n      {e}")
        except Exception as e:  # a bug or an unexpected template shape: report, don't crash
            failed += 1
            failures.append(title)
            if not quiet:
                print(f"FAIL  {title}\n      {type(e).__name__}: {e}")
                traceback.print_exc(limit=3)
        else:
            passed += 1
            if not quiet:
                print(f"ok    {title}")
    return passed, failed, failures


# --------------------------------------------------------------------------- self-test


def _role_statements_list(t: dict) -> list:
    return t["Resources"]["CloseOpenPortsRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _fn_props(t: dict) -> dict:
    return t["Resources"][FUNCTION_ID]["Properties"]


def _drop_prefix(t: dict) -> None:
    names = _fn_props(t)["Events"]["ConfigCompliance"]["Properties"]["Pattern"]["detail"]["configRuleName"]
    names[:] = [n for n in names if "securityhub" not in str(n)]


# (description, mutation, check title expected to fail)
MUTATIONS: list[tuple[str, Callable[[dict], None], str]] = [
    ("Action '*' statement",
     lambda t: _role_statements_list(t).append({"Effect": "Allow", "Action": "*", "Resource": "*"}),
     "no IAM statement anywhere has Action '*' or 'service:*' (or NotAction)"),
    ("Action 'ec2:*' statement",
     lambda t: _role_statements_list(t).append({"Effect": "Allow", "Action": ["ec2:*"], "Resource": {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*"}}),
     "no IAM statement anywhere has Action '*' or 'service:*' (or NotAction)"),
    ("sns:Publish on Resource '*'",
     lambda t: _role_statements_list(t).append({"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}),
     "Resource '*' only on read-only Describe* actions (and logs)"),
    ("broad managed policy",
     lambda t: t["Resources"]["CloseOpenPortsRole"]["Properties"].__setitem__(
         "ManagedPolicyArns", ["arn:aws:iam::aws:policy/AmazonEC2FullAccess"]),
     "function role: only expected actions, no broad managed policies"),
    ("REFLEX_EXEMPT_TAG removed",
     lambda t: _fn_props(t)["Environment"]["Variables"].pop("REFLEX_EXEMPT_TAG"),
     "environment: exactly the REFLEX_* variables, each fed by its parameter"),
    ("runtime provided.al2",
     lambda t: _fn_props(t).__setitem__("Runtime", "provided.al2"),
     "function is provided.al2023 / arm64 / bootstrap, 128 MB, 60 s"),
    ("function DLQ removed",
     lambda t: _fn_props(t).pop("DeadLetterQueue"),
     "function has an SQS dead-letter queue and EventInvokeConfig MaximumRetryAttempts 2"),
    ("Security Hub rule prefixes removed",
     _drop_prefix,
     "EventBridge rule: Config / Security Hub NON_COMPLIANT security groups"),
    ("CloudTrail errorCode filter removed",
     lambda t: _fn_props(t)["Events"]["CloudTrailIngress"]["Properties"]["Pattern"]["detail"].pop("errorCode"),
     "EventBridge rule: CloudTrail AuthorizeSecurityGroupIngress / ModifySecurityGroupRules"),
    ("Config rule filters on the wrong resource type",
     lambda t: _fn_props(t)["Events"]["ConfigCompliance"]["Properties"]["Pattern"]["detail"]["newEvaluationResult"]
     ["evaluationResultIdentifier"]["evaluationResultQualifier"].__setitem__("resourceType", ["AWS::EC2::Instance"]),
     "EventBridge rule: Config / Security Hub NON_COMPLIANT security groups"),
    ("ssm:GetParameter guarded by the Secrets Manager condition",
     lambda t: next(s for s in _role_statements_list(t) if "Fn::If" in s
                    and s["Fn::If"][1].get("Action") == "ssm:GetParameter")["Fn::If"].__setitem__(0, "SlackSecretIsSecretsManagerArn"),
     "Slack secret: ssm:GetParameter for a name, secretsmanager:GetSecretValue for an ARN, nothing when empty"),
    ("cfn-lint error (unknown property)",
     lambda t: t["Resources"]["CloseOpenPortsDLQ"]["Properties"].__setitem__("NotAProperty", True),
     "cfn-lint reports no errors"),
]


# ----- alert-to-slack broken copies

def _alert_props(t: dict) -> dict:
    return t["Resources"][ALERT_ID]["Properties"]


def _alert_role_list(t: dict) -> list:
    return t["Resources"]["AlertToSlackRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _alert_stmt(t: dict, sid: str) -> dict:
    for st in _alert_role_list(t):
        body = st["Fn::If"][1] if "Fn::If" in st else st
        if body.get("Sid") == sid:
            return body
    raise KeyError(sid)


def _alert_stmt_unguard(t: dict, sid: str) -> None:
    stmts = _alert_role_list(t)
    for i, st in enumerate(stmts):
        if "Fn::If" in st and st["Fn::If"][1].get("Sid") == sid:
            stmts[i] = st["Fn::If"][1]
            return
    raise KeyError(sid)


def _event(t: dict, name: str) -> dict:
    return _alert_props(t)["Events"][name]["Properties"]


def _ct_branch(t: dict, key: str, value: str | None = None) -> dict:
    for branch in _event(t, "CloudTrailSecurity")["Pattern"]["detail"]["$or"]:
        if key in branch and (value is None or branch[key] == [value]):
            return branch
    raise KeyError((key, value))


def _dlq_source_arns(t: dict) -> list:
    st = t["Resources"]["EventDeliveryDLQPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    return st["Condition"]["ArnEquals"]["aws:SourceArn"]


def _drop_dlq_statement(t: dict, sid: str) -> None:
    sts = t["Resources"]["EventDeliveryDLQPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sts[:] = [s for s in sts if s.get("Sid") != sid]


def _topic_allow(t: dict) -> dict:
    return t["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]


def _remove_from_group(t: dict, name: str) -> None:
    for g in t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]:
        if name in g["Parameters"]:
            g["Parameters"].remove(name)


T_ALERT_FN = "alert-to-slack is provided.al2023 / arm64 / bootstrap, 128 MB, 120 s, no reserved concurrency"
T_ALERT_BUILD = "alert-to-slack is built by cargo-lambda from the workspace binary alert-to-slack"
T_ALERT_PARAMS = ("alert-to-slack parameters: DeniedBurst, SlackBotTokenSecret, SlackChannel, AlarmTopicArn patterns; "
                  "every parameter in a ParameterGroup")
T_ALERT_ENV = "alert-to-slack environment: exactly its REFLEX_* variables, fed by its parameters and the table"
T_CW = "alert-to-slack rule CloudWatchAlarm: every alarm state change, nothing else"
T_CT = ("alert-to-slack rule CloudTrailSecurity: root usage, access denied, SG/NACL/IAM/CloudTrail changes; "
        "read-only events included")
T_SIGNIN = "alert-to-slack rule ConsoleSignIn: root sign-ins and failed sign-ins"
T_CFG = "alert-to-slack rule ConfigCompliance: every Config rule, NON_COMPLIANT, COMPLIANT and NOT_APPLICABLE"
T_HEALTH = "alert-to-slack rule Health: AWS Health events"
T_GD = "alert-to-slack rule GuardDuty: GuardDuty findings of every severity"
T_MATRIX = "alert-to-slack: exactly the six EventBridge rules; no event reaches two of them"
T_FIXTURES = "event fixtures in events/aws reach exactly the expected rules"
T_RULE_DLQ = "every rule target has a dead-letter queue that lets that rule send to it"
T_FN_DLQ = "function has an SQS dead-letter queue and EventInvokeConfig MaximumRetryAttempts 2"
T_ROLE = "function role: only expected actions, no broad managed policies"
T_DDB_ROLE = "alert-to-slack role: DynamoDB item actions on its table only, nothing on '*'"
T_TABLE = ("DynamoDB table: key pk (S) only, on-demand, TTL on expires_at, SSE, point-in-time recovery, "
           "explicit deletion policy")
T_SNS = "sns:Publish only on the SnsTopicArn parameter, only when it is set"
T_SECRET = "Slack secret: ssm:GetParameter for a name, secretsmanager:GetSecretValue for an ARN, nothing when empty"
T_TOPIC = "alarm topic: created only when AlarmTopicArn is empty; only this account's CloudWatch alarms may publish to it"
T_SUB = ("SNS subscription: alert-to-slack on the alarm topic (AlarmTopicArn or the created one), invoke permission "
         "for that topic, redrive to a DLQ that allows it")
T_RULES = "Rules: SnsTopicArn may not be the alarm topic (the function would receive its own messages)"
T_OUT = "outputs: function ARN and DLQ URL of each function, table names"

MUTATIONS += [
    # role
    ("alert-to-slack role with dynamodb:* on *",
     lambda t: _alert_role_list(t).append({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}), T_DDB_ROLE),
    ("DynamoDB item actions on every table",
     lambda t: _alert_stmt(t, "DedupAndThreadMap").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}), T_DDB_ROLE),
    ("dynamodb:Scan added", lambda t: _alert_stmt(t, "DedupAndThreadMap")["Action"].append("dynamodb:Scan"), T_DDB_ROLE),
    ("dynamodb:DeleteItem dropped", lambda t: _alert_stmt(t, "DedupAndThreadMap")["Action"].remove("dynamodb:DeleteItem"), T_DDB_ROLE),
    ("alert-to-slack uses close-open-ports' role",
     lambda t: _alert_props(t).__setitem__("Role", {"Fn::GetAtt": ["CloseOpenPortsRole", "Arn"]}), T_ROLE),
    ("alert-to-slack may revoke security-group rules",
     lambda t: _alert_role_list(t).append({"Effect": "Allow", "Action": "ec2:RevokeSecurityGroupIngress", "Resource": {
         "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*"}}), T_ROLE),
    ("alert-to-slack sns:Publish not guarded by HasSnsTopic", lambda t: _alert_stmt_unguard(t, "PublishReports"), T_SNS),
    ("bot token readable as any parameter",
     lambda t: _alert_stmt(t, "ReadSlackBotTokenParameter").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}), T_SECRET),
    ("bot token secret granted even when the parameter is empty",
     lambda t: _alert_stmt_unguard(t, "ReadSlackBotTokenSecret"), T_SECRET),
    ("bot token parameter guarded by the webhook condition",
     lambda t: next(s for s in _alert_role_list(t) if "Fn::If" in s and s["Fn::If"][1].get("Sid") == "ReadSlackBotTokenParameter")
     ["Fn::If"].__setitem__(0, "SlackSecretIsSsmParameter"), T_SECRET),
    # table
    ("table without TTL", lambda t: t["Resources"][ALERT_TABLE]["Properties"].pop("TimeToLiveSpecification"), T_TABLE),
    ("TTL on the wrong attribute",
     lambda t: t["Resources"][ALERT_TABLE]["Properties"]["TimeToLiveSpecification"].__setitem__("AttributeName", "ttl"), T_TABLE),
    ("TTL disabled",
     lambda t: t["Resources"][ALERT_TABLE]["Properties"]["TimeToLiveSpecification"].__setitem__("Enabled", False), T_TABLE),
    ("table keyed on id",
     lambda t: t["Resources"][ALERT_TABLE]["Properties"].update(
         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}]), T_TABLE),
    ("table key numeric",
     lambda t: t["Resources"][ALERT_TABLE]["Properties"]["AttributeDefinitions"][0].__setitem__("AttributeType", "N"), T_TABLE),
    ("point-in-time recovery off",
     lambda t: t["Resources"][ALERT_TABLE]["Properties"]["PointInTimeRecoverySpecification"].__setitem__("PointInTimeRecoveryEnabled", False), T_TABLE),
    ("table without SSE", lambda t: t["Resources"][ALERT_TABLE]["Properties"].pop("SSESpecification"), T_TABLE),
    ("table deletion policy left implicit", lambda t: t["Resources"][ALERT_TABLE].pop("DeletionPolicy"), T_TABLE),
    # function
    ("REFLEX_DYNAMODB_TABLE removed", lambda t: _alert_props(t)["Environment"]["Variables"].pop("REFLEX_DYNAMODB_TABLE"), T_ALERT_ENV),
    ("REFLEX_SLACK_ROUTES hard-coded",
     lambda t: _alert_props(t)["Environment"]["Variables"].__setitem__("REFLEX_SLACK_ROUTES", "kind=guardduty => #security"), T_ALERT_ENV),
    ("REFLEX_SLACK_API_URL set from the template",
     lambda t: _alert_props(t)["Environment"]["Variables"].__setitem__("REFLEX_SLACK_API_URL", "https://slack.com/api"), T_ALERT_ENV),
    ("alert-to-slack Timeout 60", lambda t: _alert_props(t).__setitem__("Timeout", 60), T_ALERT_FN),
    ("alert-to-slack reserved concurrency 1", lambda t: _alert_props(t).__setitem__("ReservedConcurrentExecutions", 1), T_ALERT_FN),
    ("alert-to-slack built from the close-open-ports binary",
     lambda t: t["Resources"][ALERT_ID]["Metadata"]["BuildProperties"].__setitem__("Binary", BINARY), T_ALERT_BUILD),
    ("alert-to-slack DLQ removed", lambda t: _alert_props(t).pop("DeadLetterQueue"), T_FN_DLQ),
    ("alert-to-slack async retries off", lambda t: _alert_props(t)["EventInvokeConfig"].__setitem__("MaximumRetryAttempts", 0), T_FN_DLQ),
    # parameters
    ("DeniedBurst AllowedPattern accepts anything", lambda t: t["Parameters"]["DeniedBurst"].__setitem__("AllowedPattern", ".*"), T_ALERT_PARAMS),
    ("DeniedBurst default 10/60", lambda t: t["Parameters"]["DeniedBurst"].__setitem__("Default", "10/60"),
     "parameters exist with the expected defaults"),
    ("SlackRoutes in no ParameterGroup", lambda t: _remove_from_group(t, "SlackRoutes"), T_ALERT_PARAMS),
    ("SlackBotTokenSecret accepts a bare token",
     lambda t: t["Parameters"]["SlackBotTokenSecret"].__setitem__("AllowedPattern", "^.*$"), T_ALERT_PARAMS),
    # rules
    ("CloudWatchAlarm rule on configuration changes",
     lambda t: _event(t, "CloudWatchAlarm")["Pattern"].__setitem__("detail-type", ["CloudWatch Alarm Configuration Change"]), T_CW),
    ("CloudTrailSecurity State ENABLED (denied reads and root reads missed)",
     lambda t: _event(t, "CloudTrailSecurity").__setitem__("State", "ENABLED"), T_CT),
    ("CIS list lost DetachGroupPolicy",
     lambda t: _ct_branch(t, "eventSource", "iam.amazonaws.com")["eventName"].remove("DetachGroupPolicy"), T_CT),
    ("NACL changes dropped",
     lambda t: _ct_branch(t, "eventSource", "ec2.amazonaws.com").__setitem__(
         "eventName", [n for n in SECURITY_CHANGES["ec2.amazonaws.com"] if "NetworkAcl" not in n]), T_CT),
    ("Client.UnauthorizedOperation not a denial",
     lambda t: _ct_branch(t, "errorCode")["errorCode"].remove("Client.UnauthorizedOperation"), T_CT),
    ("change branches match failed calls", lambda t: _ct_branch(t, "eventSource", "ec2.amazonaws.com").pop("errorCode"), T_CT),
    ("root branch matches calls services make for root", lambda t: _ct_branch(t, "userIdentity")["userIdentity"].pop("invokedBy"), T_CT),
    ("IAM branch without eventSource (Organizations CreatePolicy matches)",
     lambda t: _ct_branch(t, "eventSource", "iam.amazonaws.com").pop("eventSource"), T_CT),
    ("CloudTrailSecurity accepts forged (custom-source) events", lambda t: _event(t, "CloudTrailSecurity")["Pattern"].pop("source"), T_CT),
    ("ConsoleSignIn matches every sign-in", lambda t: _event(t, "ConsoleSignIn")["Pattern"]["detail"].pop("$or"), T_SIGNIN),
    ("ConfigCompliance only NON_COMPLIANT",
     lambda t: _event(t, "ConfigCompliance")["Pattern"]["detail"]["newEvaluationResult"].__setitem__("complianceType", ["NON_COMPLIANT"]), T_CFG),
    ("ConfigCompliance drops NOT_APPLICABLE (deleted resources never resolve)",
     lambda t: _event(t, "ConfigCompliance")["Pattern"]["detail"]["newEvaluationResult"].__setitem__("complianceType", ["NON_COMPLIANT", "COMPLIANT"]), T_CFG),
    ("Health rule on aws.ec2", lambda t: _event(t, "Health")["Pattern"].__setitem__("source", ["aws.ec2"]), T_HEALTH),
    ("GuardDuty detail-type typo", lambda t: _event(t, "GuardDuty")["Pattern"].__setitem__("detail-type", ["GuardDuty Findings"]), T_GD),
    ("GuardDuty only high severity",
     lambda t: _event(t, "GuardDuty")["Pattern"].__setitem__("detail", {"severity": [8, 8.0, 8.5, 8.9]}), T_GD),
    ("Health rule duplicates the GuardDuty rule",
     lambda t: _event(t, "Health").__setitem__("Pattern", copy.deepcopy(_event(t, "GuardDuty")["Pattern"])), T_MATRIX),
    ("a seventh rule on alert-to-slack",
     lambda t: _alert_props(t)["Events"].__setitem__("Extra", copy.deepcopy(_alert_props(t)["Events"]["Health"])), T_MATRIX),
    ("root API calls no longer reach alert-to-slack (fixture root-api-call.json)",
     lambda t: _event(t, "CloudTrailSecurity")["Pattern"]["detail"].__setitem__(
         "$or", [b for b in _event(t, "CloudTrailSecurity")["Pattern"]["detail"]["$or"] if "userIdentity" not in b]), T_FIXTURES),
    ("GuardDuty rule missing from the DLQ policy",
     lambda t: _dlq_source_arns(t).remove({"Fn::GetAtt": [ALERT_RULES["GuardDuty"], "Arn"]}), T_RULE_DLQ),
    ("ConsoleSignIn rule without a DeadLetterConfig", lambda t: _event(t, "ConsoleSignIn").pop("DeadLetterConfig"), T_RULE_DLQ),
    # SNS
    ("alarm subscription on SnsTopicArn", lambda t: _event(t, "AlarmTopic").__setitem__("Topic", {"Ref": "SnsTopicArn"}), T_SUB),
    ("alarm subscription always on the created topic", lambda t: _event(t, "AlarmTopic").__setitem__("Topic", {"Ref": ALARM_TOPIC}), T_SUB),
    ("alarm subscription without redrive policy", lambda t: _event(t, "AlarmTopic").pop("RedrivePolicy"), T_SUB),
    ("DLQ policy does not admit the alarm topic", lambda t: _drop_dlq_statement(t, "AllowAlarmTopicToDeadLetter"), T_SUB),
    ("alarm topic created even when AlarmTopicArn is given",
     lambda t: [t["Resources"][r].pop("Condition") for r in (ALARM_TOPIC, "AlarmTopicPolicy")], T_TOPIC),
    ("alarm topic open to other accounts' alarms", lambda t: _topic_allow(t)["Condition"].pop("StringEquals"), T_TOPIC),
    ("alarm topic policy allows any principal", lambda t: _topic_allow(t).__setitem__("Principal", "*"), T_TOPIC),
    ("loop guard (Rules) removed", lambda t: t.pop("Rules"), T_RULES),
    ("table name output removed", lambda t: t["Outputs"].pop("AlertToSlackTableName"), T_OUT),
    ("alarm topic ARN output removed", lambda t: t["Outputs"].pop("AlarmTopicArn"), T_SUB),
]



# ----- drain-before-maintenance broken copies

def _drain_props(t: dict) -> dict:
    return t["Resources"][DRAIN_ID]["Properties"]


def _drain_role_list(t: dict) -> list:
    return t["Resources"]["DrainBeforeMaintenanceRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _drain_stmt(t: dict, sid: str) -> dict:
    for st in _drain_role_list(t):
        body = st["Fn::If"][1] if "Fn::If" in st else st
        if body.get("Sid") == sid:
            return body
    raise KeyError(sid)


def _drain_unguard(t: dict, sid: str) -> None:
    stmts = _drain_role_list(t)
    for i, st in enumerate(stmts):
        if "Fn::If" in st and st["Fn::If"][1].get("Sid") == sid:
            stmts[i] = st["Fn::If"][1]
            return
    raise KeyError(sid)


def _drain_event(t: dict, name: str) -> dict:
    return _drain_props(t)["Events"][name]["Properties"]


def _drain_env(t: dict) -> dict:
    return _drain_props(t)["Environment"]["Variables"]


def _drop_drain_event(t: dict, name: str) -> None:
    _drain_props(t)["Events"].pop(name)
    _dlq_source_arns(t).remove({"Fn::GetAtt": [DRAIN_RULES[name], "Arn"]})


T_DRAIN_FN = "drain-before-maintenance is provided.al2023 / arm64 / bootstrap, 128 MB, 900 s, no reserved concurrency"
T_DRAIN_BUILD = "drain-before-maintenance is built by cargo-lambda from the workspace binary drain-before-maintenance"
T_DRAIN_ENV = ("drain-before-maintenance environment: exactly its REFLEX_* variables; REFLEX_KUBE_API_URL only when KubeApiUrl is set, "
               "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL only when DrainMaxConcurrentGlobal > 0")
T_DRAIN_PARAMS = ("drain-before-maintenance parameters: DrainPolicy, DrainMaxConcurrent (1-1000), DrainMaxConcurrentGlobal (0-1000, "
                  "in the drain group), DrainResumeSchedule, KubeApiUrl constraints")
T_DRAIN_HEALTH = "drain-before-maintenance rule Health: AWS Health EC2 scheduledChange events only"
T_SPOT = "drain-before-maintenance rule SpotAndRebalance: aws.ec2 spot interruption warnings and rebalance recommendations only"
T_LIFECYCLE = "drain-before-maintenance rule LifecycleTerminate: Auto Scaling terminate lifecycle actions only"
T_RESUME = "drain-before-maintenance rule Resume: schedule from DrainResumeSchedule (default rate(1 minute)) with the reflex resume input"
T_DRAIN_MATRIX = "drain-before-maintenance: exactly the four rules (three patterns, one schedule); no event reaches two of them"
T_DRAIN_ROLE = ("drain-before-maintenance role: Describe* on '*'; ELBv2 / Auto Scaling changes only on this account's target groups / "
                "groups tagged reflex:drain=true; DynamoDB on its table only")
T_WILDCARD = "no IAM statement anywhere has Action '*' or 'service:*' (or NotAction)"
T_STAR = "Resource '*' only on read-only Describe* actions (and logs)"
T_LOGS = "JSON logging into a log group with retention"
T_PARAMS = "parameters exist with the expected defaults"
T_GROUPS = ("alert-to-slack parameters: DeniedBurst, SlackBotTokenSecret, SlackChannel, AlarmTopicArn patterns; "
            "every parameter in a ParameterGroup")

MUTATIONS += [
    # function and build
    ("drain Timeout 300", lambda t: _drain_props(t).__setitem__("Timeout", 300), T_DRAIN_FN),
    ("drain runtime provided.al2", lambda t: _drain_props(t).__setitem__("Runtime", "provided.al2"), T_DRAIN_FN),
    ("drain on x86_64", lambda t: _drain_props(t).__setitem__("Architectures", ["x86_64"]), T_DRAIN_FN),
    ("drain reserved concurrency 1", lambda t: _drain_props(t).__setitem__("ReservedConcurrentExecutions", 1), T_DRAIN_FN),
    ("drain built from the alert-to-slack binary",
     lambda t: t["Resources"][DRAIN_ID]["Metadata"]["BuildProperties"].__setitem__("Binary", ALERT_BINARY), T_DRAIN_BUILD),
    ("drain shares alert-to-slack's log group",
     lambda t: _drain_props(t)["LoggingConfig"].__setitem__("LogGroup", {"Ref": "AlertToSlackLogGroup"}), T_LOGS),
    # environment and parameters
    ("REFLEX_KUBE_API_URL set even when KubeApiUrl is empty",
     lambda t: _drain_env(t).__setitem__("REFLEX_KUBE_API_URL", {"Ref": "KubeApiUrl"}), T_DRAIN_ENV),
    ("REFLEX_DRAIN_TAG not the tag IAM requires", lambda t: _drain_env(t).__setitem__("REFLEX_DRAIN_TAG", "team=web"), T_DRAIN_ENV),
    ("drain state in alert-to-slack's table",
     lambda t: _drain_env(t).__setitem__("REFLEX_DYNAMODB_TABLE", {"Ref": ALERT_TABLE}), T_DRAIN_ENV),
    ("REFLEX_DRAIN_MAX_CONCURRENT hard-coded", lambda t: _drain_env(t).__setitem__("REFLEX_DRAIN_MAX_CONCURRENT", "5"), T_DRAIN_ENV),
    ("REFLEX_DRAIN_POLICY removed", lambda t: _drain_env(t).pop("REFLEX_DRAIN_POLICY"), T_DRAIN_ENV),
    ("DrainMaxConcurrent allows 0", lambda t: t["Parameters"]["DrainMaxConcurrent"].__setitem__("MinValue", 0), T_DRAIN_PARAMS),
    ("KubeApiUrl accepts anything", lambda t: t["Parameters"]["KubeApiUrl"].__setitem__("AllowedPattern", ".*"), T_DRAIN_PARAMS),
    ("DrainResumeSchedule without AllowedPattern", lambda t: t["Parameters"]["DrainResumeSchedule"].pop("AllowedPattern"), T_DRAIN_PARAMS),
    ("DrainMaxConcurrent default 3", lambda t: t["Parameters"]["DrainMaxConcurrent"].__setitem__("Default", 3), T_PARAMS),
    # the account-wide cap
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL set even when DrainMaxConcurrentGlobal is 0",
     lambda t: _drain_env(t).__setitem__("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", {"Ref": "DrainMaxConcurrentGlobal"}), T_DRAIN_ENV),
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL removed", lambda t: _drain_env(t).pop("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"), T_DRAIN_ENV),
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL fed by DrainMaxConcurrent",
     lambda t: _drain_env(t)["REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"]["Fn::If"].__setitem__(1, {"Ref": "DrainMaxConcurrent"}), T_DRAIN_ENV),
    ("HasDrainGlobalCap always true (0 passed as a cap)",
     lambda t: t["Conditions"].__setitem__(DRAIN_GLOBAL_CONDITION, {"Fn::Not": [{"Fn::Equals": [{"Ref": "DrainMaxConcurrentGlobal"}, ""]}]}),
     T_DRAIN_ENV),
    ("DrainMaxConcurrentGlobal allows 5000", lambda t: t["Parameters"]["DrainMaxConcurrentGlobal"].__setitem__("MaxValue", 5000), T_DRAIN_PARAMS),
    ("DrainMaxConcurrentGlobal allows -1", lambda t: t["Parameters"]["DrainMaxConcurrentGlobal"].__setitem__("MinValue", -1), T_DRAIN_PARAMS),
    ("DrainMaxConcurrentGlobal as a String", lambda t: t["Parameters"]["DrainMaxConcurrentGlobal"].__setitem__("Type", "String"), T_DRAIN_PARAMS),
    ("DrainMaxConcurrentGlobal description without its variable",
     lambda t: t["Parameters"]["DrainMaxConcurrentGlobal"].__setitem__("Description", "Drains at once in the account."), T_DRAIN_PARAMS),
    ("DrainMaxConcurrentGlobal in the Operations group",
     lambda t: _move_to_group(t, "DrainMaxConcurrentGlobal", "Operations"), T_DRAIN_PARAMS),
    ("DrainMaxConcurrentGlobal default 1 (a cap nobody asked for)",
     lambda t: t["Parameters"]["DrainMaxConcurrentGlobal"].__setitem__("Default", 1), T_PARAMS),
    ("DrainMaxConcurrentGlobal in no ParameterGroup", lambda t: _remove_from_group(t, "DrainMaxConcurrentGlobal"), T_GROUPS),
    ("KubeApiUrl in no ParameterGroup", lambda t: _remove_from_group(t, "KubeApiUrl"), T_GROUPS),
    # rules
    ("drain Health rule without the scheduledChange filter",
     lambda t: _drain_event(t, "Health")["Pattern"]["detail"].pop("eventTypeCategory"), T_DRAIN_HEALTH),
    ("drain Health rule for every service", lambda t: _drain_event(t, "Health")["Pattern"]["detail"].pop("service"), T_DRAIN_HEALTH),
    ("drain Health rule on issues", lambda t: _drain_event(t, "Health")["Pattern"]["detail"].__setitem__("eventTypeCategory", ["issue"]), T_DRAIN_HEALTH),
    ("spot warnings dropped (rebalance only)",
     lambda t: _drain_event(t, "SpotAndRebalance")["Pattern"].__setitem__("detail-type", ["EC2 Instance Rebalance Recommendation"]), T_SPOT),
    ("spot rule removed", lambda t: _drop_drain_event(t, "SpotAndRebalance"), T_SPOT),
    ("spot rule accepts forged events (no source)", lambda t: _drain_event(t, "SpotAndRebalance")["Pattern"].pop("source"), T_SPOT),
    ("lifecycle rule also takes launch actions",
     lambda t: _drain_event(t, "LifecycleTerminate")["Pattern"]["detail-type"].append("EC2 Instance-launch Lifecycle Action"), T_LIFECYCLE),
    ("lifecycle rule removed", lambda t: _drop_drain_event(t, "LifecycleTerminate"), T_LIFECYCLE),
    ("resume rule removed", lambda t: _drop_drain_event(t, "Resume"), T_RESUME),
    ("resume schedule hard-coded", lambda t: _drain_event(t, "Resume").__setitem__("Schedule", "rate(1 hour)"), T_RESUME),
    ("resume input is not the resume payload",
     lambda t: _drain_event(t, "Resume").__setitem__("Input", '{"source":"reflex","action":"drain"}'), T_RESUME),
    ("resume default rate(1 hour)", lambda t: t["Parameters"]["DrainResumeSchedule"].__setitem__("Default", "rate(1 hour)"), T_RESUME),
    ("a fifth rule on drain-before-maintenance",
     lambda t: _drain_props(t)["Events"].__setitem__("Extra", copy.deepcopy(_drain_props(t)["Events"]["LifecycleTerminate"])), T_DRAIN_MATRIX),
    ("drain Health rule missing from the DLQ policy",
     lambda t: _dlq_source_arns(t).remove({"Fn::GetAtt": [DRAIN_RULES["Health"], "Arn"]}), T_RULE_DLQ),
    ("drain Resume rule without a DeadLetterConfig", lambda t: _drain_event(t, "Resume").pop("DeadLetterConfig"), T_RULE_DLQ),
    ("spot fixture no longer reaches the drain (detail-type typo)",
     lambda t: _drain_event(t, "SpotAndRebalance")["Pattern"].__setitem__(
         "detail-type", ["EC2 Spot Instance Interruption Warnings", "EC2 Instance Rebalance Recommendation"]), T_FIXTURES),
    # DLQ, table, outputs
    ("drain DLQ removed", lambda t: _drain_props(t).pop("DeadLetterQueue"), T_FN_DLQ),
    ("drain DLQ is alert-to-slack's",
     lambda t: _drain_props(t)["DeadLetterQueue"].__setitem__("TargetArn", {"Fn::GetAtt": ["AlertToSlackDLQ", "Arn"]}), T_FN_DLQ),
    ("drain table without TTL", lambda t: t["Resources"][DRAIN_TABLE]["Properties"].pop("TimeToLiveSpecification"), T_TABLE),
    ("drain table point-in-time recovery off",
     lambda t: t["Resources"][DRAIN_TABLE]["Properties"]["PointInTimeRecoverySpecification"].__setitem__("PointInTimeRecoveryEnabled", False), T_TABLE),
    ("drain table provisioned", lambda t: t["Resources"][DRAIN_TABLE]["Properties"].__setitem__("BillingMode", "PROVISIONED"), T_TABLE),
    ("drain table without SSE", lambda t: t["Resources"][DRAIN_TABLE]["Properties"].pop("SSESpecification"), T_TABLE),
    ("drain table name output removed", lambda t: t["Outputs"].pop("DrainBeforeMaintenanceTableName"), T_OUT),
    ("drain DLQ URL output removed", lambda t: t["Outputs"].pop("DrainBeforeMaintenanceDLQUrl"), T_OUT),
    # role
    ("ELBv2 statement without the tag condition", lambda t: _drain_stmt(t, "DrainTaggedTargetGroups").pop("Condition"), T_DRAIN_ROLE),
    ("Auto Scaling statement without the tag condition", lambda t: _drain_stmt(t, "DrainTaggedAutoScalingGroups").pop("Condition"), T_DRAIN_ROLE),
    ("tag condition on the exempt tag",
     lambda t: _drain_stmt(t, "DrainTaggedTargetGroups").__setitem__("Condition", {"StringEquals": {"aws:ResourceTag/reflex:exempt": "true"}}), T_DRAIN_ROLE),
    ("tag condition StringLike '*'",
     lambda t: _drain_stmt(t, "DrainTaggedAutoScalingGroups").__setitem__("Condition", {"StringLike": {"aws:ResourceTag/reflex:drain": "*"}}), T_DRAIN_ROLE),
    ("elasticloadbalancing:* added",
     lambda t: _drain_stmt(t, "DrainTaggedTargetGroups")["Action"].append("elasticloadbalancing:*"), T_WILDCARD),
    ("DeregisterTargets on Resource '*'", lambda t: _drain_stmt(t, "DrainTaggedTargetGroups").__setitem__("Resource", "*"), T_DRAIN_ROLE),
    ("EnterStandby on every partition's groups",
     lambda t: _drain_stmt(t, "DrainTaggedAutoScalingGroups").__setitem__("Resource", "arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/*"), T_DRAIN_ROLE),
    ("autoscaling:SetDesiredCapacity added", lambda t: _drain_stmt(t, "DrainTaggedAutoScalingGroups")["Action"].append("autoscaling:SetDesiredCapacity"), T_DRAIN_ROLE),
    ("ExitStandby dropped (no recovery)", lambda t: _drain_stmt(t, "DrainTaggedAutoScalingGroups")["Action"].remove("autoscaling:ExitStandby"), T_DRAIN_ROLE),
    ("RegisterTargets dropped (no recovery)", lambda t: _drain_stmt(t, "DrainTaggedTargetGroups")["Action"].remove("elasticloadbalancing:RegisterTargets"), T_DRAIN_ROLE),
    ("ec2:TerminateInstances with the Describe calls", lambda t: _drain_stmt(t, "DescribeFleet")["Action"].append("ec2:TerminateInstances"), T_STAR),
    ("dynamodb:Query added", lambda t: _drain_stmt(t, "DrainState")["Action"].append("dynamodb:Query"), T_DRAIN_ROLE),
    ("dynamodb:Scan dropped (pending drains never listed)", lambda t: _drain_stmt(t, "DrainState")["Action"].remove("dynamodb:Scan"), T_DRAIN_ROLE),
    ("drain DynamoDB on alert-to-slack's table",
     lambda t: _drain_stmt(t, "DrainState").__setitem__("Resource", {"Fn::GetAtt": [ALERT_TABLE, "Arn"]}), T_DRAIN_ROLE),
    ("close-open-ports may deregister targets",
     lambda t: _role_statements_list(t).append({"Effect": "Allow", "Action": "elasticloadbalancing:DeregisterTargets", "Resource": {
         "Fn::Sub": "arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}:targetgroup/*/*"}}), T_DRAIN_ROLE),
    ("drain uses close-open-ports' role",
     lambda t: _drain_props(t).__setitem__("Role", {"Fn::GetAtt": ["CloseOpenPortsRole", "Arn"]}), T_ROLE),
    ("drain sns:Publish not guarded by HasSnsTopic", lambda t: _drain_unguard(t, "PublishReports"), T_SNS),
    ("drain may read any SSM parameter",
     lambda t: _drain_stmt(t, "ReadSlackWebhookParameter").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}), T_SECRET),
]


# ----- block-ssh-bruteforce and private-networking broken copies

ROLE_OF = {FUNCTION_ID: "CloseOpenPortsRole", ALERT_ID: "AlertToSlackRole", DRAIN_ID: "DrainBeforeMaintenanceRole",
           SSH_ID: "BlockSshBruteforceRole"}
SSH_SWEEP_DLQ_ARN = {"Fn::If": [SSH_CONDITION, {"Fn::GetAtt": [SSH_RULES["Sweep"], "Arn"]}, {"Ref": "AWS::NoValue"}]}


def _ssh_props(t: dict) -> dict:
    return t["Resources"][SSH_ID]["Properties"]


def _ssh_env(t: dict) -> dict:
    return _ssh_props(t)["Environment"]["Variables"]


def _ssh_event(t: dict, name: str) -> dict:
    return _ssh_props(t)["Events"][name]["Properties"]


def _role_list(t: dict, fid: str) -> list:
    return t["Resources"][ROLE_OF[fid]]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _stmt(t: dict, fid: str, sid: str) -> dict:
    for st in _role_list(t, fid):
        body = st["Fn::If"][1] if "Fn::If" in st else st
        if body.get("Sid") == sid:
            return body
    raise KeyError(sid)


def _guard(t: dict, fid: str, sid: str) -> list:
    """The [condition, statement, else] list of a guarded statement."""
    for st in _role_list(t, fid):
        if "Fn::If" in st and st["Fn::If"][1].get("Sid") == sid:
            return st["Fn::If"]
    raise KeyError(sid)


def _unguard(t: dict, fid: str, sid: str) -> None:
    stmts = _role_list(t, fid)
    for i, st in enumerate(stmts):
        if "Fn::If" in st and st["Fn::If"][1].get("Sid") == sid:
            stmts[i] = st["Fn::If"][1]
            return
    raise KeyError(sid)


def _drop_stmt(t: dict, fid: str, sid: str) -> None:
    stmts = _role_list(t, fid)
    stmts[:] = [st for st in stmts if (st["Fn::If"][1] if "Fn::If" in st else st).get("Sid") != sid]


def _drop_ssh_sweep(t: dict) -> None:
    _ssh_props(t)["Events"].pop("Sweep")
    _dlq_source_arns(t).remove(SSH_SWEEP_DLQ_ARN)


def _ssh_table_of_its_own(t: dict) -> None:
    t["Resources"]["BlockSshBruteforceTable"] = copy.deepcopy(t["Resources"][ALERT_TABLE])
    t["Resources"]["BlockSshBruteforceTable"]["Condition"] = SSH_CONDITION
    _ssh_env(t)["REFLEX_DYNAMODB_TABLE"] = {"Ref": "BlockSshBruteforceTable"}
    _stmt(t, SSH_ID, "BlockRecords")["Resource"] = {"Fn::GetAtt": ["BlockSshBruteforceTable", "Arn"]}


def _vpc_config(t: dict) -> dict:
    return t["Globals"]["Function"]


T_SSH_BUILD = "block-ssh-bruteforce is built by cargo-lambda from the workspace binary block-ssh-bruteforce"
T_SSH_FN = "block-ssh-bruteforce is provided.al2023 / arm64 / bootstrap, 128 MB, 60 s"
T_SSH_ENV = "block-ssh-bruteforce environment: exactly its REFLEX_* variables; state in alert-to-slack's table (no table of its own)"
T_SSH_PARAMS = ("block-ssh-bruteforce parameters: SshLogGroupName, NaclRuleRange, SshSweepSchedule patterns; SshMaxFailures 1-1000, "
                "SshWindowSecs 1-86400, SshBlockSecs 1-2592000; SshBlockPrivate true/false")
T_SSH_LOGS = ("block-ssh-bruteforce trigger: a CloudWatch Logs subscription on SshLogGroupName whose filter pattern passes every sshd line "
              "the function counts (fixtures included) and not the log group's other lines; invoke permission for that log group")
T_SSH_SWEEP = ("block-ssh-bruteforce rule Sweep: schedule from SshSweepSchedule (default rate(5 minutes)) delivering the standard "
               "Scheduled Event (no Input)")
T_SSH_ROLE = ("block-ssh-bruteforce role: Describe calls on '*'; NACL entry create/delete only on this account's network ACLs; "
              "DynamoDB on alert-to-slack's table only; no other function may write NACL entries")
T_SSH_COND = ("block-ssh-bruteforce exists only when SshLogGroupName is set: all its resources (function, role, log group, DLQ, "
              "subscription, rule, permissions) and outputs carry HasSshLogGroup, nothing else does, other resources refer to them only under it")
T_VPC_FN = ("private networking: with the defaults no function has a VpcConfig and no VPC endpoint exists; with VpcSubnetIds every function "
            "has VpcConfig (those subnets, VpcSecurityGroupIds) and the endpoints exist unless CreateVpcEndpoints is false")
T_VPC_EP = ("private networking: VPC endpoints for every AWS API the functions call (interface, private DNS, VpcSubnetIds, VpcSecurityGroupIds: "
            "ec2, elasticloadbalancing, autoscaling, sns, logs, secretsmanager, ssm; gateway on VpcRouteTableIds: dynamodb), no other")
T_VPC_ROLE = ("private networking: each role gets Lambda's network-interface actions only with InVpc (Describe on '*'; Create / Delete / "
              "Assign / Unassign on this account's resources, never on '*'; the CDK app's Sids), exactly those, no managed policy")
T_SSH_WAF = ("block-ssh-bruteforce WAFv2 alternative: SshWafIpSetArn (empty or an IP set ARN, in the SSH parameter group, honest about "
             "not stopping SSH) feeds REFLEX_SSH_WAF_IPSET_ARN; wafv2:GetIPSet and UpdateIPSet on that IP set only, only when it is set; "
             "the NACL writes stay for the sweep; no other role has WAF actions")
T_OWN_ROLES = ("alert-to-slack REFLEX_OWN_ROLE_ARNS: only with SlackWebhookSecret (the remediating functions post to Slack only through "
               "the webhook), the GetAtt ARNs of exactly the roles that change security groups or network ACLs "
               "(close-open-ports; block-ssh-bruteforce's only when it is deployed); none of them depends on alert-to-slack")
T_VPC_RULES = "Rules: VpcSecurityGroupIds with VpcSubnetIds; VpcId and VpcRouteTableIds when the VPC endpoints are created"
NACL_ARN_SUB = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-acl/*"}

MUTATIONS += [
    # function and build
    ("ssh Timeout 900", lambda t: _ssh_props(t).__setitem__("Timeout", 900), T_SSH_FN),
    ("ssh on x86_64", lambda t: _ssh_props(t).__setitem__("Architectures", ["x86_64"]), T_SSH_FN),
    ("ssh MemorySize 256", lambda t: _ssh_props(t).__setitem__("MemorySize", 256), T_SSH_FN),
    ("ssh runtime provided.al2", lambda t: _ssh_props(t).__setitem__("Runtime", "provided.al2"), T_SSH_FN),
    ("ssh built from the drain binary",
     lambda t: t["Resources"][SSH_ID]["Metadata"]["BuildProperties"].__setitem__("Binary", DRAIN_BINARY), T_SSH_BUILD),
    ("ssh shares the drain's log group",
     lambda t: _ssh_props(t)["LoggingConfig"].__setitem__("LogGroup", {"Ref": "DrainBeforeMaintenanceLogGroup"}), T_LOGS),
    # environment and parameters
    ("ssh state in the drain's table", lambda t: _ssh_env(t).__setitem__("REFLEX_DYNAMODB_TABLE", {"Ref": DRAIN_TABLE}), T_SSH_ENV),
    ("ssh state in a table of its own", _ssh_table_of_its_own, T_SSH_ENV),
    ("REFLEX_SSH_BLOCK_SECS removed", lambda t: _ssh_env(t).pop("REFLEX_SSH_BLOCK_SECS"), T_SSH_ENV),
    ("REFLEX_NACL_RULE_RANGE hard-coded", lambda t: _ssh_env(t).__setitem__("REFLEX_NACL_RULE_RANGE", "100-199"), T_SSH_ENV),
    ("REFLEX_SSH_WINDOW_SECS fed by SshBlockSecs", lambda t: _ssh_env(t).__setitem__("REFLEX_SSH_WINDOW_SECS", {"Ref": "SshBlockSecs"}), T_SSH_ENV),
    ("REFLEX_SSH_INSTANCE_ID set from the template", lambda t: _ssh_env(t).__setitem__("REFLEX_SSH_INSTANCE_ID", "i-0123456789abcdef0"), T_SSH_ENV),
    ("ssh without the shared AllowedCidrs", lambda t: _ssh_env(t).pop("REFLEX_ALLOWED_CIDRS"), T_SSH_ENV),
    ("NaclRuleRange accepts anything", lambda t: t["Parameters"]["NaclRuleRange"].__setitem__("AllowedPattern", ".*"), T_SSH_PARAMS),
    ("NaclRuleRange accepts rule 0", lambda t: t["Parameters"]["NaclRuleRange"].__setitem__("AllowedPattern", "^[0-9]{1,5}-[0-9]{1,5}$"), T_SSH_PARAMS),
    ("SshMaxFailures allows 0", lambda t: t["Parameters"]["SshMaxFailures"].__setitem__("MinValue", 0), T_SSH_PARAMS),
    ("SshBlockSecs up to a year", lambda t: t["Parameters"]["SshBlockSecs"].__setitem__("MaxValue", 31536000), T_SSH_PARAMS),
    ("SshWindowSecs as a String", lambda t: t["Parameters"]["SshWindowSecs"].__setitem__("Type", "String"), T_SSH_PARAMS),
    ("SshBlockPrivate accepts yes", lambda t: t["Parameters"]["SshBlockPrivate"].__setitem__("AllowedValues", ["true", "false", "yes"]), T_SSH_PARAMS),
    ("SshLogGroupName accepts a wildcard", lambda t: t["Parameters"]["SshLogGroupName"].__setitem__("AllowedPattern", "^.*$"), T_SSH_PARAMS),
    ("SshLogGroupName default /var/log/auth.log", lambda t: t["Parameters"]["SshLogGroupName"].__setitem__("Default", "/var/log/auth.log"), T_PARAMS),
    ("SshMaxFailures default 10 (the old default, twice fail2ban's)", lambda t: t["Parameters"]["SshMaxFailures"].__setitem__("Default", 10), T_PARAMS),
    ("NaclRuleRange in no ParameterGroup", lambda t: _remove_from_group(t, "NaclRuleRange"), T_GROUPS),
    ("VpcRouteTableIds in no ParameterGroup", lambda t: _remove_from_group(t, "VpcRouteTableIds"), T_GROUPS),
    # the subscription
    ("subscription removed", lambda t: _ssh_props(t)["Events"].pop("SshLogs"), T_SSH_LOGS),
    ("subscription on a hard-coded log group", lambda t: _ssh_event(t, "SshLogs").__setitem__("LogGroupName", "/var/log/secure"), T_SSH_LOGS),
    ("filter pattern empty (every line invokes)", lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", ""), T_SSH_LOGS),
    ("filter pattern only Failed password",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?"Failed password"'), T_SSH_LOGS),
    ("filter pattern without [preauth] (Ubuntu disconnects dropped)",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?"Failed " ?"Invalid user" ?"Accepted " ?"maximum authentication attempts"'), T_SSH_LOGS),
    ("filter pattern without Accepted (logins after failures unseen)",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?"Failed " ?"Invalid user" ?"[preauth]"'), T_SSH_LOGS),
    ("filter pattern ANDs its terms (no ?)",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '"Failed " "Invalid user" "[preauth]" "Accepted "'), T_SSH_LOGS),
    ("filter pattern lower-case (terms are case-sensitive)",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?"failed " ?"invalid user" ?"[preauth]" ?"accepted "'), T_SSH_LOGS),
    ("filter pattern passes every sshd line", lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?"sshd"'), T_SSH_LOGS),
    ("filter pattern unquoted [preauth] (not a valid term)",
     lambda t: _ssh_event(t, "SshLogs").__setitem__("FilterPattern", '?Failed ?Invalid ?[preauth] ?Accepted'), T_SSH_LOGS),
    # the sweep
    ("sweep rule removed", _drop_ssh_sweep, T_SSH_SWEEP),
    ("sweep with a custom Input (no Scheduled Event)",
     lambda t: _ssh_event(t, "Sweep").__setitem__("Input", '{"source":"reflex","action":"sweep"}'), T_SSH_SWEEP),
    ("sweep schedule hard-coded", lambda t: _ssh_event(t, "Sweep").__setitem__("Schedule", "rate(5 minutes)"), T_SSH_SWEEP),
    ("sweep on close-open-ports' SweepSchedule", lambda t: _ssh_event(t, "Sweep").__setitem__("Schedule", {"Ref": "SweepSchedule"}), T_SSH_SWEEP),
    ("SshSweepSchedule default rate(1 day)", lambda t: t["Parameters"]["SshSweepSchedule"].__setitem__("Default", "rate(1 day)"), T_SSH_SWEEP),
    ("a second rule on block-ssh-bruteforce",
     lambda t: _ssh_props(t)["Events"].__setitem__("Extra", copy.deepcopy(_drain_props(t)["Events"]["Health"])), T_SSH_SWEEP),
    ("sweep without a DeadLetterConfig", lambda t: _ssh_event(t, "Sweep").pop("DeadLetterConfig"), T_RULE_DLQ),
    ("sweep rule missing from the DLQ policy", lambda t: _dlq_source_arns(t).remove(SSH_SWEEP_DLQ_ARN), T_RULE_DLQ),
    ("sweep rule in the DLQ policy only with InVpc",
     lambda t: _dlq_source_arns(t)[_dlq_source_arns(t).index(SSH_SWEEP_DLQ_ARN)]["Fn::If"].__setitem__(0, VPC_CONDITION), T_RULE_DLQ),
    # role
    ("ec2:* on the ssh role",
     lambda t: _stmt(t, SSH_ID, "NetworkAclEntries").__setitem__("Action", ["ec2:*"]), T_WILDCARD),
    ("CreateNetworkAclEntry on '*'", lambda t: _stmt(t, SSH_ID, "NetworkAclEntries").__setitem__("Resource", "*"), T_SSH_ROLE),
    ("NACL writes on every region and account",
     lambda t: _stmt(t, SSH_ID, "NetworkAclEntries").__setitem__("Resource", "arn:aws:ec2:*:*:network-acl/*"), T_SSH_ROLE),
    ("NACL writes on security groups",
     lambda t: _stmt(t, SSH_ID, "NetworkAclEntries").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*"}), T_SSH_ROLE),
    ("ec2:ReplaceNetworkAclEntry added", lambda t: _stmt(t, SSH_ID, "NetworkAclEntries")["Action"].append("ec2:ReplaceNetworkAclEntry"), T_SSH_ROLE),
    ("DeleteNetworkAclEntry dropped (blocks never expire)",
     lambda t: _stmt(t, SSH_ID, "NetworkAclEntries")["Action"].remove("ec2:DeleteNetworkAclEntry"), T_SSH_ROLE),
    ("DescribeNetworkAcls dropped", lambda t: _stmt(t, SSH_ID, "DescribeInstancesAndAcls")["Action"].remove("ec2:DescribeNetworkAcls"), T_SSH_ROLE),
    ("ec2:TerminateInstances with the Describe calls",
     lambda t: _stmt(t, SSH_ID, "DescribeInstancesAndAcls")["Action"].append("ec2:TerminateInstances"), T_STAR),
    ("ssh DynamoDB on every table",
     lambda t: _stmt(t, SSH_ID, "BlockRecords").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"}), T_SSH_ROLE),
    ("ssh DynamoDB on the drain's table",
     lambda t: _stmt(t, SSH_ID, "BlockRecords").__setitem__("Resource", {"Fn::GetAtt": [DRAIN_TABLE, "Arn"]}), T_SSH_ROLE),
    ("dynamodb:Scan dropped (the sweep lists nothing)", lambda t: _stmt(t, SSH_ID, "BlockRecords")["Action"].remove("dynamodb:Scan"), T_SSH_ROLE),
    ("dynamodb:Query added to the ssh role", lambda t: _stmt(t, SSH_ID, "BlockRecords")["Action"].append("dynamodb:Query"), T_SSH_ROLE),
    ("ssh uses alert-to-slack's role", lambda t: _ssh_props(t).__setitem__("Role", {"Fn::GetAtt": ["AlertToSlackRole", "Arn"]}), T_ROLE),
    ("close-open-ports may write NACL entries",
     lambda t: _role_list(t, FUNCTION_ID).append({"Effect": "Allow", "Action": "ec2:CreateNetworkAclEntry", "Resource": NACL_ARN_SUB}), T_SSH_ROLE),
    ("ssh sns:Publish not guarded by HasSnsTopic", lambda t: _unguard(t, SSH_ID, "PublishReports"), T_SNS),
    ("ssh may read any SSM parameter",
     lambda t: _stmt(t, SSH_ID, "ReadSlackWebhookParameter").__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}), T_SECRET),
    ("ssh cannot read the Slack secret (Secrets Manager)", lambda t: _drop_stmt(t, SSH_ID, "ReadSlackWebhookSecret"), T_SECRET),
    # DLQ and outputs
    ("ssh DLQ removed", lambda t: _ssh_props(t).pop("DeadLetterQueue"), T_FN_DLQ),
    ("ssh DLQ is the drain's", lambda t: _ssh_props(t)["DeadLetterQueue"].__setitem__("TargetArn", {"Fn::GetAtt": ["DrainBeforeMaintenanceDLQ", "Arn"]}), T_FN_DLQ),
    ("ssh async retries off", lambda t: _ssh_props(t)["EventInvokeConfig"].__setitem__("MaximumRetryAttempts", 0), T_FN_DLQ),
    ("ssh DLQ unencrypted", lambda t: t["Resources"]["BlockSshBruteforceDLQ"]["Properties"].pop("SqsManagedSseEnabled"),
     "every SQS queue is encrypted at rest"),
    ("ssh DLQ URL output removed", lambda t: t["Outputs"].pop("BlockSshBruteforceDLQUrl"), T_OUT),
    ("ssh function ARN output removed", lambda t: t["Outputs"].pop("BlockSshBruteforceFunctionArn"), T_OUT),
    # the SshLogGroupName switch
    ("ssh function without the Condition", lambda t: t["Resources"][SSH_ID].pop("Condition"), T_SSH_COND),
    ("ssh log group without the Condition", lambda t: t["Resources"]["BlockSshBruteforceLogGroup"].pop("Condition"), T_SSH_COND),
    ("ssh output without the Condition", lambda t: t["Outputs"]["BlockSshBruteforceFunctionArn"].pop("Condition"), T_SSH_COND),
    ("HasSshLogGroup always true", lambda t: t["Conditions"].__setitem__(SSH_CONDITION, {"Fn::Equals": ["a", "a"]}), T_SSH_COND),
    ("sweep rule in the DLQ policy without Fn::If",
     lambda t: _dlq_source_arns(t).__setitem__(_dlq_source_arns(t).index(SSH_SWEEP_DLQ_ARN), {"Fn::GetAtt": [SSH_RULES["Sweep"], "Arn"]}), T_SSH_COND),
    # private networking: VpcConfig
    ("VpcConfig always set (no Fn::If)",
     lambda t: _vpc_config(t).__setitem__("VpcConfig", {"SubnetIds": {"Ref": "VpcSubnetIds"}, "SecurityGroupIds": {"Ref": "VpcSecurityGroupIds"}}), T_VPC_FN),
    ("VpcConfig removed", lambda t: _vpc_config(t).pop("VpcConfig"), T_VPC_FN),
    ("VpcConfig without the security groups",
     lambda t: _vpc_config(t)["VpcConfig"]["Fn::If"][1].pop("SecurityGroupIds"), T_VPC_FN),
    ("VpcConfig with the route tables as subnets",
     lambda t: _vpc_config(t)["VpcConfig"]["Fn::If"][1].__setitem__("SubnetIds", {"Ref": "VpcRouteTableIds"}), T_VPC_FN),
    ("the drain opts out of the VPC", lambda t: _drain_props(t).__setitem__("VpcConfig", {"Ref": "AWS::NoValue"}), T_VPC_FN),
    ("InVpc always true", lambda t: t["Conditions"].__setitem__(VPC_CONDITION, {"Fn::Equals": ["a", "a"]}), T_VPC_FN),
    ("endpoints created without VpcSubnetIds",
     lambda t: t["Conditions"].__setitem__("CreateEndpoints", {"Fn::Equals": [{"Ref": "CreateVpcEndpoints"}, "true"]}), T_VPC_FN),
    ("CreateVpcEndpoints false ignored", lambda t: t["Conditions"].__setitem__("CreateEndpoints", {"Condition": VPC_CONDITION}), T_VPC_FN),
    ("SNS endpoint always created", lambda t: [r.pop("Condition") for r in [t["Resources"]["VpcEndpointSns"]]], T_VPC_FN),
    # private networking: endpoints
    ("SNS endpoint removed", lambda t: t["Resources"].pop("VpcEndpointSns"), T_VPC_EP),
    ("Auto Scaling endpoint removed", lambda t: t["Resources"].pop("VpcEndpointAutoScaling"), T_VPC_EP),
    ("Secrets Manager endpoint removed", lambda t: t["Resources"].pop("VpcEndpointSecretsManager"), T_VPC_EP),
    ("DynamoDB gateway removed", lambda t: t["Resources"].pop("VpcEndpointDynamoDb"), T_VPC_EP),
    ("an STS endpoint nothing calls",
     lambda t: t["Resources"].__setitem__("VpcEndpointSts", {**copy.deepcopy(t["Resources"]["VpcEndpointSns"]), "Properties": {
         **copy.deepcopy(t["Resources"]["VpcEndpointSns"]["Properties"]), "ServiceName": {"Fn::Sub": "com.amazonaws.${AWS::Region}.sts"}}}), T_VPC_EP),
    ("EC2 endpoint without private DNS", lambda t: t["Resources"]["VpcEndpointEc2"]["Properties"].__setitem__("PrivateDnsEnabled", False), T_VPC_EP),
    ("SSM endpoint in a hard-coded subnet",
     lambda t: t["Resources"]["VpcEndpointSsm"]["Properties"].__setitem__("SubnetIds", ["subnet-0123456789abcdef0"]), T_VPC_EP),
    ("Logs endpoint without the security groups", lambda t: t["Resources"]["VpcEndpointLogs"]["Properties"].pop("SecurityGroupIds"), T_VPC_EP),
    ("ELB endpoint in another region",
     lambda t: t["Resources"]["VpcEndpointElasticLoadBalancing"]["Properties"].__setitem__("ServiceName", "com.amazonaws.eu-west-1.elasticloadbalancing"), T_VPC_EP),
    ("DynamoDB gateway without route tables",
     lambda t: t["Resources"]["VpcEndpointDynamoDb"]["Properties"].__setitem__("RouteTableIds", {"Ref": "AWS::NoValue"}), T_VPC_EP),
    ("a function may call a service without an endpoint",
     lambda t: _role_list(t, ALERT_ID).append({"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["AlertToSlackDLQ", "Arn"]}}),
     T_VPC_EP),
    # private networking: roles
    ("network-interface grants unguarded (always granted)", lambda t: _unguard(t, ALERT_ID, VPC_DESCRIBE_SID), T_VPC_ROLE),
    ("network-interface grants guarded by HasSnsTopic",
     lambda t: _guard(t, DRAIN_ID, VPC_CHANGES_SID).__setitem__(0, "HasSnsTopic"), T_VPC_ROLE),
    ("DeleteNetworkInterface on '*'", lambda t: _stmt(t, FUNCTION_ID, VPC_CHANGES_SID).__setitem__("Resource", "*"), T_VPC_ROLE),
    ("network-interface changes on every account",
     lambda t: _stmt(t, SSH_ID, VPC_CHANGES_SID).__setitem__("Resource", "arn:aws:ec2:*:*:*/*"), T_VPC_ROLE),
    ("ssh role lacks CreateNetworkInterface",
     lambda t: _stmt(t, SSH_ID, VPC_CHANGES_SID)["Action"].remove("ec2:CreateNetworkInterface"), T_VPC_ROLE),
    ("close-open-ports has no network-interface grants",
     lambda t: [_drop_stmt(t, FUNCTION_ID, sid) for sid in (VPC_DESCRIBE_SID, VPC_CHANGES_SID)], T_VPC_ROLE),
    ("ec2:CreateVpcEndpoint among the network-interface actions",
     lambda t: _stmt(t, ALERT_ID, VPC_DESCRIBE_SID)["Action"].append("ec2:CreateVpcEndpoint"), T_VPC_ROLE),
    ("CreateNetworkInterface on '*' without InVpc",
     lambda t: _role_list(t, FUNCTION_ID).append({"Effect": "Allow", "Action": "ec2:CreateNetworkInterface", "Resource": "*"}), T_STAR),
    ("AWSLambdaVPCAccessExecutionRole attached (logs on '*')",
     lambda t: t["Resources"]["DrainBeforeMaintenanceRole"]["Properties"].__setitem__(
         "ManagedPolicyArns", [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}]), T_ROLE),
    # private networking: Rules
    ("VpcSecurityGroupIds no longer required", lambda t: t["Rules"].pop("VpcSecurityGroupsWithSubnets"), T_VPC_RULES),
    ("VpcRouteTableIds no longer required",
     lambda t: t["Rules"]["VpcEndpointsNeedVpcAndRouteTables"]["Assertions"].pop(1), T_VPC_RULES),
    ("VpcId required even without endpoints",
     lambda t: t["Rules"]["VpcEndpointsNeedVpcAndRouteTables"].__setitem__(
         "RuleCondition", {"Fn::Not": [{"Fn::EachMemberEquals": [{"Ref": "VpcSubnetIds"}, ""]}]}), T_VPC_RULES),
]


# ----- CreateNetworkInterface as in the CDK app, the WAFv2 alternative, REFLEX_OWN_ROLE_ARNS


def _move_action(t: dict, fid: str, action: str, src: str, dst: str) -> None:
    _stmt(t, fid, src)["Action"].remove(action)
    _stmt(t, fid, dst)["Action"].append(action)


def _nacl_writes_only_without_waf(t: dict) -> None:
    stmts = _role_list(t, SSH_ID)
    i = next(i for i, st in enumerate(stmts) if st.get("Sid") == "NetworkAclEntries")
    stmts[i] = {"Fn::If": [SSH_WAF_CONDITION, {"Ref": "AWS::NoValue"}, stmts[i]]}


def _move_to_group(t: dict, name: str, label: str) -> None:
    _remove_from_group(t, name)
    group = next(g for g in t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"] if g["Label"]["default"] == label)
    group["Parameters"].append(name)


def _alert_env(t: dict) -> dict:
    return _alert_props(t)["Environment"]["Variables"]


def _own_roles_guard(t: dict) -> list:
    """The outer Fn::If: [HasSlackSecret, <the roles>, AWS::NoValue]."""
    return _alert_env(t)[OWN_ROLES_ENV]["Fn::If"]


def _own_roles_if(t: dict) -> list:
    """The inner Fn::If: [HasSshLogGroup, <both roles>, <close-open-ports' role>]."""
    return _own_roles_guard(t)[1]["Fn::If"]


def _set_own_roles(t: dict, value: Any) -> None:
    """Replaces the roles, keeping the HasSlackSecret guard."""
    _own_roles_guard(t)[1] = value


def _own_roles_join(t: dict) -> list:
    return _own_roles_if(t)[1]["Fn::Join"][1]


def _getatt_arn(rid: str) -> dict:
    return {"Fn::GetAtt": [rid, "Arn"]}


MUTATIONS += [
    # ec2:CreateNetworkInterface on this account's resources, never on "*"
    ("CreateNetworkInterface back on '*' with the Describe calls",
     lambda t: _move_action(t, DRAIN_ID, "ec2:CreateNetworkInterface", VPC_CHANGES_SID, VPC_DESCRIBE_SID), T_VPC_ROLE),
    ("CreateNetworkInterface on '*' in an InVpc statement of its own",
     lambda t: (_stmt(t, ALERT_ID, VPC_CHANGES_SID)["Action"].remove("ec2:CreateNetworkInterface"), _role_list(t, ALERT_ID).append(
         {"Fn::If": [VPC_CONDITION, {"Sid": "VpcCreateNetworkInterface", "Effect": "Allow", "Action": "ec2:CreateNetworkInterface",
                                     "Resource": "*"}, {"Ref": "AWS::NoValue"}]})), T_VPC_ROLE),
    ("DescribeNetworkInterfaces scoped to the account (it works only on '*')",
     lambda t: _move_action(t, SSH_ID, "ec2:DescribeNetworkInterfaces", VPC_DESCRIBE_SID, VPC_CHANGES_SID), T_VPC_ROLE),
    ("the Describe statement keeps the old Sid VpcNetworkInterfaces",
     lambda t: _stmt(t, FUNCTION_ID, VPC_DESCRIBE_SID).__setitem__("Sid", "VpcNetworkInterfaces"), T_VPC_ROLE),
    # WAFv2 IP set: the statement
    ("WAF actions on Resource '*'", lambda t: _stmt(t, SSH_ID, SSH_WAF_SID).__setitem__("Resource", "*"), T_SSH_WAF),
    ("WAF actions on every IP set of the account",
     lambda t: _stmt(t, SSH_ID, SSH_WAF_SID).__setitem__(
         "Resource", {"Fn::Sub": "arn:${AWS::Partition}:wafv2:${AWS::Region}:${AWS::AccountId}:*/ipset/*/*"}), T_SSH_WAF),
    ("wafv2:DeleteIPSet added", lambda t: _stmt(t, SSH_ID, SSH_WAF_SID)["Action"].append("wafv2:DeleteIPSet"), T_SSH_WAF),
    ("wafv2:UpdateIPSet dropped (nothing is ever blocked)", lambda t: _stmt(t, SSH_ID, SSH_WAF_SID)["Action"].remove("wafv2:UpdateIPSet"), T_SSH_WAF),
    ("wafv2:* on the IP set", lambda t: _stmt(t, SSH_ID, SSH_WAF_SID).__setitem__("Action", ["wafv2:*"]), T_WILDCARD),
    ("WAF statement unconditional (granted on an empty ARN)", lambda t: _unguard(t, SSH_ID, SSH_WAF_SID), T_SSH_WAF),
    ("WAF statement guarded by HasSshLogGroup (granted without an IP set)",
     lambda t: _guard(t, SSH_ID, SSH_WAF_SID).__setitem__(0, SSH_CONDITION), T_SSH_WAF),
    ("HasSshWafIpSet ignores the ARN", lambda t: t["Conditions"].__setitem__(SSH_WAF_CONDITION, {"Condition": SSH_CONDITION}), T_SSH_WAF),
    ("HasSshWafIpSet true without the function",
     lambda t: t["Conditions"].__setitem__(SSH_WAF_CONDITION, {"Fn::Not": [{"Fn::Equals": [{"Ref": SSH_WAF_PARAM}, ""]}]}), T_SSH_WAF),
    ("NACL writes only without the WAF IP set (older NACL blocks never swept)", _nacl_writes_only_without_waf, T_SSH_WAF),
    ("close-open-ports may update the IP set",
     lambda t: _role_list(t, FUNCTION_ID).append({"Effect": "Allow", "Action": sorted(SSH_WAF_ACTIONS), "Resource": {"Ref": SSH_WAF_PARAM}}),
     T_SSH_WAF),
    # WAFv2 IP set: environment and parameter
    ("REFLEX_SSH_WAF_IPSET_ARN missing (the IP set is never used)", lambda t: _ssh_env(t).pop("REFLEX_SSH_WAF_IPSET_ARN"), T_SSH_WAF),
    ("REFLEX_SSH_WAF_IPSET_ARN hard-coded", lambda t: _ssh_env(t).__setitem__("REFLEX_SSH_WAF_IPSET_ARN", SSH_WAF_ARNS[0]), T_SSH_ENV),
    ("SshWafIpSetArn accepts a web ACL ARN",
     lambda t: t["Parameters"][SSH_WAF_PARAM].__setitem__("AllowedPattern", "^$|^arn:aws[a-z-]*:wafv2:.+$"), T_SSH_WAF),
    ("SshWafIpSetArn without AllowedPattern", lambda t: t["Parameters"][SSH_WAF_PARAM].pop("AllowedPattern"), T_SSH_WAF),
    ("SshWafIpSetArn Description claims it stops SSH",
     lambda t: t["Parameters"][SSH_WAF_PARAM].__setitem__("Description", "block-ssh-bruteforce: block SSH sources in this WAFv2 IP set."), T_SSH_WAF),
    ("SshWafIpSetArn in the Operations group", lambda t: _move_to_group(t, SSH_WAF_PARAM, "Operations"), T_SSH_WAF),
    ("SshWafIpSetArn in no ParameterGroup", lambda t: _remove_from_group(t, SSH_WAF_PARAM), T_GROUPS),
    ("SshWafIpSetArn default set", lambda t: t["Parameters"][SSH_WAF_PARAM].__setitem__("Default", SSH_WAF_ARNS[0]), T_PARAMS),
    # alert-to-slack's REFLEX_OWN_ROLE_ARNS
    ("REFLEX_OWN_ROLE_ARNS removed (each remediation reported twice)", lambda t: _alert_env(t).pop(OWN_ROLES_ENV), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS names the drain's role instead of block-ssh-bruteforce's",
     lambda t: _own_roles_join(t).__setitem__(1, _getatt_arn("DrainBeforeMaintenanceRole")), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS names alert-to-slack's own role",
     lambda t: _own_roles_if(t).__setitem__(2, _getatt_arn("AlertToSlackRole")), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS without block-ssh-bruteforce's role (NACL blocks reported twice)",
     lambda t: _set_own_roles(t, _getatt_arn("CloseOpenPortsRole")), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS names block-ssh-bruteforce's role even when it is not deployed",
     lambda t: _set_own_roles(t, _own_roles_if(t)[1]), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS HasSshLogGroup branches swapped",
     lambda t: _set_own_roles(t, {"Fn::If": [SSH_CONDITION, _own_roles_if(t)[2], _own_roles_if(t)[1]]}), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS hard-coded",
     lambda t: _set_own_roles(t, "arn:aws:iam::123456789012:role/reflex-CloseOpenPortsRole"), T_OWN_ROLES),
    # ... and only with the webhook, through which alone the remediating functions post to Slack
    ("REFLEX_OWN_ROLE_ARNS without the HasSlackSecret guard (remediations hidden from a bot-token-only Slack)",
     lambda t: _alert_env(t).__setitem__(OWN_ROLES_ENV, _own_roles_guard(t)[1]), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS HasSlackSecret branches swapped",
     lambda t: _alert_env(t).__setitem__(OWN_ROLES_ENV, {"Fn::If": ["HasSlackSecret", _own_roles_guard(t)[2], _own_roles_guard(t)[1]]}),
     T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS guarded by HasBotTokenSecret instead of HasSlackSecret",
     lambda t: _own_roles_guard(t).__setitem__(0, "HasBotTokenSecret"), T_OWN_ROLES),
    ("REFLEX_OWN_ROLE_ARNS guarded by SlackSecretIsSsmParameter (unset with a Secrets Manager webhook)",
     lambda t: _own_roles_guard(t).__setitem__(0, "SlackSecretIsSsmParameter"), T_OWN_ROLES),
    ("close-open-ports' role depends on alert-to-slack (a cycle)",
     lambda t: t["Resources"]["CloseOpenPortsRole"].__setitem__("DependsOn", [ALERT_ID]), T_OWN_ROLES),
]


def self_test(path: Path) -> int:
    source = load_source(path)
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="reflex-check-sam-") as tmp:
        # The pristine copy must pass, or the failures below prove nothing.
        pristine = Path(tmp) / "pristine.json"
        pristine.write_text(json.dumps(source, indent=1))
        p, f, failures = run_checks(pristine, quiet=True)
        results.append(("pristine copy passes", f == 0, f"failed: {failures}" if f else f"{p} checks passed"))

        jobs = []
        for i, (what, mutate, expected) in enumerate(MUTATIONS):
            broken = copy.deepcopy(source)
            try:
                mutate(broken)
            except Exception as e:  # the template no longer has the shape the mutation expects
                jobs.append((what, None, f"mutation failed: {type(e).__name__}: {e}"))
                continue
            if broken == source:
                jobs.append((what, None, "the mutation changed nothing"))
                continue
            bad = Path(tmp) / f"broken-{i}.json"
            bad.write_text(json.dumps(broken, indent=1))
            # Run as a separate process with --template, exactly as a user would.
            jobs.append((what, ([sys.executable, __file__, "--template", str(bad)], expected), None))
        # Each copy runs cfn-lint and the translator (~2 s); run them side by side, report in order.
        with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1))) as pool:
            futures = [pool.submit(rejected, job[0], job[1], what) if job else None for what, job, _ in jobs]
            for (what, job, error), fut in zip(jobs, futures):
                results.append(fut.result() if fut else (f"broken copy is rejected: {what}", False, error))

    return report(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="template to check (default: %(default)s)")
    ap.add_argument("--self-test", action="store_true", help="check that broken copies of the template are rejected")
    args = ap.parse_args()
    path = args.template.resolve()
    if not path.is_file():
        print(f"template not found: {path}", file=sys.stderr)
        return 2
    if args.self_test:
        return self_test(path)
    print(f"checking {path}")
    passed, failed, _ = run_checks(path)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
