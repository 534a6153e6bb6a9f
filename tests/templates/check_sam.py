#!/usr/bin/env python3
"""Checks template.yaml (AWS SAM) for the Reflex close-open-ports function.

    python3 tests/templates/check_sam.py                    # check ./template.yaml
    python3 tests/templates/check_sam.py --template PATH    # check another copy
    python3 tests/templates/check_sam.py --self-test        # prove the checks can fail

1. Runs cfn-lint (in a subprocess, so its monkey-patching of the SAM translator
   does not leak into step 2); any E-level finding fails, warnings are printed.
2. Translates the template with the SAM translator into plain CloudFormation
   and asserts on the result: the function, its events, dead-letter queues,
   environment and a least-privilege IAM policy.

Dependencies: python3 stdlib, cfn-lint, aws-sam-translator. Exit status is 0 only
when every check passes.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import rejected, report  # noqa: E402  (shared by the template checks)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"

FUNCTION_ID = "CloseOpenPortsFunction"
BINARY = "close-open-ports"

# Parameter -> (default, environment variable it feeds).
PARAMETERS = {
    "DryRun": ("false", "REFLEX_DRY_RUN"),
    "ForbiddenPorts": ("22,3389", "REFLEX_FORBIDDEN_PORTS"),
    "AllowedCidrs": ("", "REFLEX_ALLOWED_CIDRS"),
    "ExemptTag": ("reflex:exempt=true", "REFLEX_EXEMPT_TAG"),
    "SlackWebhookSecret": ("", "REFLEX_SLACK_WEBHOOK_SECRET"),
    "SnsTopicArn": ("", "REFLEX_SNS_TOPIC_ARN"),
    "SweepSchedule": ("rate(1 day)", None),
    "ReauthorizeRemainder": ("false", "REFLEX_REAUTHORIZE_REMAINDER"),
}
ENV_VARS = {env for _, env in PARAMETERS.values() if env}

# Every action the function's role may be granted. Anything else is a regression.
ALLOWED_ROLE_ACTIONS = {
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSecurityGroupRules",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupIngress",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "sns:Publish",
    "ssm:GetParameter",
    "secretsmanager:GetSecretValue",
}
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


def role_statements(cfn: dict) -> list[Statement]:
    """Statements of the function's execution role (inline policies and attached AWS::IAM::Policy)."""
    resources = cfn["Resources"]
    role_id = function_role_id(cfn)
    role = resources[role_id]
    docs = {f"{role_id}.Policies[{i}]": p.get("PolicyDocument") for i, p in enumerate(role["Properties"].get("Policies", []))}
    for rid, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = res["Properties"].get("Roles", [])
            if {"Ref": role_id} in roles:
                docs[rid] = res["Properties"].get("PolicyDocument")
    return statements({k: {"PolicyDocument": v} for k, v in docs.items()})


def function_role_id(cfn: dict) -> str:
    role = function(cfn)["Properties"].get("Role")
    require(isinstance(role, dict) and "Fn::GetAtt" in role, f"function Role is not a GetAtt of a role in this stack: {role!r}")
    target = role["Fn::GetAtt"]
    target = target if isinstance(target, list) else target.split(".", 1)
    require(cfn["Resources"].get(target[0], {}).get("Type") == "AWS::IAM::Role", f"{target[0]} is not an AWS::IAM::Role")
    return target[0]


def function(cfn: dict) -> dict:
    fns = {k: v for k, v in cfn["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    require(list(fns) == [FUNCTION_ID], f"expected exactly one Lambda function {FUNCTION_ID}, found {sorted(fns)}")
    return fns[FUNCTION_ID]


def getatt_target(node: Any) -> str | None:
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        t = node["Fn::GetAtt"]
        return (t if isinstance(t, list) else t.split(".", 1))[0]
    return None


# --------------------------------------------------------------------------- EventBridge


def pattern_matches(pattern: dict, event: dict) -> bool:
    """A small EventBridge matcher: exact values, prefix, suffix, wildcard, exists, anything-but."""
    for key, want in pattern.items():
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


def function_rules(cfn: dict) -> dict[str, dict]:
    """AWS::Events::Rule resources with the function as a target."""
    out = {}
    for rid, res in cfn["Resources"].items():
        if res["Type"] != "AWS::Events::Rule":
            continue
        for t in res["Properties"].get("Targets", []):
            if getatt_target(t.get("Arn")) == FUNCTION_ID:
                out[rid] = res
    return out


def rule_with(cfn: dict, pred: Callable[[dict], bool], what: str) -> tuple[str, dict]:
    found = [(rid, r) for rid, r in function_rules(cfn).items() if pred(r["Properties"])]
    require(len(found) == 1, f"expected exactly one {what} rule targeting {FUNCTION_ID}, found {[r for r, _ in found]}")
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


@check("function is provided.al2023 / arm64 / bootstrap, 128 MB, 60 s")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn)["Properties"]
    require(p.get("Runtime") == "provided.al2023", f"Runtime is {p.get('Runtime')!r}")
    require(p.get("Architectures") == ["arm64"], f"Architectures is {p.get('Architectures')!r}")
    require(p.get("Handler") == "bootstrap", f"Handler is {p.get('Handler')!r}")
    require(p.get("MemorySize") == 128, f"MemorySize is {p.get('MemorySize')!r}")
    require(p.get("Timeout") == 60, f"Timeout is {p.get('Timeout')!r}")


@check("function is built by cargo-lambda from the workspace binary close-open-ports")
def _(ctx: Ctx) -> None:
    res = ctx.source["Resources"].get(FUNCTION_ID, {})
    require(res.get("Type") == "AWS::Serverless::Function", f"{FUNCTION_ID} is not an AWS::Serverless::Function")
    meta = res.get("Metadata", {})
    require(meta.get("BuildMethod") == "rust-cargolambda", f"Metadata.BuildMethod is {meta.get('BuildMethod')!r}")
    require(meta.get("BuildProperties", {}).get("Binary") == BINARY,
            f"Metadata.BuildProperties.Binary is {meta.get('BuildProperties', {}).get('Binary')!r}")
    require(res.get("Properties", {}).get("CodeUri") in (".", "./"), "CodeUri is not the workspace root '.'")


@check("JSON logging into a log group with retention")
def _(ctx: Ctx) -> None:
    lc = function(ctx.cfn)["Properties"].get("LoggingConfig", {})
    require(lc.get("LogFormat") == "JSON", f"LoggingConfig.LogFormat is {lc.get('LogFormat')!r}")
    ref = lc.get("LogGroup")
    require(isinstance(ref, dict) and "Ref" in ref, f"LoggingConfig.LogGroup is not a Ref to a log group: {ref!r}")
    lg = ctx.resources.get(ref["Ref"], {})
    require(lg.get("Type") == "AWS::Logs::LogGroup", f"{ref['Ref']} is not an AWS::Logs::LogGroup")
    require(lg["Properties"].get("RetentionInDays") is not None, "log group has no RetentionInDays")


@check("parameters exist with the expected defaults")
def _(ctx: Ctx) -> None:
    params = ctx.source.get("Parameters", {})
    for name, (default, _) in PARAMETERS.items():
        require(name in params, f"parameter {name} missing")
        require(str(params[name].get("Default")) == default,
                f"parameter {name} default is {params[name].get('Default')!r}, expected {default!r}")
    for name in ("DryRun", "ReauthorizeRemainder"):
        require(sorted(params[name].get("AllowedValues", [])) == ["false", "true"], f"{name} must allow only true/false")


@check("environment: exactly the REFLEX_* variables, each fed by its parameter")
def _(ctx: Ctx) -> None:
    env = function(ctx.cfn)["Properties"].get("Environment", {}).get("Variables", {})
    missing, extra = ENV_VARS - set(env), set(env) - ENV_VARS
    require(not missing, f"missing environment variables: {sorted(missing)}")
    require(not extra, f"unexpected environment variables: {sorted(extra)}")
    for param, (_, var) in PARAMETERS.items():
        if var:
            require(env[var] == {"Ref": param}, f"{var} is {env[var]!r}, expected Ref {param}")


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


FIXTURE_DIR = REPO_ROOT / "events" / "aws"
# Which rule each fixture under events/aws must reach (None: no rule may match it).
FIXTURE_ROUTES = {
    "cloudtrail/authorize-all-traffic.json": "aws.ec2",
    "cloudtrail/authorize-failed-duplicate.json": None,  # errorCode: the call changed nothing
    "cloudtrail/authorize-https-world-open.json": "aws.ec2",
    "cloudtrail/authorize-mixed-rules.json": "aws.ec2",
    "cloudtrail/authorize-prefix-list-only.json": "aws.ec2",
    "cloudtrail/authorize-rdp-ipv6.json": "aws.ec2",
    "cloudtrail/authorize-ssh-world-open.json": "aws.ec2",
    "cloudtrail/authorize-via-cloudformation.json": "aws.ec2",
    "cloudtrail/authorize-wide-range.json": "aws.ec2",
    "cloudtrail/modify-rule-to-ssh-world.json": "aws.ec2",
    "config/restricted-common-ports-noncompliant.json": "aws.config",
    "config/restricted-ssh-compliant.json": None,
    "config/restricted-ssh-noncompliant.json": "aws.config",
    "config/restricted-ssh-not-applicable.json": None,
    "config/s3-versioning-noncompliant.json": None,
    "config/securityhub-restricted-ssh-noncompliant.json": "aws.config",
    "config/vpc-sg-open-only-to-authorized-ports-noncompliant.json": "aws.config",
    "eventbridge/ec2-instance-state-change.json": None,
    "scheduled/daily-sweep.json": None,  # delivered by the schedule rule, not by a pattern
}


@check("event fixtures in events/aws reach exactly the expected rule")
def _(ctx: Ctx) -> None:
    if not FIXTURE_DIR.is_dir():
        print(f"      (no fixtures at {FIXTURE_DIR}; skipped)")
        return
    patterns = {}
    for rid, rule in function_rules(ctx.cfn).items():
        pat = rule["Properties"].get("EventPattern")
        if pat:
            patterns[rid] = (as_list(pat.get("source", [None]))[0], pat)
    files = sorted(p.relative_to(FIXTURE_DIR).as_posix() for p in FIXTURE_DIR.rglob("*.json"))
    for rel in files:
        event = json.loads((FIXTURE_DIR / rel).read_text())
        hits = sorted(src for src, pat in patterns.values() if pattern_matches(pat, event))
        if rel not in FIXTURE_ROUTES:
            print(f"      fixture {rel} has no expectation here; it matches {hits or 'no rule'}")
            continue
        want = FIXTURE_ROUTES[rel]
        require(hits == ([want] if want else []), f"{rel} matches {hits or 'no rule'}, expected {want or 'no rule'}")


@check("EventBridge rule: scheduled sweep from the SweepSchedule parameter")
def _(ctx: Ctx) -> None:
    _, rule = rule_with(ctx.cfn, lambda p: "ScheduleExpression" in p, "schedule")
    require(rule["Properties"]["ScheduleExpression"] == {"Ref": "SweepSchedule"},
            f"ScheduleExpression is {rule['Properties']['ScheduleExpression']!r}")
    require(len(function_rules(ctx.cfn)) == 3, f"expected 3 rules targeting the function, found {sorted(function_rules(ctx.cfn))}")


@check("every rule target has a dead-letter queue that lets that rule send to it")
def _(ctx: Ctx) -> None:
    res = ctx.resources
    for rid, rule in function_rules(ctx.cfn).items():
        targets = [t for t in rule["Properties"]["Targets"] if getatt_target(t.get("Arn")) == FUNCTION_ID]
        for t in targets:
            qid = getatt_target(t.get("DeadLetterConfig", {}).get("Arn"))
            require(qid and res.get(qid, {}).get("Type") == "AWS::SQS::Queue", f"{rid}: target has no SQS DeadLetterConfig")
            allowed = False
            for pid, pol in res.items():
                if pol["Type"] != "AWS::SQS::QueuePolicy" or {"Ref": qid} not in pol["Properties"].get("Queues", []):
                    continue
                for st in statements({pid: pol}):
                    principal = st.raw.get("Principal", {})
                    if st.effect == "Allow" and "sqs:SendMessage" in st.actions and principal == {"Service": "events.amazonaws.com"}:
                        arns = []
                        for op in ("ArnEquals", "ArnLike", "StringEquals"):
                            arns += as_list(st.raw.get("Condition", {}).get(op, {}).get("aws:SourceArn", []))
                        if {"Fn::GetAtt": [rid, "Arn"]} in arns:
                            allowed = True
            require(allowed, f"{rid}: no queue policy on {qid} lets this rule (aws:SourceArn) send messages")


@check("function has an SQS dead-letter queue and EventInvokeConfig MaximumRetryAttempts 2")
def _(ctx: Ctx) -> None:
    p = function(ctx.cfn)["Properties"]
    qid = getatt_target(p.get("DeadLetterConfig", {}).get("TargetArn"))
    require(qid and ctx.resources.get(qid, {}).get("Type") == "AWS::SQS::Queue", "function has no SQS DeadLetterConfig")
    eic = [r for r in ctx.resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"
           and r["Properties"].get("FunctionName") == {"Ref": FUNCTION_ID}]
    require(len(eic) == 1, f"expected one EventInvokeConfig for the function, found {len(eic)}")
    require(eic[0]["Properties"].get("MaximumRetryAttempts") == 2,
            f"MaximumRetryAttempts is {eic[0]['Properties'].get('MaximumRetryAttempts')!r}")
    role_ok = [s for s in role_statements(ctx.cfn) if s.effect == "Allow" and "sqs:SendMessage" in s.actions
               and {"Fn::GetAtt": [qid, "Arn"]} in s.resources]
    require(role_ok, f"the function role cannot sqs:SendMessage to {qid}")


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
    role_id = function_role_id(ctx.cfn)
    for arn in ctx.resources[role_id]["Properties"].get("ManagedPolicyArns", []):
        text = json.dumps(arn)
        require(any(text.rstrip('"').endswith(s) for s in ALLOWED_MANAGED_POLICY_SUFFIXES),
                f"{role_id} has managed policy {text}")
    for st in role_statements(ctx.cfn):
        if st.effect == "Allow":
            unexpected = set(st.actions) - ALLOWED_ROLE_ACTIONS
            require(not unexpected, f"{st.label()}: unexpected actions {sorted(unexpected)}")
    trust = ctx.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]
    for item in as_list(trust["Statement"]):
        require(item.get("Principal") == {"Service": "lambda.amazonaws.com"}, f"{role_id} trusts {item.get('Principal')!r}")


@check("Resource '*' only on ec2:Describe* (and logs)")
def _(ctx: Ctx) -> None:
    for st in statements(ctx.resources):
        if st.effect != "Allow" or "*" not in st.resources:
            continue
        bad = [a for a in st.actions if not (a.startswith("ec2:Describe") or a.startswith("logs:"))]
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
    grants = [s for s in statements(ctx.resources) if "sns:Publish" in s.actions and s.effect == "Allow"]
    require(grants, "sns:Publish is never granted")
    for s in grants:
        require(s.resources == [{"Ref": "SnsTopicArn"}], f"{s.label()}: sns:Publish on {s.resources!r}")
        require(s.conds == (("HasSnsTopic", True),), f"{s.label()}: not guarded by Fn::If HasSnsTopic")
    topic = "arn:aws:sns:us-east-1:123456789012:reflex-reports"
    require(not any(s.active(Env(ctx.source)) for s in grants), "sns:Publish granted while SnsTopicArn is empty")
    require(all(s.active(Env(ctx.source, {"SnsTopicArn": topic})) for s in grants), "sns:Publish not granted when set")


@check("Slack secret: ssm:GetParameter for a name, secretsmanager:GetSecretValue for an ARN, nothing when empty")
def _(ctx: Ctx) -> None:
    sts = [s for s in statements(ctx.resources) if s.effect == "Allow"]
    ssm = [s for s in sts if "ssm:GetParameter" in s.actions]
    sm = [s for s in sts if "secretsmanager:GetSecretValue" in s.actions]
    require(ssm and sm, "ssm:GetParameter or secretsmanager:GetSecretValue is never granted")
    name = "/reflex/slack-webhook"
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reflex/slack-webhook-AbCdEf"
    cases = [
        ("", [], []),
        (name, [f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"], []),
        (arn, [], [arn]),
    ]
    for value, want_ssm, want_sm in cases:
        env = Env(ctx.source, {"SlackWebhookSecret": value})
        got_ssm = [env.eval(r) for s in ssm if s.active(env) for r in s.resources]
        got_sm = [env.eval(r) for s in sm if s.active(env) for r in s.resources]
        require(got_ssm == want_ssm, f"SlackWebhookSecret={value!r}: ssm:GetParameter on {got_ssm}, expected {want_ssm}")
        require(got_sm == want_sm, f"SlackWebhookSecret={value!r}: secretsmanager:GetSecretValue on {got_sm}, expected {want_sm}")
    pattern = ctx.source["Parameters"]["SlackWebhookSecret"].get("AllowedPattern")
    if pattern:
        for ok in ("", name, arn):
            require(re.fullmatch(pattern, ok), f"SlackWebhookSecret AllowedPattern rejects {ok!r}")
        require(not re.fullmatch(pattern, "arn:aws:ssm:us-east-1:123456789012:parameter/x"),
                "SlackWebhookSecret AllowedPattern accepts an SSM ARN (it would be treated as a Secrets Manager ARN)")


@check("outputs: function ARN and DLQ URL")
def _(ctx: Ctx) -> None:
    outs = ctx.cfn.get("Outputs", {})
    values = [o.get("Value") for o in outs.values()]
    require({"Fn::GetAtt": [FUNCTION_ID, "Arn"]} in values, "no output with the function ARN")
    qid = getatt_target(function(ctx.cfn)["Properties"].get("DeadLetterConfig", {}).get("TargetArn"))
    require({"Ref": qid} in values or {"Fn::GetAtt": [qid, "QueueUrl"]} in values, f"no output with the URL of {qid}")


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
     "Resource '*' only on ec2:Describe* (and logs)"),
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


def self_test(path: Path) -> int:
    source = load_source(path)
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="reflex-check-sam-") as tmp:
        # The pristine copy must pass, or the failures below prove nothing.
        pristine = Path(tmp) / "pristine.json"
        pristine.write_text(json.dumps(source, indent=1))
        p, f, failures = run_checks(pristine, quiet=True)
        results.append(("pristine copy passes", f == 0, f"failed: {failures}" if f else f"{p} checks passed"))

        for i, (what, mutate, expected) in enumerate(MUTATIONS):
            broken = copy.deepcopy(source)
            mutate(broken)
            bad = Path(tmp) / f"broken-{i}.json"
            bad.write_text(json.dumps(broken, indent=1))
            # Run as a separate process with --template, exactly as a user would.
            results.append(rejected([sys.executable, __file__, "--template", str(bad)], expected, what))

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
