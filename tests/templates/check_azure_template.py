#!/usr/bin/env python3
"""Checks infra/azure/azuredeploy.json (ARM) for the Reflex function app (close-open-ports, alert-to-slack,
drain-before-maintenance) and its optional VNet integration.

    python3 tests/templates/check_azure_template.py                    # check the template
    python3 tests/templates/check_azure_template.py --template PATH    # check another copy
    python3 tests/templates/check_azure_template.py --self-test        # prove the checks can fail

The Bicep CLI and the full ARM resource schemas are not available offline, so this
script asserts the structure that matters for Reflex. It evaluates the template's
expressions itself (parameters, variables, concat, if, listKeys, reference, ...; Azure
calls are replaced by stand-ins that say what they were called on), so it can check
values that are only known after evaluation: the app settings for each plan, the
principals and roles of the role assignments, the webhook URL with and without a token.

Dependencies: python3 stdlib only. Exit status is 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import rejected, report  # noqa: E402  (shared by the template checks)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "infra" / "azure" / "azuredeploy.json"
DEFAULT_PARAMETERS = REPO_ROOT / "infra" / "azure" / "azuredeploy.parameters.example.json"

SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
FUNCTION = "close-open-ports"
ROUTE = f"/api/{FUNCTION}"
ALERT_FUNCTION = "alert-to-slack"
ALERT_ROUTE = f"/api/{ALERT_FUNCTION}"
# Action groups by name suffix (after the appName): close-open-ports' NSG alerts, and the
# group users attach their own alert rules to for alert-to-slack.
AG_SUFFIX = {FUNCTION: "-ag", ALERT_FUNCTION: "-alerts-ag"}
DRAIN_FUNCTION = "drain-before-maintenance"
DRAIN_ROUTE = f"/api/{DRAIN_FUNCTION}"
FUNCTIONS_DIR = REPO_ROOT / "functions"
TABLE_TYPE = "Microsoft.Storage/storageAccounts/tableServices/tables"

# The only actions the function's role may hold: read the NSG and its rules, delete a
# rule, and poll the delete's Azure-AsyncOperation status.
ALLOWED_ROLE_ACTIONS = {
    "Microsoft.Network/networkSecurityGroups/read",
    "Microsoft.Network/networkSecurityGroups/securityRules/read",
    "Microsoft.Network/networkSecurityGroups/securityRules/delete",
    "Microsoft.Network/locations/operations/read",
}
# drain-before-maintenance's role: acknowledge a scheduled event through ARM (the operation the
# built-in Scheduled Events Contributor role grants), read the VM (tags, NIC ids) or the scale set
# an event belongs to, and GET + PUT a backend pool (adminState) and follow the PUT's async status.
SCHEDULED_EVENT_ACK = "Microsoft.Maintenance/scheduledevents/acknowledge/action"
DRAIN_ROLE_ACTIONS = {
    SCHEDULED_EVENT_ACK,
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Network/networkInterfaces/read",
    "Microsoft.Network/loadBalancers/backendAddressPools/read",
    "Microsoft.Network/loadBalancers/backendAddressPools/write",
    "Microsoft.Network/locations/operations/read",
}
# Template variable holding each custom role's name (a GUID).
ROLE_VARS = {FUNCTION: "roleDefinitionName", DRAIN_FUNCTION: "drainRoleDefinitionName"}
RULE_WRITE = "Microsoft.Network/networkSecurityGroups/securityRules/write"
NSG_WRITE = "Microsoft.Network/networkSecurityGroups/write"

# Parameter -> app setting it feeds (None: used elsewhere).
PARAMETER_SETTINGS = {
    "dryRun": "REFLEX_DRY_RUN",
    "forbiddenPorts": "REFLEX_FORBIDDEN_PORTS",
    "allowedCidrs": "REFLEX_ALLOWED_CIDRS",
    "exemptTag": "REFLEX_EXEMPT_TAG",
    "slackWebhookUrl": "REFLEX_SLACK_WEBHOOK_URL",
    "webhookToken": "REFLEX_WEBHOOK_TOKEN",
    # alert-to-slack
    "alertTableName": "REFLEX_AZURE_TABLE",
    "slackBotToken": "REFLEX_SLACK_BOT_TOKEN",
    "slackChannel": "REFLEX_SLACK_CHANNEL",
    "slackRoutes": "REFLEX_SLACK_ROUTES",
    # drain-before-maintenance (its state store is the alert table, REFLEX_AZURE_TABLE)
    "drainLbPools": "REFLEX_AZURE_LB_POOLS",
    "drainVmScope": "REFLEX_AZURE_VM_SCOPE",
    "azureScopes": "REFLEX_AZURE_SCOPES",
    "drainPolicy": "REFLEX_DRAIN_POLICY",
    "drainTag": "REFLEX_DRAIN_TAG",
    "drainMaxConcurrent": "REFLEX_DRAIN_MAX_CONCURRENT",
    "drainMaxConcurrentGlobal": "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL",  # 0 = '' (no cap)
    "drainAckWhenNothing": "REFLEX_DRAIN_ACK_WHEN_NOTHING",
}
EXPECTED_DEFAULTS = {"dryRun": "true", "forbiddenPorts": "22,3389", "exemptTag": "reflex:exempt=true",
                     "webhookToken": "", "planSku": "Y1",
                     "alertTableName": "reflexalerts", "slackBotToken": "", "slackChannel": "", "slackRoutes": "",
                     "drainLbPools": "", "drainPolicy": "", "drainTag": "reflex:drain=true", "drainMaxConcurrent": 1,
                     "drainMaxConcurrentGlobal": 0, "drainAckWhenNothing": False,
                     "vnetSubnetId": ""}
SECURE_PARAMETERS = {"slackWebhookUrl", "webhookToken", "slackBotToken"}
PREMIUM_ONLY_SETTINGS = {"WEBSITE_CONTENTAZUREFILECONNECTIONSTRING"}

# Values for the deployment context and for the parameters a test deploy would pass.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-reflex"
RG_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
EXPECTED_DEFAULTS["drainVmScope"] = RG_ID  # [resourceGroup().id]: VM names resolve where the drain role applies
SAMPLE_ARGS = {
    "slackWebhookUrl": "https://hooks.slack.example/services/T000/B000/XXXX",
}
# A subnet for regional VNet integration (delegated to Microsoft.Web/serverFarms).
VNET_SUBNET = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnet-reflex/subnets/functions"


class CheckFailed(Exception):
    pass


def require(cond: Any, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


# --------------------------------------------------------------------------- ARM expressions


class EvalError(Exception):
    pass


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[().,\[\]]))")


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise EvalError(f"cannot parse expression at {text[pos:pos + 30]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class Parser:
    """expr := primary ('.' ident | '[' expr ']')* ; primary := string | number | ident '(' args ')'"""

    def __init__(self, text: str):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise EvalError(f"expected {value!r}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self) -> tuple:
        node = self.expr()
        if self.peek() is not None:
            raise EvalError(f"unexpected {self.peek()!r}")
        return node

    def expr(self) -> tuple:
        kind, val = self.take()
        if kind == "str":
            node: tuple = ("lit", val[1:-1].replace("''", "'"))
        elif kind == "num":
            node = ("lit", int(val))
        elif kind == "ident":
            args = []
            self.take("(")
            if self.peek() and self.peek()[1] != ")":
                args.append(self.expr())
                while self.peek() and self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            node = ("call", val, args)
        else:
            raise EvalError(f"unexpected {val!r}")
        while self.peek() and self.peek()[1] in (".", "["):
            if self.take()[1] == ".":
                node = ("index", node, ("lit", self.take()[1]))
            else:
                node = ("index", node, self.expr())
                self.take("]")
        return node


def is_expression(s: Any) -> bool:
    return isinstance(s, str) and s.startswith("[") and not s.startswith("[[") and s.endswith("]")


def short_hash(*parts: Any, n: int = 13) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


class Env:
    """Evaluates template values with parameter values (defaults, overridden by `args`)."""

    def __init__(self, template: dict, args: dict[str, Any] | None = None):
        self.t = template
        self.args = dict(args or {})
        self._params: dict[str, Any] = {}
        self._vars: dict[str, Any] = {}
        self._stack: list[str] = []

    # values -------------------------------------------------------------
    def param(self, name: str) -> Any:
        if name not in self._params:
            decl = self.t.get("parameters", {}).get(name)
            if decl is None:
                raise EvalError(f"parameters('{name}') is not declared")
            if name in self.args:
                self._params[name] = self.args[name]
            elif "defaultValue" in decl:
                self._params[name] = self.value(decl["defaultValue"])
            else:
                raise EvalError(f"parameter {name} has no value and no default")
        return self._params[name]

    def var(self, name: str) -> Any:
        if name not in self._vars:
            if name in self._stack:
                raise EvalError(f"variable cycle through {name}")
            decl = self.t.get("variables", {})
            if name not in decl:
                raise EvalError(f"variables('{name}') is not declared")
            self._stack.append(name)
            self._vars[name] = self.value(decl[name])
            self._stack.pop()
        return self._vars[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self.value(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.value(v) for v in node]
        if isinstance(node, str):
            if is_expression(node):
                return self.expr(node[1:-1])
            if node.startswith("[["):
                return node[1:]
        return node

    def expr(self, text: str) -> Any:
        return self.run(Parser(text).parse())

    def run(self, node: tuple) -> Any:
        if node[0] == "lit":
            return node[1]
        if node[0] == "index":
            base, key = self.run(node[1]), self.run(node[2])
            try:
                if isinstance(base, dict):
                    found = {k.lower(): v for k, v in base.items()}
                    return found[str(key).lower()]
                return base[key]
            except (KeyError, IndexError, TypeError):
                raise EvalError(f"no [{key!r}] in {base!r}")
        _, name, args = node
        if name.lower() == "if":  # evaluate only the branch taken, like ARM
            if len(args) != 3:
                raise EvalError("if() takes 3 arguments")
            return self.run(args[1] if self.run(args[0]) else args[2])
        fn = FUNCTIONS.get(name.lower())
        if fn is None:
            raise EvalError(f"function {name}() is not known to this checker")
        return fn(self, *[self.run(a) for a in args])


def _resource_id(scope: str, rtype: str, *names: str) -> str:
    ns, *types = rtype.split("/")
    if len(types) != len(names):
        raise EvalError(f"resourceId({rtype!r}, {names!r}): {len(types)} type segments, {len(names)} names")
    path = "/".join(f"{t}/{n}" for t, n in zip(types, names))
    return f"{scope}/providers/{ns}/{path}"


def _concat(env: Env, *xs: Any) -> Any:
    if xs and all(isinstance(x, list) for x in xs):
        return [i for x in xs for i in x]
    if any(isinstance(x, (list, dict)) for x in xs):
        raise EvalError(f"concat() mixes strings and arrays: {xs!r}")
    return "".join("" if x is None else (str(x).lower() if isinstance(x, bool) else str(x)) for x in xs)


def _list_keys(env: Env, rid: str, api: str) -> dict:
    # Stand-in keys that name the resource they were listed on. The function key holds
    # '+', '/' and '=' so that an unencoded key in a URL query is noticed.
    return {
        "keys": [{"keyName": "key1", "value": f"storagekey-of({rid})"}],
        "functionKeys": {"default": f"fnkey+/=of({rid})"},
        "masterKey": f"masterkey-of({rid})",
    }


def _json(env: Env, text: Any) -> Any:
    # ARM fails the deployment on text that is not JSON; the template uses that on purpose
    # (vnetSubnetId on Y1), so the error carries the text.
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise EvalError(f"json({text!r}): not valid JSON; ARM stops the deployment here")


def _reference(env: Env, rid: str, api: str | None = None, full: str | None = None) -> dict:
    name = rid.rstrip("/").split("/")[-1]
    props = {"defaultHostName": f"{name}.azurewebsites.net", "principalId": None}
    if full and full.lower() == "full":
        return {"properties": props, "identity": {"principalId": f"principal-of({rid})", "type": "SystemAssigned"}}
    return props


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "parameters": lambda env, n: env.param(n),
    "variables": lambda env, n: env.var(n),
    "concat": _concat,
    "format": lambda env, f, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m.group(1))]), f),
    "createarray": lambda env, *a: list(a),
    "createobject": lambda env, *a: {a[i]: a[i + 1] for i in range(0, len(a), 2)},
    "equals": lambda env, a, b: a == b,
    "not": lambda env, a: not a,
    "and": lambda env, *a: all(a),
    "or": lambda env, *a: any(a),
    "empty": lambda env, a: a is None or len(a) == 0,
    "length": lambda env, a: len(a),
    "tolower": lambda env, a: str(a).lower(),
    "toupper": lambda env, a: str(a).upper(),
    "uricomponent": lambda env, a: quote(str(a), safe=""),
    "json": _json,
    "true": lambda env: True,
    "false": lambda env: False,
    # ARM's string() of a bool is 'True' / 'False' (.NET casing), not JSON's 'true' / 'false'.
    "string": lambda env, a: a if isinstance(a, str) else str(a) if isinstance(a, bool) else json.dumps(a),
    "uniquestring": lambda env, *a: short_hash(*a),
    "guid": lambda env, *a: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(a))),
    "resourcegroup": lambda env: {"id": RG_ID, "name": RESOURCE_GROUP, "location": "westeurope"},
    "subscription": lambda env: {"id": f"/subscriptions/{SUBSCRIPTION}", "subscriptionId": SUBSCRIPTION},
    "environment": lambda env: {"name": "AzureCloud", "suffixes": {"storage": "core.windows.net"}},
    "resourceid": lambda env, t, *n: _resource_id(RG_ID, t, *n),
    "subscriptionresourceid": lambda env, t, *n: _resource_id(f"/subscriptions/{SUBSCRIPTION}", t, *n),
    "listkeys": _list_keys,
    "reference": _reference,
}


# --------------------------------------------------------------------------- template access


def resources_of(t: dict, rtype: str) -> list[dict]:
    return [r for r in t.get("resources", []) if isinstance(r, dict) and str(r.get("type", "")).lower() == rtype.lower()]


def one(t: dict, rtype: str) -> dict:
    found = resources_of(t, rtype)
    require(len(found) == 1, f"expected exactly one {rtype}, found {len(found)}")
    return found[0]


def action_group(env: Env, t: dict, function: str) -> dict:
    """The action group whose evaluated name is <appName><suffix of that function>."""
    want = f"{env.param('appName')}{AG_SUFFIX[function]}"
    found = [g for g in resources_of(t, "Microsoft.Insights/actionGroups") if env.value(g.get("name")) == want]
    require(len(found) == 1, f"expected one action group named {want!r} (for {function}), found {len(found)}")
    return found[0]


def resource_id_of(env: Env, res: dict) -> str:
    names = str(env.value(res["name"])).split("/")
    return _resource_id(RG_ID, res["type"], *names)


def app_settings(env: Env, t: dict) -> dict[str, Any]:
    site = one(t, "Microsoft.Web/sites")
    raw = env.value(site.get("properties", {}).get("siteConfig", {}).get("appSettings", []))
    require(isinstance(raw, list), f"appSettings evaluates to {type(raw).__name__}, not a list")
    out: dict[str, Any] = {}
    for item in raw:
        require(isinstance(item, dict) and set(item) == {"name", "value"}, f"app setting {item!r} is not {{name, value}}")
        require(item["name"] not in out, f"app setting {item['name']} is set twice")
        out[item["name"]] = item["value"]
    return out


def walk_strings(node: Any):
    if isinstance(node, dict):
        for v in node.values():
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)
    elif isinstance(node, str):
        yield node


PARAM_REF = re.compile(r"parameters\(\s*'([^']*)'\s*\)")


# --------------------------------------------------------------------------- checks

CHECKS: list[tuple[str, Callable[["Ctx"], None]]] = []


def check(title: str):
    def deco(fn):
        CHECKS.append((title, fn))
        return fn

    return deco


class Ctx:
    def __init__(self, path: Path, parameters: Path | None):
        self.path = path
        self.parameters_path = parameters
        self._t: dict | None = None
        self._error: str | None = None

    @property
    def t(self) -> dict:
        if self._t is None:
            if self._error:
                raise CheckFailed(self._error)
            try:
                data = json.loads(self.path.read_text())
            except json.JSONDecodeError as e:
                self._error = f"{self.path.name} is not valid JSON: {e}"
                raise CheckFailed(self._error)
            if not isinstance(data, dict):
                self._error = f"{self.path.name} is not a JSON object"
                raise CheckFailed(self._error)
            self._t = data
        return self._t

    def env(self, **args: Any) -> Env:
        return Env(self.t, {**SAMPLE_ARGS, **args})


@check("template is valid JSON: deploymentTemplate 2019-04-01 schema, contentVersion, resources")
def _(ctx: Ctx) -> None:
    t = ctx.t
    require(t.get("$schema") == SCHEMA, f"$schema is {t.get('$schema')!r}, expected {SCHEMA}")
    require(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", str(t.get("contentVersion", ""))), "contentVersion is not a.b.c.d")
    require(isinstance(t.get("resources"), list) and t["resources"], "no resources")
    for key in ("parameters", "variables", "outputs"):
        require(isinstance(t.get(key, {}), dict), f"{key} is not an object")


@check("every resource has type, a stable apiVersion (YYYY-MM-DD) and name")
def _(ctx: Ctx) -> None:
    for i, r in enumerate(ctx.t["resources"]):
        require(isinstance(r, dict), f"resources[{i}] is not an object")
        label = f"resources[{i}] ({r.get('type', '?')})"
        for key in ("type", "apiVersion", "name"):
            require(isinstance(r.get(key), str) and r[key], f"{label} has no {key}")
        require(re.fullmatch(r"[A-Za-z0-9.]+/[A-Za-z0-9./]+", r["type"]), f"{label}: bad type {r['type']!r}")
        require(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["apiVersion"]), f"{label}: apiVersion {r['apiVersion']!r} is not a stable version")


@check("parameters: every parameters('x') is declared, every declared parameter is used")
def _(ctx: Ctx) -> None:
    t = ctx.t
    declared = set(t.get("parameters", {}))
    used: set[str] = set()
    for section in ("variables", "resources", "outputs"):
        for s in walk_strings(t.get(section, {})):
            used.update(PARAM_REF.findall(s))
    for name, decl in t.get("parameters", {}).items():
        for s in walk_strings(decl.get("defaultValue")):
            used.update(n for n in PARAM_REF.findall(s) if n != name)
    missing = used - declared
    unused = declared - used
    require(not missing, f"referenced but not declared: {sorted(missing)}")
    require(not unused, f"declared but never used: {sorted(unused)}")
    for name, decl in t["parameters"].items():
        require(decl.get("type") in ("string", "securestring", "int", "bool", "object", "secureObject", "array"),
                f"parameter {name} has type {decl.get('type')!r}")


@check("parameters: defaults for a safe first deploy; secrets are securestring and never output")
def _(ctx: Ctx) -> None:
    params = ctx.t.get("parameters", {})
    env = ctx.env()
    for name, want in EXPECTED_DEFAULTS.items():
        require(name in params, f"parameter {name} is missing")
        got = env.value(params[name].get("defaultValue"))
        # By type too: 0 == False in Python, but not for ARM's int and bool parameters.
        require(got == want and type(got) is type(want), f"parameter {name} defaults to {got!r}, expected {want!r}")
    require(params["dryRun"].get("allowedValues") == ["true", "false"], "dryRun allowedValues is not [\"true\", \"false\"]")
    require(set(params["planSku"].get("allowedValues", [])) == {"Y1", "EP1"}, "planSku allowedValues is not Y1/EP1")
    for name in SECURE_PARAMETERS:
        require(params.get(name, {}).get("type") == "securestring", f"parameter {name} is not a securestring")
    for oname, out in ctx.t.get("outputs", {}).items():
        for s in walk_strings(out):
            leaked = set(PARAM_REF.findall(s)) & SECURE_PARAMETERS
            require(not leaked, f"output {oname} uses {sorted(leaked)}")
            require("listkeys(" not in s.lower(), f"output {oname} uses listKeys")


@check("storage account: StorageV2, HTTPS only, TLS1_2, no public blob access")
def _(ctx: Ctx) -> None:
    sa = one(ctx.t, "Microsoft.Storage/storageAccounts")
    p = ctx.env().value(sa.get("properties", {}))
    require(sa.get("kind") == "StorageV2", f"kind is {sa.get('kind')!r}")
    require(p.get("supportsHttpsTrafficOnly") is True, "supportsHttpsTrafficOnly is not true")
    require(p.get("minimumTlsVersion") == "TLS1_2", f"minimumTlsVersion is {p.get('minimumTlsVersion')!r}")
    require(p.get("allowBlobPublicAccess") is False, "allowBlobPublicAccess is not false")


@check("plan: Linux (reserved), Y1/Dynamic by default, EP1/ElasticPremium when asked")
def _(ctx: Ctx) -> None:
    plan = one(ctx.t, "Microsoft.Web/serverfarms")
    for sku, tier in (("Y1", "Dynamic"), ("EP1", "ElasticPremium")):
        env = ctx.env(planSku=sku)
        got = env.value(plan.get("sku"))
        require(isinstance(got, dict) and got.get("name") == sku and got.get("tier") == tier,
                f"planSku={sku}: sku evaluates to {got!r}")
        require(env.value(plan.get("properties", {})).get("reserved") is True, f"planSku={sku}: plan is not reserved (Linux)")
    default = ctx.env().value(plan.get("sku"))
    require(default.get("name") == "Y1", f"default plan is {default!r}")


@check("function app: functionapp,linux on the plan, SystemAssigned identity, httpsOnly, TLS 1.2, FTPS disabled")
def _(ctx: Ctx) -> None:
    site = one(ctx.t, "Microsoft.Web/sites")
    env = ctx.env()
    require(site.get("kind") == "functionapp,linux", f"kind is {site.get('kind')!r}")
    identity = site.get("identity") or {}
    require(identity.get("type") == "SystemAssigned", f"identity is {identity!r}, expected SystemAssigned")
    p = env.value({k: v for k, v in site.get("properties", {}).items() if k != "siteConfig"})
    plan = one(ctx.t, "Microsoft.Web/serverfarms")
    require(p.get("serverFarmId") == resource_id_of(env, plan), f"serverFarmId is {p.get('serverFarmId')!r}")
    require(p.get("httpsOnly") is True, "httpsOnly is not true")
    sc = site.get("properties", {}).get("siteConfig", {})
    sc = env.value({k: v for k, v in sc.items() if k != "appSettings"})
    require(sc.get("minTlsVersion") == "1.2", f"minTlsVersion is {sc.get('minTlsVersion')!r}")
    require(sc.get("ftpsState") == "Disabled", f"ftpsState is {sc.get('ftpsState')!r}")
    deps = [env.value(d) for d in site.get("dependsOn", [])]
    sa = one(ctx.t, "Microsoft.Storage/storageAccounts")
    require(resource_id_of(env, sa) in deps and resource_id_of(env, plan) in deps, f"app dependsOn {deps}")


@check("app settings: ~4, FUNCTIONS_WORKER_RUNTIME=Custom, AzureWebJobsStorage from listKeys, REFLEX_* from parameters")
def _(ctx: Ctx) -> None:
    t = ctx.t
    sa = one(t, "Microsoft.Storage/storageAccounts")
    base = {"FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", *PARAMETER_SETTINGS.values()}
    for sku in ("Y1", "EP1"):
        args = {"planSku": sku, "dryRun": "false", "forbiddenPorts": "22,3389,5432", "allowedCidrs": "10.0.0.0/8",
                "exemptTag": "team=x", "slackWebhookUrl": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/s/)",
                "webhookToken": "tok", "alertTableName": "opsalerts",
                "slackBotToken": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/bot/)",
                "slackChannel": "#ops", "slackRoutes": "kind=health => mute",
                "drainLbPools": f"{RG_ID}/providers/Microsoft.Network/loadBalancers/lb-web/backendAddressPools/web",
                "drainVmScope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vms", "drainPolicy": "freeze=ignore-under:60",
                "azureScopes": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-vms,{RG_ID}",
                "drainTag": "team=web", "drainMaxConcurrent": 3, "drainMaxConcurrentGlobal": 7, "drainAckWhenNothing": True}
        env = ctx.env(**args)
        s = app_settings(env, t)
        want = base | (PREMIUM_ONLY_SETTINGS if sku == "EP1" else set())
        require(set(s) == want, f"planSku={sku}: settings {sorted(s)}; missing {sorted(want - set(s))}, unexpected {sorted(set(s) - want)}")
        require(s["FUNCTIONS_EXTENSION_VERSION"] == "~4", f"FUNCTIONS_EXTENSION_VERSION is {s['FUNCTIONS_EXTENSION_VERSION']!r}")
        require(str(s["FUNCTIONS_WORKER_RUNTIME"]).lower() == "custom", f"FUNCTIONS_WORKER_RUNTIME is {s['FUNCTIONS_WORKER_RUNTIME']!r}")
        conn = str(s["AzureWebJobsStorage"])
        account = env.value(sa["name"])
        key = f"storagekey-of({resource_id_of(env, sa)})"
        require(f"AccountName={account};" in conn and conn.startswith("DefaultEndpointsProtocol=https;")
                and conn.endswith(f"AccountKey={key}"), f"AzureWebJobsStorage is {conn!r}")
        for name, value in s.items():
            require(isinstance(value, str), f"planSku={sku}: app setting {name} is {type(value).__name__} {value!r}, not a string")
        for p, setting in PARAMETER_SETTINGS.items():
            want = str(args[p]).lower() if isinstance(args[p], (bool, int)) else args[p]
            require(s[setting] == want, f"planSku={sku}: {setting} is {s[setting]!r}, expected parameter {p} ({want!r})")
        if sku == "EP1":
            require(s["WEBSITE_CONTENTAZUREFILECONNECTIONSTRING"] == conn, "EP1: WEBSITE_CONTENTAZUREFILECONNECTIONSTRING differs from AzureWebJobsStorage")


def role_definition(env: Env, t: dict, var: str) -> dict:
    """The roleDefinitions resource whose evaluated name is variables(var)."""
    want = env.var(var)
    found = [r for r in resources_of(t, "Microsoft.Authorization/roleDefinitions") if env.value(r.get("name")) == want]
    require(len(found) == 1, f"expected one role definition named variables('{var}') = {want}, found {len(found)}")
    return found[0]


def require_custom_role(ctx: Ctx, var: str, allowed: set[str]) -> None:
    env = ctx.env()
    rds = resources_of(ctx.t, "Microsoft.Authorization/roleDefinitions")
    require(len(rds) == len(ROLE_VARS), f"expected {len(ROLE_VARS)} role definitions (one per function that changes Azure), found {len(rds)}")
    names = [env.value(r.get("name")) for r in rds]
    require(len(set(names)) == len(names), f"role definitions share a name {names}: one would overwrite the other")
    rd = role_definition(env, ctx.t, var)
    name = env.value(rd["name"])
    require(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", str(name)), f"role name {name!r} is not a GUID")
    p = env.value(rd.get("properties", {}))
    require(p.get("type") == "CustomRole", f"type is {p.get('type')!r}")
    perms = p.get("permissions")
    require(isinstance(perms, list) and len(perms) == 1, f"expected one permissions block, got {perms!r}")
    block = perms[0]
    actions = block.get("actions", [])
    require(all(isinstance(a, str) for a in actions), f"non-string action in {actions!r}")
    wild = [a for a in actions if "*" in a]
    require(not wild, f"wildcard actions {wild}")
    require(len(actions) == len(set(actions)), f"duplicate actions {actions}")
    require(set(actions) == allowed,
            f"actions {sorted(actions)}; unexpected {sorted(set(actions) - allowed)}, missing {sorted(allowed - set(actions))}")
    for key in ("notActions", "dataActions", "notDataActions"):
        require(not block.get(key), f"{key} is {block.get(key)!r}, expected empty")
    require(p.get("assignableScopes") == [RG_ID], f"assignableScopes {p.get('assignableScopes')!r}, expected [resourceGroup().id]")


@check("custom role: exactly the four NSG/operation actions, no wildcard, assignable only in this resource group")
def _(ctx: Ctx) -> None:
    require_custom_role(ctx, ROLE_VARS[FUNCTION], ALLOWED_ROLE_ACTIONS)


@check("drain-before-maintenance custom role: exactly the scheduled-event acknowledge, VM / scale-set / NIC reads, backend-pool read + write "
       "and operation-status actions; no wildcard; assignable only in this resource group")
def _(ctx: Ctx) -> None:
    require_custom_role(ctx, ROLE_VARS[DRAIN_FUNCTION], DRAIN_ROLE_ACTIONS)
    rd = role_definition(ctx.env(), ctx.t, ROLE_VARS[DRAIN_FUNCTION])
    role_name = str(ctx.env().value(rd.get("properties", {}).get("roleName", "")))
    require(DRAIN_FUNCTION in role_name and RESOURCE_GROUP in role_name,
            f"roleName {role_name!r} does not name drain-before-maintenance and the resource group (role names are unique per tenant)")


def require_role_assignment(ctx: Ctx, var: str) -> None:
    t = ctx.t
    env = ctx.env()
    rd = role_definition(env, t, var)
    rd_name = env.value(rd["name"])
    site = one(t, "Microsoft.Web/sites")
    app_id = resource_id_of(env, site)
    custom = {str(env.var(v)) for v in ROLE_VARS.values()}
    ras = resources_of(t, "Microsoft.Authorization/roleAssignments")
    for other in ras:
        rid = str(env.value(other.get("properties", {}).get("roleDefinitionId", ""))).lower()
        require(any(rid.endswith(f"/providers/microsoft.authorization/roledefinitions/{c}") for c in custom),
                f"role assignment {env.value(other.get('name'))} grants {rid}, not one of this template's custom roles")
    mine = [ra for ra in ras if str(env.value(ra.get("properties", {}).get("roleDefinitionId", ""))).lower()
            .endswith(f"/providers/microsoft.authorization/roledefinitions/{rd_name}")]
    require(len(mine) == 1, f"expected one role assignment of the custom role {rd_name}, found {len(mine)}")
    ra = mine[0]
    require("scope" not in ra, f"role assignment has scope {ra.get('scope')!r}; it must apply to the deployment's resource group")
    p = env.value(ra.get("properties", {}))
    require(p.get("principalId") == f"principal-of({app_id})",
            f"principalId is {p.get('principalId')!r}, expected reference(<function app>, ..., 'full').identity.principalId")
    require(p.get("principalType") == "ServicePrincipal", f"principalType is {p.get('principalType')!r}")
    deps = {str(env.value(d)).lower() for d in ra.get("dependsOn", [])}
    require(app_id.lower() in deps, "role assignment does not depend on the function app")
    require(any(d.endswith(f"/roledefinitions/{rd_name}") for d in deps), "role assignment does not depend on the role definition")
    names = [env.value(r.get("name")) for r in ras]
    require(len(set(names)) == len(names), f"role assignments share a name {names}")


@check("role assignment: the custom role to the app's system-assigned principal (ServicePrincipal), resource-group scope")
def _(ctx: Ctx) -> None:
    require_role_assignment(ctx, ROLE_VARS[FUNCTION])


@check("drain-before-maintenance role assignment: the drain role to the app's system-assigned principal (ServicePrincipal), resource-group scope")
def _(ctx: Ctx) -> None:
    require_role_assignment(ctx, ROLE_VARS[DRAIN_FUNCTION])


@check("drain-before-maintenance app settings: LB pools, VM scope (default this resource group), policy, opt-in tag, max concurrent (1-1000); "
       "account-wide cap (0 = empty, no cap; 1-1000), acknowledge-when-nothing ('true' / 'false', default false); "
       "state in the REFLEX_AZURE_TABLE table, no DynamoDB")
def _(ctx: Ctx) -> None:
    t = ctx.t
    params = t.get("parameters", {})
    env = ctx.env()
    s = app_settings(env, t)
    defaults = {"REFLEX_AZURE_LB_POOLS": "", "REFLEX_AZURE_VM_SCOPE": RG_ID, "REFLEX_AZURE_SCOPES": RG_ID,
                "REFLEX_DRAIN_POLICY": "",
                "REFLEX_DRAIN_TAG": "reflex:drain=true", "REFLEX_DRAIN_MAX_CONCURRENT": "1",
                "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL": "", "REFLEX_DRAIN_ACK_WHEN_NOTHING": "false"}
    for name, want in defaults.items():
        require(s.get(name) == want, f"default deploy: {name} is {s.get(name)!r}, expected {want!r}")
    # A bare VM name resolves in this resource group, the scope the drain role is assigned at.
    rd = role_definition(env, t, ROLE_VARS[DRAIN_FUNCTION])
    scopes = env.value(rd.get("properties", {})).get("assignableScopes")
    require(scopes == [s["REFLEX_AZURE_VM_SCOPE"]], f"REFLEX_AZURE_VM_SCOPE {s['REFLEX_AZURE_VM_SCOPE']!r} is not the drain role's scope {scopes!r}")
    key, _, value = s["REFLEX_DRAIN_TAG"].partition("=")
    require(key.strip() and value.strip(), f"REFLEX_DRAIN_TAG {s['REFLEX_DRAIN_TAG']!r} is not key=value")
    mc = params.get("drainMaxConcurrent", {})
    require(mc.get("type") == "int" and mc.get("minValue") == 1 and mc.get("maxValue") == 1000,
            f"drainMaxConcurrent is {mc.get('type')!r} {mc.get('minValue')!r}..{mc.get('maxValue')!r}, expected int 1..1000 (the function rejects others)")
    # The account-wide cap: the function takes 1 to 1000, and an empty setting as no cap; 0 here
    # must become '' (never '0', which the function rejects at start-up).
    mg = params.get("drainMaxConcurrentGlobal", {})
    require(mg.get("type") == "int" and mg.get("minValue") == 0 and mg.get("maxValue") == 1000,
            f"drainMaxConcurrentGlobal is {mg.get('type')!r} {mg.get('minValue')!r}..{mg.get('maxValue')!r}, expected int 0..1000 (0 = no cap)")
    for n, want in ((0, ""), (1, "1"), (25, "25"), (1000, "1000")):
        got = app_settings(ctx.env(drainMaxConcurrentGlobal=n), t).get("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL")
        require(got == want, f"drainMaxConcurrentGlobal={n}: REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL is {got!r}, expected {want!r}")
    # Acknowledge when there is nothing to drain: a bool parameter, the setting 'true' / 'false'.
    ack = params.get("drainAckWhenNothing", {})
    require(ack.get("type") == "bool", f"drainAckWhenNothing is {ack.get('type')!r}, expected bool")
    for b, want in ((True, "true"), (False, "false")):
        got = app_settings(ctx.env(drainAckWhenNothing=b), t).get("REFLEX_DRAIN_ACK_WHEN_NOTHING")
        require(got == want, f"drainAckWhenNothing={b}: REFLEX_DRAIN_ACK_WHEN_NOTHING is {got!r}, expected {want!r}")
    for name, var in (("drainMaxConcurrentGlobal", "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"), ("drainAckWhenNothing", "REFLEX_DRAIN_ACK_WHEN_NOTHING")):
        desc = str(params.get(name, {}).get("metadata", {}).get("description", ""))
        require(desc.startswith(f"{var} "), f"{name}'s description does not name {var} first: {desc!r}")
    pools = f"{RG_ID}/providers/Microsoft.Network/loadBalancers/lb/backendAddressPools/a,{RG_ID}/providers/Microsoft.Network/loadBalancers/lb/backendAddressPools/b"
    got = app_settings(ctx.env(drainLbPools=pools), t).get("REFLEX_AZURE_LB_POOLS")
    require(got == pools, f"drainLbPools={pools!r}: REFLEX_AZURE_LB_POOLS is {got!r}")
    require(s.get("REFLEX_AZURE_TABLE") == env.param("alertTableName") and resources_of(t, TABLE_TYPE),
            "REFLEX_AZURE_TABLE does not name the table the template creates: the drain records, slots and dedup keys need it")
    for name in ("REFLEX_DYNAMODB_TABLE", "REFLEX_KUBE_API_URL", "REFLEX_ARM_TOKEN"):
        require(name not in s, f"{name} is set: on Azure the function uses the Azure table and the managed identity")


def webhook_url(ctx: Ctx, token: str, function: str = FUNCTION) -> tuple[str, Env]:
    env = ctx.env(webhookToken=token)
    ag = action_group(env, ctx.t, function)
    receivers = ag.get("properties", {}).get("webhookReceivers", [])
    require(isinstance(receivers, list) and len(receivers) == 1, f"expected one webhookReceiver, got {len(receivers) if isinstance(receivers, list) else receivers!r}")
    return str(env.value(receivers[0].get("serviceUri"))), env


def require_webhook_group(ctx: Ctx, function: str, route: str) -> None:
    t = ctx.t
    ag = action_group(ctx.env(), t, function)
    require(str(ag.get("location", "")).lower() == "global", f"location is {ag.get('location')!r}")
    p = ag.get("properties", {})
    require(p.get("enabled", True) is True, "action group is disabled")
    require(re.fullmatch(r".{1,12}", str(p.get("groupShortName", ""))), "groupShortName must be 1-12 characters")
    receiver = p["webhookReceivers"][0] if p.get("webhookReceivers") else {}
    require(receiver.get("useCommonAlertSchema") is True, "webhook receiver does not use the common alert schema")
    site = one(t, "Microsoft.Web/sites")
    for token in ("", "s3cr&t+=/"):
        url, env = webhook_url(ctx, token, function)
        app = env.value(site["name"])
        host_id = _resource_id(RG_ID, "Microsoft.Web/sites/host", app, "default")
        parts = urlsplit(url)
        require(parts.scheme == "https", f"webhook URL {url!r} is not https")
        require(parts.netloc == f"{app}.azurewebsites.net", f"webhook host is {parts.netloc!r}, expected reference(<app>).defaultHostName")
        require(parts.path == route, f"webhook path is {parts.path!r}, expected {route}")
        q = parse_qs(parts.query, keep_blank_values=True)
        require(q.get("code") == [f"fnkey+/=of({host_id})"],
                f"code= is {q.get('code')!r}: expected the URL-encoded functionKeys.default of {host_id}")
        if token:
            require(q.get("token") == [token], f"webhookToken={token!r}: token= is {q.get('token')!r} (missing or not URL-encoded)")
        else:
            require("token" not in q, f"webhookToken empty but the URL has token= ({url})")
        require(set(q) <= {"code", "token"}, f"unexpected query parameters {sorted(q)}")
    deps = [str(env.value(d)).lower() for d in ag.get("dependsOn", [])]
    require(resource_id_of(env, site).lower() in deps, "action group does not depend on the function app (listKeys on its host)")


@check("action group: Global, one webhook (common alert schema) to https://<app>/api/close-open-ports?code=<host key>[&token=]")
def _(ctx: Ctx) -> None:
    require_webhook_group(ctx, FUNCTION, ROUTE)


@check("alert-to-slack action group <app>-alerts-ag: Global, one webhook (common alert schema) to https://<app>/api/alert-to-slack?code=<host key>[&token=], id in the outputs")
def _(ctx: Ctx) -> None:
    require_webhook_group(ctx, ALERT_FUNCTION, ALERT_ROUTE)
    env = ctx.env()
    ag_id = resource_id_of(env, action_group(env, ctx.t, ALERT_FUNCTION))
    outs = {k: env.value(v.get("value")) for k, v in ctx.t.get("outputs", {}).items()}
    require(ag_id in outs.values(), f"no output with the alert-to-slack action group id {ag_id}")
    names = [env.value(g.get("properties", {}).get("groupShortName")) for g in resources_of(ctx.t, "Microsoft.Insights/actionGroups")]
    require(len(set(names)) == len(names), f"action groups share a groupShortName {names}: notifications would not say which one fired")


@check("alert-to-slack table: tableServices/tables in the app's storage account, named by alertTableName = REFLEX_AZURE_TABLE")
def _(ctx: Ctx) -> None:
    t = ctx.t
    decl = t.get("parameters", {}).get("alertTableName", {})
    require(decl.get("type") == "string", "parameter alertTableName is not a string")
    require(decl.get("minLength") == 3 and decl.get("maxLength") == 63,
            f"alertTableName length limits are {decl.get('minLength')!r}..{decl.get('maxLength')!r}, expected 3..63 (Table storage names)")
    sa = one(t, "Microsoft.Storage/storageAccounts")
    tables = resources_of(t, TABLE_TYPE)
    require(len(tables) == 1, f"expected one {TABLE_TYPE}, found {len(tables)}")
    table = tables[0]
    for name in ("reflexalerts", "opsalerts"):
        env = ctx.env(alertTableName=name) if name != "reflexalerts" else ctx.env()
        account = env.value(sa["name"])
        got = env.value(table["name"])
        require(got == f"{account}/default/{name}", f"alertTableName={name!r}: table name is {got!r}, expected {account}/default/{name}")
        require(app_settings(env, t).get("REFLEX_AZURE_TABLE") == name, f"alertTableName={name!r}: REFLEX_AZURE_TABLE differs from the table")
        deps = [str(env.value(d)).lower() for d in table.get("dependsOn", [])]
        require(resource_id_of(env, sa).lower() in deps, "table does not depend on the storage account")
    require("REFLEX_AZURE_STORAGE_CONNECTION" not in app_settings(ctx.env(), t),
            "REFLEX_AZURE_STORAGE_CONNECTION is set: the table is in AzureWebJobsStorage's account, the default")
    enc = ctx.env().value(sa.get("properties", {})).get("encryption", {}).get("services", {}).get("table", {})
    require(enc.get("enabled") is True, "the storage account does not encrypt the table service")


@check("every webhook route (action groups, Event Grid) has a functions/<name>/function.json: httpTrigger, authLevel function, POST, http out")
def _(ctx: Ctx) -> None:
    for function in (*AG_SUFFIX, DRAIN_FUNCTION):
        path = FUNCTIONS_DIR / function / "function.json"
        require(path.is_file(), f"{path.relative_to(REPO_ROOT)} is missing: the host would answer 404 on /api/{function}")
        doc = json.loads(path.read_text())
        bindings = doc.get("bindings", [])
        ins = [b for b in bindings if b.get("direction") == "in"]
        outs = [b for b in bindings if b.get("direction") == "out"]
        require(len(ins) == 1 and ins[0].get("type") == "httpTrigger", f"{function}: input binding is {ins!r}")
        require(ins[0].get("authLevel") == "function", f"{function}: authLevel is {ins[0].get('authLevel')!r}, expected function (the ?code= key)")
        require([m.lower() for m in ins[0].get("methods", [])] == ["post"], f"{function}: methods {ins[0].get('methods')!r}, expected [post]")
        require(not ins[0].get("route"), f"{function}: a custom route would break /api/{function}")
        require(len(outs) == 1 and outs[0].get("type") == "http", f"{function}: output binding is {outs!r}")


@check("activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, this RG, to the action group")
def _(ctx: Ctx) -> None:
    t = ctx.t
    env = ctx.env()
    ag_id = resource_id_of(env, action_group(env, t, FUNCTION))
    alerts = resources_of(t, "Microsoft.Insights/activityLogAlerts")
    require(alerts, "no activityLogAlerts")
    covered: set[str] = set()
    for a in alerts:
        label = env.value(a["name"])
        require(str(a.get("location", "")).lower() == "global", f"{label}: location is {a.get('location')!r}")
        p = env.value(a.get("properties", {}))
        require(p.get("enabled", True) is True, f"{label} is disabled")
        require(p.get("scopes") == [RG_ID], f"{label}: scopes {p.get('scopes')!r}, expected [resourceGroup().id]")
        all_of = (p.get("condition") or {}).get("allOf", [])
        leaves = {(c.get("field"), c.get("equals")) for c in all_of if "field" in c}
        require(("category", "Administrative") in leaves, f"{label}: no category == Administrative")
        require(("status", "Succeeded") in leaves, f"{label}: no status == Succeeded")
        ops = {v for f, v in leaves if f == "operationName"}
        for c in all_of:
            if c.get("field") == "operationName" and "containsAny" in c:
                ops.update(c["containsAny"])
            for leaf in c.get("anyOf", []):
                if leaf.get("field") == "operationName":
                    ops.update([leaf["equals"]] if "equals" in leaf else leaf.get("containsAny", []))
        require(ops and ops <= {RULE_WRITE, NSG_WRITE}, f"{label}: operationName {sorted(ops)}")
        for f, v in leaves:
            require(f in ("category", "operationName", "status"), f"{label}: unexpected condition {f} == {v}")
        covered |= ops
        groups = [g.get("actionGroupId") for g in (p.get("actions") or {}).get("actionGroups", [])]
        require(groups == [ag_id], f"{label}: actions {groups}, expected [{ag_id}]")
    require(RULE_WRITE in covered, f"no alert on {RULE_WRITE}")
    require(NSG_WRITE in covered, f"no alert on {NSG_WRITE}")


@check("outputs: function app name, principal id, webhook URLs without the key")
def _(ctx: Ctx) -> None:
    t = ctx.t
    env = ctx.env()
    outs = {k: env.value(v.get("value")) for k, v in t.get("outputs", {}).items()}
    site = one(t, "Microsoft.Web/sites")
    app = env.value(site["name"])
    app_id = resource_id_of(env, site)
    values = list(outs.values())
    require(app in values, f"no output with the function app name {app!r}")
    require(f"principal-of({app_id})" in values, "no output with the app's principal id")
    for route in (ROUTE, ALERT_ROUTE, DRAIN_ROUTE):
        require(f"https://{app}.azurewebsites.net{route}" in values, f"no output with https://{app}.azurewebsites.net{route}")
    for k, v in outs.items():
        require("fnkey" not in str(v) and "storagekey" not in str(v) and "code=" not in str(v), f"output {k} carries a key")


def site_network(env: Env, t: dict) -> tuple[Any, Any, Any]:
    """(virtualNetworkSubnetId, siteConfig.vnetRouteAllEnabled, outboundVnetRouting) of the app."""
    site = one(t, "Microsoft.Web/sites")
    p = site.get("properties", {})
    sc = p.get("siteConfig", {})
    return (env.value(p.get("virtualNetworkSubnetId")), env.value(sc.get("vnetRouteAllEnabled")),
            env.value(p.get("outboundVnetRouting")))


@check("VNet integration: none by default; with vnetSubnetId on EP1 the app joins that subnet (virtualNetworkSubnetId) and routes "
       "all outbound traffic into it (siteConfig.vnetRouteAllEnabled, outboundVnetRouting.applicationTraffic); on Y1 the deployment stops")
def _(ctx: Ctx) -> None:
    t = ctx.t
    decl = t.get("parameters", {}).get("vnetSubnetId", {})
    require(decl.get("type") == "string" and decl.get("defaultValue") == "", "parameter vnetSubnetId is not a string defaulting to empty")
    for sku in ("Y1", "EP1"):
        subnet, route_all, routing = site_network(ctx.env(planSku=sku), t)
        require(subnet in (None, ""), f"planSku={sku}, no vnetSubnetId: virtualNetworkSubnetId is {subnet!r}")
        require(route_all in (None, False), f"planSku={sku}, no vnetSubnetId: vnetRouteAllEnabled is {route_all!r}")
        require(not routing or not any(routing.values()), f"planSku={sku}, no vnetSubnetId: outboundVnetRouting is {routing!r}")
    env = ctx.env(planSku="EP1", vnetSubnetId=VNET_SUBNET)
    subnet, route_all, routing = site_network(env, t)
    require(subnet == VNET_SUBNET, f"planSku=EP1, vnetSubnetId set: virtualNetworkSubnetId is {subnet!r}, expected the parameter")
    # Route All: Slack, ARM and storage calls go through the subnet (its NSG / route table / NAT).
    require(route_all is True, f"planSku=EP1, vnetSubnetId set: siteConfig.vnetRouteAllEnabled is {route_all!r}, expected true")
    require(isinstance(routing, dict) and routing.get("applicationTraffic") is True,
            f"planSku=EP1, vnetSubnetId set: outboundVnetRouting is {routing!r}, expected applicationTraffic true (the 2024-11-01 site property)")
    require(app_settings(env, t) == app_settings(ctx.env(planSku="EP1"), t),
            "vnetSubnetId changes the app settings (WEBSITE_VNET_ROUTE_ALL & co.): the site properties are the ones to set")
    site = one(t, "Microsoft.Web/sites")
    require(site.get("apiVersion", "") >= "2021-02-01", f"Microsoft.Web/sites {site.get('apiVersion')} has no virtualNetworkSubnetId")
    # Linux Consumption has no VNet integration: a Y1 deploy with a subnet must fail, not silently
    # create an app outside the VNet.
    try:
        got = site_network(ctx.env(planSku="Y1", vnetSubnetId=VNET_SUBNET), t)
    except EvalError as e:
        require("EP1" in str(e), f"planSku=Y1 with vnetSubnetId fails, but the error does not say EP1 is needed: {e}")
    else:
        raise CheckFailed(f"planSku=Y1 with vnetSubnetId deploys ({got!r}): Linux Consumption has no VNet integration")


@check("example parameters: only declared parameters, every required one present, no real secret")
def _(ctx: Ctx) -> None:
    path = ctx.parameters_path
    if path is None or not path.is_file():
        raise CheckFailed(f"parameters file not found: {path}")
    doc = json.loads(path.read_text())
    given = doc.get("parameters", {})
    declared = ctx.t.get("parameters", {})
    require(set(given) <= set(declared), f"undeclared parameters in {path.name}: {sorted(set(given) - set(declared))}")
    required = {n for n, d in declared.items() if "defaultValue" not in d}
    require(required <= set(given), f"{path.name} lacks required parameters {sorted(required - set(given))}")
    for n, v in given.items():
        require(isinstance(v, dict) and ("value" in v or "reference" in v), f"{path.name}: {n} has no value")
        allowed = declared[n].get("allowedValues")
        if allowed and "value" in v:
            require(v["value"] in allowed, f"{path.name}: {n}={v['value']!r} not in {allowed}")
    text = path.read_text()
    require(not re.search(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}", text), f"{path.name} holds a Slack webhook URL")
    require(not re.search(r"AccountKey=[A-Za-z0-9+/]{20,}", text), f"{path.name} holds a storage key")
    require(not re.search(r"xox[abpr]-[0-9]+-[0-9A-Za-z-]{10,}", text), f"{path.name} holds a Slack token")


def run_checks(path: Path, parameters: Path | None, quiet: bool = False) -> tuple[int, int, list[str]]:
    ctx = Ctx(path, parameters)
    passed, failed, failures = 0, 0, []
    for title, fn in CHECKS:
        try:
            fn(ctx)
        except (CheckFailed, EvalError) as e:
            failed += 1
            failures.append(title)
            if not quiet:
                print(f"FAIL  {title}\n      {e}")
        except Exception as e:  # an unexpected template shape: report, don't crash
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


def _res(t: dict, rtype: str) -> dict:
    return one(t, rtype)


def _role_actions(t: dict, var: str = "roleActions") -> list:
    return t["variables"][var]


def _rd(t: dict, var: str = "roleDefinitionName") -> dict:
    found = [r for r in resources_of(t, "Microsoft.Authorization/roleDefinitions") if r["name"] == f"[variables('{var}')]"]
    assert len(found) == 1, var
    return found[0]


def _ra(t: dict, var: str = "roleDefinitionId") -> dict:
    found = [r for r in resources_of(t, "Microsoft.Authorization/roleAssignments")
             if r["properties"]["roleDefinitionId"] == f"[variables('{var}')]"]
    assert len(found) == 1, var
    return found[0]


def _site(t: dict) -> dict:
    return _res(t, "Microsoft.Web/sites")


def _ag(t: dict, var: str = "actionGroupName") -> dict:
    found = [g for g in resources_of(t, "Microsoft.Insights/actionGroups") if g["name"] == f"[variables('{var}')]"]
    assert len(found) == 1, var
    return found[0]


def _receiver(t: dict, var: str = "actionGroupName") -> dict:
    return _ag(t, var)["properties"]["webhookReceivers"][0]


def _table(t: dict) -> dict:
    return _res(t, TABLE_TYPE)


def _alert(t: dict, op: str) -> dict:
    for a in resources_of(t, "Microsoft.Insights/activityLogAlerts"):
        if any(op in json.dumps(c) or c.get("equals") == f"[variables('{op}')]" for c in a["properties"]["condition"]["allOf"]):
            return a
    raise KeyError(op)


def _set_setting(t: dict, name: str, value: Any) -> None:
    for s in t["variables"]["plainAppSettings"]:
        if s["name"] == name:
            s["value"] = value
            return
    raise KeyError(name)


def _replace_in(obj: dict, key: str, old: str, new: str) -> None:
    assert old in obj[key], (old, obj[key])
    obj[key] = obj[key].replace(old, new)


def _drop_token_condition(t: dict) -> None:
    r = _receiver(t)
    r["serviceUri"] = re.sub(r"if\(empty\(parameters\('webhookToken'\)\), '', (concat\('&token=', uriComponent\(parameters\('webhookToken'\)\)\))\)",
                             r"\1", r["serviceUri"])


def _broken_json(text: str) -> str:
    return text.replace('"resources": [', '"resources": [,', 1)


Mutation = Callable[[dict], Any]

# (description, mutation of the parsed template or of its text, check title expected to fail)
MUTATIONS: list[tuple[str, Mutation | None, Callable[[str], str] | None, str]] = [
    ("not JSON", None, _broken_json,
     "template is valid JSON: deploymentTemplate 2019-04-01 schema, contentVersion, resources"),
    ("resource without apiVersion", lambda t: _ag(t).pop("apiVersion"), None,
     "every resource has type, a stable apiVersion (YYYY-MM-DD) and name"),
    ("preview apiVersion", lambda t: _ag(t).__setitem__("apiVersion", "2024-10-01-preview"), None,
     "every resource has type, a stable apiVersion (YYYY-MM-DD) and name"),
    ("reference to an undeclared parameter", lambda t: t["variables"]["plainAppSettings"].append({"name": "REFLEX_X", "value": "[parameters('notDeclared')]"}), None,
     "parameters: every parameters('x') is declared, every declared parameter is used"),
    ("declared parameter never used", lambda t: t["parameters"].__setitem__("unused", {"type": "string", "defaultValue": ""}), None,
     "parameters: every parameters('x') is declared, every declared parameter is used"),
    ("dry-run off by default", lambda t: t["parameters"]["dryRun"].__setitem__("defaultValue", "false"), None,
     "parameters: defaults for a safe first deploy; secrets are securestring and never output"),
    ("Slack URL as a plain string", lambda t: t["parameters"]["slackWebhookUrl"].__setitem__("type", "string"), None,
     "parameters: defaults for a safe first deploy; secrets are securestring and never output"),
    ("public blob access", lambda t: _res(t, "Microsoft.Storage/storageAccounts")["properties"].__setitem__("allowBlobPublicAccess", True), None,
     "storage account: StorageV2, HTTPS only, TLS1_2, no public blob access"),
    ("TLS 1.0 on storage", lambda t: _res(t, "Microsoft.Storage/storageAccounts")["properties"].__setitem__("minimumTlsVersion", "TLS1_0"), None,
     "storage account: StorageV2, HTTPS only, TLS1_2, no public blob access"),
    ("Windows plan", lambda t: _res(t, "Microsoft.Web/serverfarms")["properties"].__setitem__("reserved", False), None,
     "plan: Linux (reserved), Y1/Dynamic by default, EP1/ElasticPremium when asked"),
    ("identity dropped", lambda t: _site(t).pop("identity"), None,
     "function app: functionapp,linux on the plan, SystemAssigned identity, httpsOnly, TLS 1.2, FTPS disabled"),
    ("user-assigned identity only", lambda t: _site(t).__setitem__("identity", {"type": "UserAssigned"}), None,
     "function app: functionapp,linux on the plan, SystemAssigned identity, httpsOnly, TLS 1.2, FTPS disabled"),
    ("HTTP allowed", lambda t: _site(t)["properties"].__setitem__("httpsOnly", False), None,
     "function app: functionapp,linux on the plan, SystemAssigned identity, httpsOnly, TLS 1.2, FTPS disabled"),
    ("FTPS allowed", lambda t: _site(t)["properties"]["siteConfig"].__setitem__("ftpsState", "AllAllowed"), None,
     "function app: functionapp,linux on the plan, SystemAssigned identity, httpsOnly, TLS 1.2, FTPS disabled"),
    ("worker runtime python", lambda t: _set_setting(t, "FUNCTIONS_WORKER_RUNTIME", "python"), None,
     "app settings: ~4, FUNCTIONS_WORKER_RUNTIME=Custom, AzureWebJobsStorage from listKeys, REFLEX_* from parameters"),
    ("exempt tag hard-coded", lambda t: _set_setting(t, "REFLEX_EXEMPT_TAG", "reflex:exempt=true"), None,
     "app settings: ~4, FUNCTIONS_WORKER_RUNTIME=Custom, AzureWebJobsStorage from listKeys, REFLEX_* from parameters"),
    ("Azure Files setting on Consumption too",
     lambda t: _replace_in(_site(t)["properties"]["siteConfig"], "appSettings", "if(variables('isPremium'), createArray(", "if(true(), createArray("), None,
     "app settings: ~4, FUNCTIONS_WORKER_RUNTIME=Custom, AzureWebJobsStorage from listKeys, REFLEX_* from parameters"),
    ("role action '*'", lambda t: _role_actions(t).append("*"), None,
     "custom role: exactly the four NSG/operation actions, no wildcard, assignable only in this resource group"),
    ("role action Microsoft.Network/*", lambda t: _role_actions(t).append("Microsoft.Network/*"), None,
     "custom role: exactly the four NSG/operation actions, no wildcard, assignable only in this resource group"),
    ("role may write rules", lambda t: _role_actions(t).append(RULE_WRITE), None,
     "custom role: exactly the four NSG/operation actions, no wildcard, assignable only in this resource group"),
    ("role assignable in the subscription",
     lambda t: _rd(t)["properties"].__setitem__("assignableScopes", ["[subscription().id]"]), None,
     "custom role: exactly the four NSG/operation actions, no wildcard, assignable only in this resource group"),
    ("role assigned to another principal",
     lambda t: _ra(t)["properties"].__setitem__(
         "principalId", "[reference(variables('storageId'), '2025-01-01', 'full').identity.principalId]"), None,
     "role assignment: the custom role to the app's system-assigned principal (ServicePrincipal), resource-group scope"),
    ("built-in Contributor assigned instead",
     lambda t: _ra(t)["properties"].__setitem__(
         "roleDefinitionId", "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b24988ac-6180-42a0-ab88-20f7382dd24c')]"), None,
     "role assignment: the custom role to the app's system-assigned principal (ServicePrincipal), resource-group scope"),
    ("route changed", lambda t: t["variables"].__setitem__("functionName", "close-open-port"), None,
     "action group: Global, one webhook (common alert schema) to https://<app>/api/close-open-ports?code=<host key>[&token=]"),
    ("legacy alert schema", lambda t: _receiver(t).__setitem__("useCommonAlertSchema", False), None,
     "action group: Global, one webhook (common alert schema) to https://<app>/api/close-open-ports?code=<host key>[&token=]"),
    ("function key not URL-encoded",
     lambda t: _replace_in(_receiver(t), "serviceUri", "uriComponent(listKeys(", "string(listKeys("), None,
     "action group: Global, one webhook (common alert schema) to https://<app>/api/close-open-ports?code=<host key>[&token=]"),
    ("token appended even when empty", _drop_token_condition, None,
     "action group: Global, one webhook (common alert schema) to https://<app>/api/close-open-ports?code=<host key>[&token=]"),
    ("alert on Started", lambda t: _alert(t, "ruleWriteOperation")["properties"]["condition"]["allOf"][2].__setitem__("equals", "Started"), None,
     "activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, this RG, to the action group"),
    ("rule-write alert watches deletes",
     lambda t: t["variables"].__setitem__("ruleWriteOperation", "Microsoft.Network/networkSecurityGroups/securityRules/delete"), None,
     "activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, this RG, to the action group"),
    ("NSG-write alert removed",
     lambda t: t["resources"].remove(_alert(t, "nsgWriteOperation")), None,
     "activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, this RG, to the action group"),
    ("alert on the whole subscription",
     lambda t: _alert(t, "nsgWriteOperation")["properties"].__setitem__("scopes", ["[subscription().id]"]), None,
     "activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, this RG, to the action group"),
    ("principal id output dropped", lambda t: t["outputs"].pop("principalId"), None,
     "outputs: function app name, principal id, webhook URLs without the key"),
    ("webhook URL output with the key",
     lambda t: t["outputs"]["webhookUrl"].__setitem__("value", _receiver(t)["serviceUri"]), None,
     "parameters: defaults for a safe first deploy; secrets are securestring and never output"),
]

T_ALERT_AG = ("alert-to-slack action group <app>-alerts-ag: Global, one webhook (common alert schema) to "
              "https://<app>/api/alert-to-slack?code=<host key>[&token=], id in the outputs")
T_TABLE = "alert-to-slack table: tableServices/tables in the app's storage account, named by alertTableName = REFLEX_AZURE_TABLE"
T_SETTINGS = "app settings: ~4, FUNCTIONS_WORKER_RUNTIME=Custom, AzureWebJobsStorage from listKeys, REFLEX_* from parameters"
T_SAFE = "parameters: defaults for a safe first deploy; secrets are securestring and never output"
T_ALERTS = ("activity log alerts: Administrative securityRules/write and networkSecurityGroups/write, status Succeeded, "
            "this RG, to the action group")
T_OUTPUTS = "outputs: function app name, principal id, webhook URLs without the key"


def _drop_setting(t: dict, name: str) -> None:
    t["variables"]["plainAppSettings"][:] = [s for s in t["variables"]["plainAppSettings"] if s["name"] != name]


MUTATIONS += [
    ("alert-to-slack receiver on the close-open-ports route",
     lambda t: _replace_in(_receiver(t, "alertsActionGroupName"), "serviceUri", "variables('alertFunctionName')", "variables('functionName')"), None, T_ALERT_AG),
    ("alert-to-slack receiver with the legacy schema",
     lambda t: _receiver(t, "alertsActionGroupName").__setitem__("useCommonAlertSchema", False), None, T_ALERT_AG),
    ("alert-to-slack receiver without the function key",
     lambda t: _receiver(t, "alertsActionGroupName").__setitem__(
         "serviceUri", "[concat('https://', reference(variables('appId'), '2024-11-01').defaultHostName, '/api/', variables('alertFunctionName'))]"), None, T_ALERT_AG),
    ("alert-to-slack receiver sends the token unencoded",
     lambda t: _replace_in(_receiver(t, "alertsActionGroupName"), "serviceUri", "concat('&token=', uriComponent(parameters('webhookToken')))",
                           "concat('&token=', parameters('webhookToken'))"), None, T_ALERT_AG),
    ("alert-to-slack action group id not output", lambda t: t["outputs"].pop("alertsActionGroupId"), None, T_ALERT_AG),
    ("alert-to-slack action group removed", lambda t: t["resources"].remove(_ag(t, "alertsActionGroupName")), None, T_ALERT_AG),
    ("both action groups share a short name",
     lambda t: _ag(t, "alertsActionGroupName")["properties"].__setitem__("groupShortName", "reflex"), None, T_ALERT_AG),
    ("NSG alerts also sent to alert-to-slack",
     lambda t: _alert(t, "nsgWriteOperation")["properties"]["actions"]["actionGroups"].append(
         {"actionGroupId": "[variables('alertsActionGroupId')]"}), None, T_ALERTS),
    ("table removed", lambda t: t["resources"].remove(_table(t)), None, T_TABLE),
    ("table in another storage account",
     lambda t: _table(t).__setitem__("name", "[concat('otheraccount', '/default/', parameters('alertTableName'))]"), None, T_TABLE),
    ("table name hard-coded", lambda t: _table(t).__setitem__("name", "[concat(parameters('storageAccountName'), '/default/reflexalerts')]"), None, T_TABLE),
    ("table without dependsOn on the account", lambda t: _table(t).pop("dependsOn"), None, T_TABLE),
    ("alertTableName without length limits", lambda t: t["parameters"]["alertTableName"].pop("maxLength"), None, T_TABLE),
    ("table service not encrypted",
     lambda t: _res(t, "Microsoft.Storage/storageAccounts")["properties"]["encryption"]["services"]["table"].__setitem__("enabled", False), None, T_TABLE),
    ("REFLEX_AZURE_TABLE dropped", lambda t: _drop_setting(t, "REFLEX_AZURE_TABLE"), None, T_SETTINGS),
    ("REFLEX_SLACK_ROUTES hard-coded", lambda t: _set_setting(t, "REFLEX_SLACK_ROUTES", "severity=critical => #oncall"), None, T_SETTINGS),
    ("REFLEX_SLACK_CHANNEL fed by slackRoutes", lambda t: _set_setting(t, "REFLEX_SLACK_CHANNEL", "[parameters('slackRoutes')]"), None,
     "parameters: every parameters('x') is declared, every declared parameter is used"),
    ("bot token as a plain string", lambda t: t["parameters"]["slackBotToken"].__setitem__("type", "string"), None, T_SAFE),
    ("bot token required (no default)", lambda t: t["parameters"]["slackBotToken"].pop("defaultValue"), None, T_SAFE),
    ("bot token output", lambda t: t["outputs"].__setitem__("botToken", {"type": "string", "value": "[parameters('slackBotToken')]"}), None, T_SAFE),
    ("bot token not in the app settings",
     lambda t: _replace_in(_site(t)["properties"]["siteConfig"], "appSettings",
                           ", createObject('name', 'REFLEX_SLACK_BOT_TOKEN', 'value', parameters('slackBotToken'))", ""), None,
     "parameters: every parameters('x') is declared, every declared parameter is used"),
    ("alert webhook URL output dropped", lambda t: t["outputs"].pop("alertWebhookUrl"), None, T_OUTPUTS),
]


T_DRAIN_ROLE = ("drain-before-maintenance custom role: exactly the scheduled-event acknowledge, VM / scale-set / NIC reads, backend-pool read + write "
                "and operation-status actions; no wildcard; assignable only in this resource group")
T_DRAIN_RA = "drain-before-maintenance role assignment: the drain role to the app's system-assigned principal (ServicePrincipal), resource-group scope"
T_DRAIN_SETTINGS = ("drain-before-maintenance app settings: LB pools, VM scope (default this resource group), policy, opt-in tag, max concurrent (1-1000); "
                    "account-wide cap (0 = empty, no cap; 1-1000), acknowledge-when-nothing ('true' / 'false', default false); "
                    "state in the REFLEX_AZURE_TABLE table, no DynamoDB")
T_RA = "role assignment: the custom role to the app's system-assigned principal (ServicePrincipal), resource-group scope"
T_PARAMS_USED = "parameters: every parameters('x') is declared, every declared parameter is used"
SCHEDULED_EVENTS_CONTRIBUTOR = "b67fe603-310e-4889-b9ee-8257d09d353d"  # built-in "Scheduled Events Contributor"


def _drain_actions(t: dict) -> list:
    return _role_actions(t, "drainRoleActions")


def _drop_drain_role(t: dict) -> None:
    t["resources"].remove(_rd(t, "drainRoleDefinitionName"))
    t["resources"].remove(_ra(t, "drainRoleDefinitionId"))


MUTATIONS += [
    # role
    ("drain role action '*'", lambda t: _drain_actions(t).append("*"), None, T_DRAIN_ROLE),
    ("drain role action Microsoft.Network/*", lambda t: _drain_actions(t).append("Microsoft.Network/*"), None, T_DRAIN_ROLE),
    ("drain role may write VMs", lambda t: _drain_actions(t).append("Microsoft.Compute/virtualMachines/write"), None, T_DRAIN_ROLE),
    ("drain role may rewrite whole load balancers", lambda t: _drain_actions(t).append("Microsoft.Network/loadBalancers/write"), None, T_DRAIN_ROLE),
    ("drain role may delete NSG rules (close-open-ports' action)",
     lambda t: _drain_actions(t).append("Microsoft.Network/networkSecurityGroups/securityRules/delete"), None, T_DRAIN_ROLE),
    ("drain role cannot acknowledge", lambda t: _drain_actions(t).remove(SCHEDULED_EVENT_ACK), None, T_DRAIN_ROLE),
    ("drain role cannot write backend pools",
     lambda t: _drain_actions(t).remove("Microsoft.Network/loadBalancers/backendAddressPools/write"), None, T_DRAIN_ROLE),
    ("drain role with a data action",
     lambda t: _rd(t, "drainRoleDefinitionName")["properties"]["permissions"][0].__setitem__(
         "dataActions", ["Microsoft.Compute/virtualMachines/login/action"]), None, T_DRAIN_ROLE),
    ("drain role assignable in the subscription",
     lambda t: _rd(t, "drainRoleDefinitionName")["properties"].__setitem__("assignableScopes", ["[subscription().id]"]), None, T_DRAIN_ROLE),
    ("drain role named like close-open-ports' role (overwrites it)",
     lambda t: t["variables"].__setitem__("drainRoleDefinitionName", t["variables"]["roleDefinitionName"]), None, T_DRAIN_ROLE),
    ("drain role and its assignment removed", _drop_drain_role, None, T_DRAIN_ROLE),
    ("drain role name without the resource group",
     lambda t: _rd(t, "drainRoleDefinitionName")["properties"].__setitem__("roleName", "Reflex drain-before-maintenance"), None, T_DRAIN_ROLE),
    # role assignment
    ("drain assignment removed", lambda t: t["resources"].remove(_ra(t, "drainRoleDefinitionId")), None, T_DRAIN_RA),
    ("drain role assigned to another principal",
     lambda t: _ra(t, "drainRoleDefinitionId")["properties"].__setitem__(
         "principalId", "[reference(variables('storageId'), '2025-01-01', 'full').identity.principalId]"), None, T_DRAIN_RA),
    ("drain assignment of close-open-ports' role",
     lambda t: _ra(t, "drainRoleDefinitionId")["properties"].__setitem__("roleDefinitionId", "[variables('roleDefinitionId')]"), None, T_DRAIN_RA),
    ("built-in Scheduled Events Contributor assigned instead of the drain role",
     lambda t: _ra(t, "drainRoleDefinitionId")["properties"].__setitem__(
         "roleDefinitionId", f"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{SCHEDULED_EVENTS_CONTRIBUTOR}')]"), None, T_RA),
    ("drain assignment at subscription scope",
     lambda t: _ra(t, "drainRoleDefinitionId").__setitem__("scope", "[subscription().id]"), None, T_DRAIN_RA),
    ("drain assignment to a user", lambda t: _ra(t, "drainRoleDefinitionId")["properties"].__setitem__("principalType", "User"), None, T_DRAIN_RA),
    ("drain assignment before the app exists", lambda t: _ra(t, "drainRoleDefinitionId").__setitem__(
        "dependsOn", ["[resourceId('Microsoft.Authorization/roleDefinitions', variables('drainRoleDefinitionName'))]"]), None, T_DRAIN_RA),
    # app settings
    ("REFLEX_AZURE_VM_SCOPE hard-coded", lambda t: _set_setting(t, "REFLEX_AZURE_VM_SCOPE", "/subscriptions/x/resourceGroups/y"), None, T_SETTINGS),
    ("REFLEX_DRAIN_TAG dropped", lambda t: _drop_setting(t, "REFLEX_DRAIN_TAG"), None, T_SETTINGS),
    ("REFLEX_AZURE_LB_POOLS fed by drainPolicy",
     lambda t: _set_setting(t, "REFLEX_AZURE_LB_POOLS", "[parameters('drainPolicy')]"), None, T_PARAMS_USED),
    ("REFLEX_DRAIN_MAX_CONCURRENT as a number (app settings are strings)",
     lambda t: _set_setting(t, "REFLEX_DRAIN_MAX_CONCURRENT", "[parameters('drainMaxConcurrent')]"), None, T_SETTINGS),
    ("drainVmScope defaults to the subscription",
     lambda t: t["parameters"]["drainVmScope"].__setitem__("defaultValue", "[subscription().id]"), None, T_DRAIN_SETTINGS),
    ("drainMaxConcurrent allows 0", lambda t: t["parameters"]["drainMaxConcurrent"].__setitem__("minValue", 0), None, T_DRAIN_SETTINGS),
    ("drainTag default without a value", lambda t: t["parameters"]["drainTag"].__setitem__("defaultValue", "reflex:drain"), None, T_DRAIN_SETTINGS),
    # the account-wide cap and acknowledge-when-nothing
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL '0' when there is no cap (the function rejects 0)",
     lambda t: _set_setting(t, "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "[string(parameters('drainMaxConcurrentGlobal'))]"), None, T_DRAIN_SETTINGS),
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL always empty",
     lambda t: _set_setting(t, "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL", "[if(equals(parameters('drainMaxConcurrentGlobal'), 0), '', '')]"), None,
     T_SETTINGS),
    ("REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL dropped", lambda t: _drop_setting(t, "REFLEX_DRAIN_MAX_CONCURRENT_GLOBAL"), None, T_PARAMS_USED),
    ("drainMaxConcurrentGlobal allows 5000", lambda t: t["parameters"]["drainMaxConcurrentGlobal"].__setitem__("maxValue", 5000), None, T_DRAIN_SETTINGS),
    ("drainMaxConcurrentGlobal as a string", lambda t: t["parameters"]["drainMaxConcurrentGlobal"].__setitem__("type", "string"), None, T_DRAIN_SETTINGS),
    ("drainMaxConcurrentGlobal defaults to a cap of 1",
     lambda t: t["parameters"]["drainMaxConcurrentGlobal"].__setitem__("defaultValue", 1), None, T_SAFE),
    ("drainMaxConcurrentGlobal's description without its variable",
     lambda t: t["parameters"]["drainMaxConcurrentGlobal"]["metadata"].__setitem__("description", "Drains at once in the subscription."), None,
     T_DRAIN_SETTINGS),
    ("REFLEX_DRAIN_ACK_WHEN_NOTHING from string() ('True' / 'False')",
     lambda t: _set_setting(t, "REFLEX_DRAIN_ACK_WHEN_NOTHING", "[string(parameters('drainAckWhenNothing'))]"), None, T_DRAIN_SETTINGS),
    ("REFLEX_DRAIN_ACK_WHEN_NOTHING always 'true'",
     lambda t: _set_setting(t, "REFLEX_DRAIN_ACK_WHEN_NOTHING", "[if(parameters('drainAckWhenNothing'), 'true', 'true')]"), None, T_DRAIN_SETTINGS),
    ("REFLEX_DRAIN_ACK_WHEN_NOTHING dropped", lambda t: _drop_setting(t, "REFLEX_DRAIN_ACK_WHEN_NOTHING"), None, T_PARAMS_USED),
    ("drainAckWhenNothing on by default", lambda t: t["parameters"]["drainAckWhenNothing"].__setitem__("defaultValue", True), None, T_SAFE),
    ("drainAckWhenNothing as a string 'false'",
     lambda t: t["parameters"]["drainAckWhenNothing"].update({"type": "string", "defaultValue": "false"}), None, T_SAFE),
    ("REFLEX_DYNAMODB_TABLE set on Azure",
     lambda t: t["variables"]["plainAppSettings"].append({"name": "REFLEX_DYNAMODB_TABLE", "value": "reflex"}), None, T_DRAIN_SETTINGS),
    ("drain webhook URL output dropped", lambda t: t["outputs"].pop("drainWebhookUrl"), None, T_OUTPUTS),
]

T_VNET = ("VNet integration: none by default; with vnetSubnetId on EP1 the app joins that subnet (virtualNetworkSubnetId) and routes "
          "all outbound traffic into it (siteConfig.vnetRouteAllEnabled, outboundVnetRouting.applicationTraffic); on Y1 the deployment stops")

MUTATIONS += [
    ("vnetSubnetId ignored (no virtualNetworkSubnetId)", lambda t: _site(t)["properties"].pop("virtualNetworkSubnetId"), None, T_VNET),
    ("subnet hard-coded",
     lambda t: _site(t)["properties"].__setitem__("virtualNetworkSubnetId", "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/virtualNetworks/v/subnets/s"),
     None, T_VNET),
    ("Y1 with a subnet deploys without integration",
     lambda t: t["variables"].__setitem__("vnetSubnetIdOrNull", "[if(and(variables('inVnet'), variables('isPremium')), parameters('vnetSubnetId'), json('null'))]"),
     None, T_VNET),
    ("Y1 with a subnet tries the integration anyway",
     lambda t: t["variables"].__setitem__("vnetSubnetIdOrNull", "[if(variables('inVnet'), parameters('vnetSubnetId'), json('null'))]"), None, T_VNET),
    ("Route All off", lambda t: _site(t)["properties"]["siteConfig"].__setitem__("vnetRouteAllEnabled", False), None, T_VNET),
    ("Route All always on", lambda t: _site(t)["properties"]["siteConfig"].__setitem__("vnetRouteAllEnabled", True), None, T_VNET),
    ("outboundVnetRouting dropped", lambda t: _site(t)["properties"].pop("outboundVnetRouting"), None, T_VNET),
    ("Route All as an app setting instead",
     lambda t: t["variables"]["plainAppSettings"].append({"name": "WEBSITE_VNET_ROUTE_ALL", "value": "[if(variables('inVnet'), '1', '0')]"}), None, T_VNET),
    ("vnetSubnetId required (no default)", lambda t: t["parameters"]["vnetSubnetId"].pop("defaultValue"), None, T_SAFE),
]

def self_test(path: Path, parameters: Path | None) -> int:
    text = path.read_text()
    source = json.loads(text)
    results: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="reflex-check-azure-") as tmp:
        pristine = Path(tmp) / "pristine.json"
        pristine.write_text(json.dumps(source, indent=1))
        p, f, failures = run_checks(pristine, parameters, quiet=True)
        results.append(("pristine copy passes", f == 0, f"failed: {failures}" if f else f"{p} checks passed"))

        for i, (what, mutate, mutate_text, expected) in enumerate(MUTATIONS):
            bad = Path(tmp) / f"broken-{i}.json"
            if mutate_text is not None:
                broken_text = mutate_text(text)
                if broken_text == text:
                    results.append((f"broken copy is rejected: {what}", False, "the mutation changed nothing"))
                    continue
                bad.write_text(broken_text)
            else:
                broken = copy.deepcopy(source)
                try:
                    mutate(broken)
                except Exception as e:  # the template no longer has the shape the mutation expects
                    results.append((f"broken copy is rejected: {what}", False, f"mutation failed: {type(e).__name__}: {e}"))
                    continue
                if broken == source:
                    results.append((f"broken copy is rejected: {what}", False, "the mutation changed nothing"))
                    continue
                bad.write_text(json.dumps(broken, indent=1))
            cmd = [sys.executable, __file__, "--template", str(bad)]
            if parameters is not None:
                cmd += ["--parameters", str(parameters)]
            results.append(rejected(cmd, expected, what))

    return report(results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="template to check (default: %(default)s)")
    ap.add_argument("--parameters", type=Path, default=DEFAULT_PARAMETERS, help="example parameters file (default: %(default)s)")
    ap.add_argument("--self-test", action="store_true", help="check that broken copies of the template are rejected")
    args = ap.parse_args()
    path = args.template.resolve()
    if not path.is_file():
        print(f"template not found: {path}", file=sys.stderr)
        return 2
    parameters = args.parameters.resolve() if args.parameters else None
    if args.self_test:
        return self_test(path, parameters)
    print(f"checking {path}")
    passed, failed, _ = run_checks(path, parameters)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
