#!/usr/bin/env python3
"""make bench (Azure part): the custom-handler host under load with wrk, on loopback.

The load is the action-group webhook `POST /api/close-open-ports` with an alert the
function ignores (a metric alert from events/azure), so no outbound call is made: this
measures the host and the function's parse/decide path, not ARM. The release host runs
with its normal JSON logging (to /dev/null). wrk and the host share this machine's cores.
Nothing is asserted; figures go to the README.
"""
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DURATION = os.environ.get("WRK_DURATION", "15s")
CONNECTIONS = os.environ.get("WRK_CONNECTIONS", "32")
THREADS = os.environ.get("WRK_THREADS", "1")
FIXTURE = ROOT / "events/azure/common-alert-schema/metric-static.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    host = TARGET / "release" / "reflex-azure-host"
    if not host.exists():
        raise SystemExit(f"bench_host: {host} missing; run `cargo build --release -p reflex-azure-host`")
    if not shutil.which("wrk"):
        raise SystemExit("bench_host: wrk missing; install it with `apt-get install wrk`")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFLEX_", "IDENTITY_"))}
    env.update(FUNCTIONS_CUSTOMHANDLER_PORT=str(port), REFLEX_LOG="info")
    proc = subprocess.Popen([str(host)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tmp = Path(tempfile.mkdtemp(prefix="reflex-wrk-"))
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        else:
            raise SystemExit("bench_host: the host did not become ready")
        body = FIXTURE.read_text()
        # Check the request once by hand: it must be a handled, ignored 200.
        req = urllib.request.Request(base + "/api/close-open-ports", data=body.encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 200 or b'"ignored":"' not in r.read():
                raise SystemExit("bench_host: the probe request was not an ignored 200")
        lua = tmp / "post.lua"
        lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                       f"wrk.body = [==[{body}]==]\n")
        out = subprocess.run(["wrk", "-t", THREADS, "-c", CONNECTIONS, "-d", DURATION, "--latency",
                              "-s", str(lua), base + "/api/close-open-ports"],
                             capture_output=True, text=True, check=True).stdout
        if "Non-2xx" in out or "Socket errors" in out:
            print(out)
            raise SystemExit("bench_host: wrk saw errors or non-2xx answers")
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"wrk: {THREADS} thread(s), {CONNECTIONS} connections, {DURATION}, body {len(body)} bytes "
              f"({FIXTURE.relative_to(ROOT)}, ignored by the function)")
        print(f"host throughput: {rps:,.0f} requests/s")
        print(f"host latency: p50 {pct.get('50')}, p90 {pct.get('90')}, p99 {pct.get('99')}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
