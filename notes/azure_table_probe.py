#!/usr/bin/env python3
"""Probe the Azure Table REST protocol against Azurite, standard library only.

The probe talks to the Table service the way a production client would:
Shared Key (Lite) authorization, JSON payloads, optimistic concurrency with
ETags. Every observation is an assertion, so exit status 0 means that each
statement in notes/azure-table-protocol.md still holds for this Azurite.

Usage:
    python3 notes/azure_table_probe.py                 # spawns azurite-table itself
    python3 notes/azure_table_probe.py --endpoint http://127.0.0.1:10002/devstoreaccount1
    python3 notes/azure_table_probe.py -v               # print every exchange

When it spawns Azurite, it runs
    <repo>/.tools/node_modules/.bin/azurite-table --tableHost 127.0.0.1
        --tablePort <free port> --inMemoryPersistence --silent --disableTelemetry
from a temporary working directory, and stops that process (by its pid) at
the end. No --loose and no --skipApiVersionCheck, so Azurite stays strict.
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ACCOUNT = "devstoreaccount1"
KEY_B64 = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
KEY = base64.b64decode(KEY_B64)
API_VERSION = "2019-02-02"  # the default of azure-data-tables (Python); 2020-12-06 also verified below
NOMETA = "application/json;odata=nometadata"
MINIMAL = "application/json;odata=minimalmetadata"

VERBOSE = False
STRICT = True  # we spawned Azurite ourselves, without --skipApiVersionCheck
BASE = ""  # scheme://host:port
PREFIX = ""  # path of the endpoint, "/devstoreaccount1" for Azurite, "" in production


# --------------------------------------------------------------------------- signing


def rfc1123_now(offset_seconds=0):
    return email.utils.formatdate(time.time() + offset_seconds, usegmt=True)


def canonicalized_resource(wire_path, query=""):
    """'/' + account + the URL path exactly as sent (still percent-encoded),
    plus '?comp=<v>' when the query has comp. No other query parameter."""
    res = "/" + ACCOUNT + wire_path
    for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if k.lower() == "comp":
            res += "?comp=" + v
    return res


def sign(string_to_sign, key=KEY):
    mac = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def lite_auth(date, resource, key=KEY):
    return "SharedKeyLite %s:%s" % (ACCOUNT, sign(date + "\n" + resource, key))


def full_auth(method, content_md5, content_type, date, resource, key=KEY):
    sts = "\n".join([method, content_md5, content_type, date, resource])
    return "SharedKey %s:%s" % (ACCOUNT, sign(sts, key))


# --------------------------------------------------------------------------- transport


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def h(self, name):
        return self.headers.get(name.lower())

    def error_code(self):
        if isinstance(self.json, dict) and "odata.error" in self.json:
            return self.json["odata.error"]["code"]
        return None

    def error_message(self):
        return self.json["odata.error"]["message"]["value"]


def send(method, resource, body=None, headers=None, *, scheme="lite", sign_resource=None,
         date=None, key=KEY, omit=(), accept=NOMETA, version=API_VERSION, prefix=None, host=None):
    """resource: path below the endpoint, already percent-encoded, may carry ?query.
    prefix/host: override the endpoint path and the Host header (production-style URL test)."""
    path, _, query = resource.partition("?")
    wire_path = (PREFIX if prefix is None else prefix) + path
    url = BASE + wire_path + ("?" + query if query else "")
    date = date or rfc1123_now()
    h = {
        "x-ms-date": date,
        "x-ms-version": version,
        "DataServiceVersion": "3.0;NetFx",
        "MaxDataServiceVersion": "3.0;NetFx",
        "Accept": accept,
    }
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        h["Content-Type"] = "application/json"
    if host:
        h["Host"] = host
    h.update(headers or {})
    res = sign_resource if sign_resource is not None else canonicalized_resource(wire_path, query)
    if scheme == "lite":
        h["Authorization"] = lite_auth(date, res, key)
    elif scheme == "full":
        h["Authorization"] = full_auth(method, h.get("Content-MD5", ""), h.get("Content-Type", ""),
                                       date, res, key)
    for name in omit:
        h.pop(name, None)
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            resp = Resp(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        resp = Resp(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode("utf-8"))
    if VERBOSE:
        print("\n>>> %s %s" % (method, wire_path + ("?" + query if query else "")))
        for k, v in h.items():
            print("    %s: %s" % (k, v))
        if data:
            print("    " + data.decode("utf-8"))
        print("    [signed] %r" % res)
        print("<<< %d" % resp.status)
        for k, v in sorted(resp.headers.items()):
            print("    %s: %s" % (k, v))
        if resp.raw:
            print("    " + resp.raw)
    return resp


CHECKS = 0


def check(cond, what, resp=None):
    global CHECKS
    if not cond:
        detail = ""
        if resp is not None:
            detail = "\n  status=%s headers=%s\n  body=%s" % (resp.status, resp.headers, resp.raw)
        raise AssertionError(what + detail)
    CHECKS += 1


def expect_error(resp, status, code, what):
    check(resp.status == status, "%s: status %s, expected %s" % (what, resp.status, status), resp)
    check(resp.error_code() == code, "%s: code %r, expected %r" % (what, resp.error_code(), code), resp)
    check(resp.h("x-ms-error-code") == code, "%s: x-ms-error-code header" % what, resp)
    msg = resp.error_message()
    check("\nRequestId:" in msg and "\nTime:" in msg, "%s: message carries RequestId/Time" % what, resp)
    check(resp.json["odata.error"]["message"]["lang"] == "en-US", "%s: lang" % what, resp)


def expect_auth_error(resp, what):
    """Azurite answers auth failures in XML whatever the Accept header says."""
    check(resp.status == 403, "%s: status %s" % (what, resp.status), resp)
    check(resp.h("x-ms-error-code") == "AuthorizationFailure", "%s: x-ms-error-code" % what, resp)
    check(resp.h("content-type") == "application/xml", "%s: XML error body" % what, resp)
    check("<Code>AuthorizationFailure</Code>" in resp.raw, "%s: <Code>" % what, resp)


def entity_path(table, pk, rk):
    return "/%s(PartitionKey='%s',RowKey='%s')" % (table, quote_key(pk), quote_key(rk))


def quote_key(k):
    """OData string literal (double the single quote), then percent-encode every
    byte outside the unreserved set (what azure-data-tables does)."""
    return urllib.parse.quote(k.replace("'", "''"), safe="")


# --------------------------------------------------------------------------- the probe


def probe():
    table = "probe" + uuid.uuid4().hex[:10]

    # ---- Authorization -----------------------------------------------------
    r = send("GET", "/Tables")
    check(r.status == 200 and isinstance(r.json.get("value"), list), "Query Tables, SharedKeyLite", r)
    check(r.h("content-type").startswith("application/json;odata=nometadata"), "json content type", r)
    check(r.h("x-ms-version") == "2025-11-05", "Azurite answers with its own x-ms-version", r)
    check(r.h("server").startswith("Azurite-Table/"), "server header", r)
    # path-style: the account must appear twice; once is rejected
    r = send("GET", "/Tables", sign_resource="/%s/Tables" % ACCOUNT)
    expect_auth_error(r, "account once in CanonicalizedResource")
    # full SharedKey (Table flavour) is accepted too
    r = send("GET", "/Tables", scheme="full")
    check(r.status == 200, "Query Tables, SharedKey (VERB/MD5/CT/Date/Resource)", r)
    # no Authorization at all
    r = send("GET", "/Tables", scheme="none")
    expect_auth_error(r, "anonymous")
    # wrong key
    r = send("GET", "/Tables", key=b"not-the-key")
    expect_auth_error(r, "wrong key")
    # Lite with only Date (no x-ms-date) works
    d = rfc1123_now()
    r = send("GET", "/Tables", headers={"Date": d}, date=d, omit=("x-ms-date",))
    check(r.status == 200, "Date header instead of x-ms-date", r)
    # Azurite does not enforce the 15 minute clock skew that Azure enforces
    r = send("GET", "/Tables", date=rfc1123_now(-3600))
    check(r.status == 200, "Azurite accepts a date one hour old (Azure would 403)", r)
    # the query string is not signed (only comp would be)
    r = send("GET", "/Tables?$filter=TableName%20eq%20'nothing'&timeout=30")
    check(r.status == 200 and r.json == {"value": []}, "query string not in CanonicalizedResource", r)
    # versions: both 2019-02-02 and 2020-12-06 accepted; an unknown one rejected
    r = send("GET", "/Tables", version="2020-12-06")
    check(r.status == 200, "x-ms-version 2020-12-06", r)
    r = send("GET", "/Tables", version="2099-01-01")
    if STRICT:
        check(r.status == 400, "unknown x-ms-version rejected without --skipApiVersionCheck", r)
        check(r.h("x-ms-error-code") == "InvalidHeaderValue", "unknown version code", r)
    # production-style addressing: account in the host name, path without it,
    # CanonicalizedResource then has the account once, exactly as in Azure
    netloc = urllib.parse.urlsplit(BASE).netloc
    port = netloc.rsplit(":", 1)[1]
    r = send("GET", "/Tables", prefix="", host="%s.localhost:%s" % (ACCOUNT, port))
    check(r.status == 200, "production-style Host devstoreaccount1.localhost, resource /devstoreaccount1/Tables", r)
    r = send("GET", "/Tables", prefix="", host="%s.localhost:%s" % (ACCOUNT, port),
             sign_resource="/%s/%s/Tables" % (ACCOUNT, ACCOUNT))
    expect_auth_error(r, "production-style URL signed with the account twice")
    r = send("GET", "/Tables", omit=("x-ms-version",))
    check(r.status == 200, "Azurite tolerates a missing x-ms-version", r)
    r = send("GET", "/Tables", omit=("DataServiceVersion", "MaxDataServiceVersion"))
    check(r.status == 200, "Azurite tolerates missing DataServiceVersion headers", r)

    # ---- Create table ------------------------------------------------------
    r = send("POST", "/Tables", {"TableName": table}, headers={"Prefer": "return-no-content"})
    check(r.status == 204, "create table with return-no-content", r)
    check(r.h("preference-applied") == "return-no-content", "preference-applied", r)
    r = send("POST", "/Tables", {"TableName": table}, headers={"Prefer": "return-no-content"})
    expect_error(r, 409, "TableAlreadyExists", "create existing table")
    check(r.error_message().startswith("The table specified already exists."), "409 message", r)
    t2 = table + "b"
    r = send("POST", "/Tables", {"TableName": t2})  # no Prefer -> 201 with body
    check(r.status == 201 and r.json == {"TableName": t2}, "create table default 201 + body", r)
    r = send("DELETE", "/Tables('%s')" % t2)
    check(r.status == 204, "delete table", r)
    r = send("DELETE", "/Tables('%s')" % t2)
    expect_error(r, 404, "ResourceNotFound", "delete missing table")
    r = send("POST", "/Tables", {"TableName": "1bad-name"})
    check(r.status == 400, "invalid table name", r)
    # Azurite quirk: empty code and no x-ms-error-code header
    check(r.error_code() == "" and r.h("x-ms-error-code") is None
          and r.error_message().startswith("The specified resource name contains invalid characters."),
          "invalid table name: empty odata.error code", r)

    # ---- Insert ------------------------------------------------------------
    pk, rk = "thread", "msg-1"
    ent = {"PartitionKey": pk, "RowKey": rk, "Body": "hello", "N": 1}
    r = send("POST", "/" + table, ent, headers={"Prefer": "return-no-content"})
    check(r.status == 204, "insert with return-no-content", r)
    check(r.h("preference-applied") == "return-no-content", "insert preference-applied", r)
    etag1 = r.h("etag")
    check(etag1 and etag1.startswith('W/"datetime\''), "insert returns weak ETag W/\"datetime'...'\"", r)
    r = send("POST", "/" + table, ent, headers={"Prefer": "return-no-content"})
    expect_error(r, 409, "EntityAlreadyExists", "duplicate insert")
    check(r.error_message().startswith("The specified entity already exists."), "409 entity message", r)
    r = send("POST", "/" + table, {"PartitionKey": pk, "RowKey": "msg-0", "X": 1})
    check(r.status == 201 and r.json["RowKey"] == "msg-0" and "Timestamp" in r.json,
          "insert without Prefer -> 201 with entity body", r)
    r = send("POST", "/nosuchtable" + table, ent, headers={"Prefer": "return-no-content"})
    expect_error(r, 404, "TableNotFound", "insert into missing table")

    # ---- Get ---------------------------------------------------------------
    r = send("GET", entity_path(table, pk, rk))
    check(r.status == 200, "get entity", r)
    check(r.h("etag") == etag1, "GET ETag equals insert ETag", r)
    check(r.json["PartitionKey"] == pk and r.json["RowKey"] == rk and r.json["Body"] == "hello"
          and r.json["N"] == 1 and "Timestamp" in r.json, "entity body (nometadata)", r)
    check(not any("@odata" in k or k.startswith("odata.") for k in r.json), "nometadata has no annotations", r)
    r = send("GET", entity_path(table, pk, rk), accept=MINIMAL)
    check(r.status == 200 and "odata.metadata" in r.json and r.json.get("odata.etag") == etag1,
          "minimalmetadata carries odata.metadata and odata.etag", r)
    r = send("GET", entity_path(table, pk, "missing"))
    expect_error(r, 404, "ResourceNotFound", "get missing entity")
    r = send("GET", entity_path("nosuchtable" + table, pk, rk))
    check(r.status == 404, "get entity in missing table", r)

    # ---- Update (replace) --------------------------------------------------
    path = entity_path(table, pk, rk)
    r = send("PUT", path, {"PartitionKey": pk, "RowKey": rk, "Body": "v2"}, headers={"If-Match": etag1})
    check(r.status == 204, "replace with If-Match etag", r)
    etag2 = r.h("etag")
    check(etag2 and etag2 != etag1, "replace returns a new ETag", r)
    r = send("PUT", path, {"PartitionKey": pk, "RowKey": rk, "Body": "v3"}, headers={"If-Match": etag1})
    expect_error(r, 412, "UpdateConditionNotSatisfied", "replace with stale etag")
    r = send("GET", path)
    check(r.json.get("Body") == "v2" and "N" not in r.json, "replace dropped property N", r)
    r = send("PUT", path, {"PartitionKey": pk, "RowKey": rk, "Body": "v3"}, headers={"If-Match": '"strong"'})
    check(r.status == 400 and r.error_code() == "InvalidInput", "strong (non W/) etag -> 400 InvalidInput", r)
    r = send("PUT", entity_path(table, pk, "ghost"), {"PartitionKey": pk, "RowKey": "ghost"},
             headers={"If-Match": "*"})
    expect_error(r, 404, "ResourceNotFound", "replace If-Match:* on missing entity")
    r = send("PUT", entity_path(table, pk, "upsert"), {"PartitionKey": pk, "RowKey": "upsert", "A": 1})
    check(r.status == 204 and r.h("etag"), "PUT without If-Match = insert-or-replace (upsert)", r)

    # ---- Merge -------------------------------------------------------------
    etag = etag2
    for verb, extra in (("MERGE", {}), ("PATCH", {}), ("POST", {"X-HTTP-Method": "MERGE"})):
        hdrs = {"If-Match": etag}
        hdrs.update(extra)
        r = send(verb, path, {"PartitionKey": pk, "RowKey": rk, "M_" + verb: True}, headers=hdrs)
        check(r.status == 204, "merge via %s %s" % (verb, extra), r)
        check(r.h("etag") and r.h("etag") != etag, "merge new etag", r)
        etag = r.h("etag")
    r = send("GET", path)
    check(r.json["Body"] == "v2" and r.json["M_MERGE"] and r.json["M_PATCH"] and r.json["M_POST"],
          "merge kept old properties", r)
    r = send("MERGE", path, {"PartitionKey": pk, "RowKey": rk, "Z": 1}, headers={"If-Match": etag2})
    expect_error(r, 412, "UpdateConditionNotSatisfied", "merge with stale etag")
    r = send("MERGE", entity_path(table, pk, "ghost"), {"PartitionKey": pk, "RowKey": "ghost"},
             headers={"If-Match": "*"})
    expect_error(r, 404, "ResourceNotFound", "merge If-Match:* on missing entity")
    r = send("MERGE", entity_path(table, pk, "upsert"), {"PartitionKey": pk, "RowKey": "upsert", "B": 2})
    check(r.status == 204, "MERGE without If-Match = insert-or-merge", r)
    r = send("GET", entity_path(table, pk, "upsert"))
    check(r.json["A"] == 1 and r.json["B"] == 2, "insert-or-merge kept A", r)

    # ---- Delete ------------------------------------------------------------
    r = send("DELETE", path, headers={"If-Match": etag2})
    expect_error(r, 412, "UpdateConditionNotSatisfied", "delete with stale etag")
    r = send("DELETE", path)
    check(r.status == 400 and r.raw == "" and r.h("x-ms-error-code") is None,
          "delete without If-Match: 400 with empty body (Azurite)", r)
    delete_no_ifmatch = (r.status, r.error_code())
    r = send("DELETE", path, headers={"If-Match": "*"})
    check(r.status == 204 and r.raw == "", "delete If-Match:*", r)
    r = send("DELETE", path, headers={"If-Match": "*"})
    expect_error(r, 404, "ResourceNotFound", "delete missing entity")

    # ---- Keys with special characters --------------------------------------
    for key in ("a:b", "it's", "sp ace", "ü-é", "50%", "a+b=c&d", "(x,y)", "~!$*@;", "''"):
        rkq = quote_key(key)
        r = send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": key, "V": key},
                 headers={"Prefer": "return-no-content"})
        check(r.status == 204, "insert key %r" % key, r)
        r = send("GET", entity_path(table, "keys", key))
        check(r.status == 200 and r.json["RowKey"] == key, "get key %r via %s" % (key, rkq), r)
        r = send("DELETE", entity_path(table, "keys", key), headers={"If-Match": "*"})
        check(r.status == 204, "delete key %r" % key, r)
    # ':' may also travel unencoded; the signature covers whatever is on the wire
    send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": "a:b"}, headers={"Prefer": "return-no-content"})
    r = send("GET", "/%s(PartitionKey='keys',RowKey='a:b')" % table)
    check(r.status == 200, "unencoded ':' in path", r)
    # signing the decoded path while sending the encoded one fails
    wire = entity_path(table, "keys", "a:b")
    r = send("GET", wire, sign_resource="/%s%s/%s(PartitionKey='keys',RowKey='a:b')" % (ACCOUNT, PREFIX, table))
    expect_auth_error(r, "signature must use the path as sent (percent-encoded)")
    # a lone quote must be doubled: unescaped it is not found
    send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": "it's"}, headers={"Prefer": "return-no-content"})
    r = send("GET", "/%s(PartitionKey='keys',RowKey='%s')" % (table, urllib.parse.quote("it's", safe="")))
    check(r.status != 200, "undoubled quote does not address the entity", r)
    undoubled = r.status, r.error_code()
    # forbidden characters
    forbidden = {}
    for key in ("a/b", "a\\b", "a#b", "a?b", "a\tb", "a\x7fb", "a\x85b"):
        r = send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": key},
                 headers={"Prefer": "return-no-content"})
        expect_error(r, 400, "InvalidInput", "forbidden key %r" % key)
        forbidden[key] = r.status
    r = send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": "x" * 513},
             headers={"Prefer": "return-no-content"})
    expect_error(r, 400, "InvalidInput", "key longer than 512 chars")
    r = send("POST", "/" + table, {"PartitionKey": "keys", "RowKey": "x" * 512},
             headers={"Prefer": "return-no-content"})
    check(r.status == 204, "key of 512 chars", r)
    r = send("POST", "/" + table, {"PartitionKey": "", "RowKey": ""}, headers={"Prefer": "return-no-content"})
    check(r.status == 204, "empty PartitionKey and RowKey are allowed", r)
    r = send("GET", entity_path(table, "", ""))
    check(r.status == 200, "get entity with empty keys", r)

    # ---- Typed properties --------------------------------------------------
    typed = {
        "PartitionKey": "types", "RowKey": "1",
        "Big@odata.type": "Edm.Int64", "Big": "9007199254740993",
        "When@odata.type": "Edm.DateTime", "When": "2024-01-02T03:04:05.1234567Z",
        "Small": 42, "Flag": True, "Ratio": 0.5, "Text": "t",
        "Bytes@odata.type": "Edm.Binary", "Bytes": base64.b64encode(b"\x00\x01").decode(),
        "Id@odata.type": "Edm.Guid", "Id": "4185404a-5818-48c3-b9be-f217df0dba6f",
    }
    r = send("POST", "/" + table, typed, headers={"Prefer": "return-no-content"})
    check(r.status == 204, "insert typed entity", r)
    r = send("GET", entity_path(table, "types", "1"))
    j = r.json
    check(j["Big"] == "9007199254740993" and "Big@odata.type" not in j, "nometadata: Int64 is a bare string", r)
    check(j["When"] == "2024-01-02T03:04:05.1234567Z", "nometadata: DateTime string round-trips", r)
    check(j["Small"] == 42 and j["Flag"] is True and j["Ratio"] == 0.5, "int32/bool/double untyped", r)
    ts_nometa = j["Timestamp"]
    r = send("GET", entity_path(table, "types", "1"), accept=MINIMAL)
    j = r.json
    check(j["Big@odata.type"] == "Edm.Int64" and j["Big"] == "9007199254740993", "minimal: Int64 annotated", r)
    check(j["When@odata.type"] == "Edm.DateTime", "minimal: DateTime annotated", r)
    check("Timestamp@odata.type" not in j, "minimal: system Timestamp not annotated (docs: fullmetadata only)", r)
    check(j["Bytes@odata.type"] == "Edm.Binary" and j["Id@odata.type"] == "Edm.Guid", "binary/guid", r)
    if VERBOSE:
        print("minimal typed entity:", json.dumps(j))
    check("Small@odata.type" not in j and "Ratio@odata.type" not in j and "Flag@odata.type" not in j,
          "Int32/Double/Boolean not annotated", r)
    # an Int64 value sent as a JSON number without annotation
    r = send("POST", "/" + table, {"PartitionKey": "types", "RowKey": "2", "Big": 9007199254740993},
             headers={"Prefer": "return-no-content"})
    unannotated_big = (r.status, r.error_code())
    check(r.status == 204, "unannotated big number accepted", r)
    r = send("GET", entity_path(table, "types", "2"), accept=MINIMAL)
    unannotated_big += (r.json.get("Big"), r.json.get("Big@odata.type"))
    check(r.json.get("Big") == 9007199254740992, "unannotated 2^53+1 comes back as a double: precision lost", r)

    # ---- Query by partition -------------------------------------------------
    r = send("GET", "/%s()?$filter=%s" % (table, urllib.parse.quote("PartitionKey eq 'thread'", safe="")))
    check(r.status == 200 and {e["RowKey"] for e in r.json["value"]} == {"msg-0", "upsert"},
          "query entities by PartitionKey", r)
    r = send("GET", "/%s()?$filter=%s&$top=1" % (table, urllib.parse.quote("PartitionKey eq 'thread'", safe="")))
    check(len(r.json["value"]) == 1 and r.h("x-ms-continuation-nextpartitionkey") is not None
          and r.h("x-ms-continuation-nextrowkey") is not None, "$top=1 gives continuation headers", r)

    # ---- Cleanup -----------------------------------------------------------
    r = send("DELETE", "/Tables('%s')" % table)
    check(r.status == 204, "delete probe table", r)

    return {
        "delete_without_if_match": delete_no_ifmatch,
        "undoubled_quote": undoubled,
        "int64_as_json_number": unannotated_big,
        "timestamp_example": ts_nometa,
    }


# --------------------------------------------------------------------------- azurite


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def spawn_azurite():
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "..", ".tools", "node_modules", ".bin", "azurite-table")
    port = free_port()
    cwd = tempfile.mkdtemp(prefix="azurite-table-")
    cmd = [exe, "--tableHost", "127.0.0.1", "--tablePort", str(port), "--inMemoryPersistence",
           "--silent", "--disableTelemetry"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while time.time() - t0 < 30:
        if proc.poll() is not None:
            raise RuntimeError("azurite-table exited: %s" % proc.stdout.read().decode())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("azurite-table did not listen within 30s")
    return proc, port, time.time() - t0, cwd


def main():
    global VERBOSE, BASE, PREFIX, STRICT
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", help="table endpoint, e.g. http://127.0.0.1:10002/devstoreaccount1")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    VERBOSE = args.verbose
    proc = None
    if args.endpoint:
        endpoint = args.endpoint.rstrip("/")
        STRICT = False
    else:
        proc, port, startup, cwd = spawn_azurite()
        endpoint = "http://127.0.0.1:%d/%s" % (port, ACCOUNT)
        print("spawned azurite-table pid %d on port %d, listening after %.2fs" % (proc.pid, port, startup))
    u = urllib.parse.urlsplit(endpoint)
    BASE = "%s://%s" % (u.scheme, u.netloc)
    PREFIX = u.path
    try:
        notes = probe()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            leftovers = os.listdir(cwd)
            print("azurite-table stopped; files left in its cwd: %s" % (leftovers or "none"))
            if not leftovers:
                os.rmdir(cwd)
    for k, v in notes.items():
        print("observed %s: %r" % (k, v))
    print("OK: %d checks passed against %s" % (CHECKS, endpoint))
    return 0


if __name__ == "__main__":
    sys.exit(main())
