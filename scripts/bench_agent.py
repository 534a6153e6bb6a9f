#!/usr/bin/env python3
"""make bench (agent part): how long from a scheduled event appearing in IMDS to the
agent's drain hook starting, at the default 1 s poll interval.

Starts the release `reflex-imds-fake` (the IMDS stand-in) and the release
`reflex-agent --cloud azure --interval 1s` with a drain hook that records when it
started. RUNS times (default 20): puts a new Redeploy event for this VM into the
stand-in, notes the wall-clock time, and waits for the hook's line. An event lands at
a random point of the poll cycle, so the figures spread over about one interval.
Nothing here is asserted: the figures go to the README.
"""
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
RUNS = int(os.environ.get("RUNS", "20"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_state(base, state):
    req = urllib.request.Request(f"{base}/_reflex/state", method="PUT", data=json.dumps(state).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()


def main():
    for exe in ("reflex-agent", "reflex-imds-fake"):
        if not (TARGET / exe).exists():
            raise SystemExit(f"bench: {TARGET / exe} missing; run `make bench` (it builds it)")
    tmp = Path(tempfile.mkdtemp(prefix="reflex-bench-agent-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    imds = subprocess.Popen([str(TARGET / "reflex-imds-fake"), str(port), "vm-bench"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hooks = tmp / "hooks.log"
    agent = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ, REFLEX_IMDS_ENDPOINT=base, RUST_LOG="warn")
        hook = f'echo "$REFLEX_EVENT_ID $(date +%s.%N)" >> {hooks}'
        agent = subprocess.Popen([str(TARGET / "reflex-agent"), "--cloud", "azure", "--interval", "1s",
                                  "--drain-hook", hook], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # the agent's first polls (instance name, empty document)
        latencies = []
        for i in range(RUNS):
            event_id = f"bench-{i}"
            not_before = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 900))
            time.sleep(0.137 * (i % 7))  # land at varying points of the poll cycle
            t0 = time.time()
            put_state(base, {"azure_events": [{
                "EventId": event_id, "EventStatus": "Scheduled", "EventType": "Redeploy",
                "ResourceType": "VirtualMachine", "Resources": ["vm-bench"], "NotBefore": not_before,
                "Description": "bench", "EventSource": "Platform", "DurationInSeconds": -1}]})
            deadline = time.time() + 10
            started = None
            while time.time() < deadline and started is None:
                for line in hooks.read_text().splitlines() if hooks.exists() else []:
                    eid, at = line.split()
                    if eid == event_id:
                        started = float(at)
                time.sleep(0.01)
            if started is None:
                raise SystemExit(f"bench: the drain hook did not start for {event_id} within 10 s")
            latencies.append(started - t0)
            put_state(base, {"azure_events": []})
            time.sleep(3.5)  # the agent sees the event leave (three polls, --gone-after)
        status = Path(f"/proc/{agent.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
        print(f"agent: event in IMDS -> drain hook started, interval 1s, {RUNS} events: "
              f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"min {latencies[0] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
        print(f"agent: peak RSS after {RUNS} events (VmHWM): {hwm / 1024:.1f} MiB; "
              f"stripped binary {(TARGET / 'reflex-agent').stat().st_size / 1e6:.2f} MB")
    finally:
        for p in (agent, imds):
            if p is not None:
                p.terminate()
                p.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
