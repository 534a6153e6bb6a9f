#!/usr/bin/env bash
# The shipped systemd unit passes `systemd-analyze verify` with no complaint (with
# ExecStart pointed at the built binary), and a unit with a misspelt key does not:
# the check can fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v systemd-analyze >/dev/null || {
  echo "check_unit: systemd-analyze missing; install it with 'apt-get install systemd'" >&2; exit 1; }
bin=$(realpath "${1:-target/debug/reflex-agent}")
[ -x "$bin" ] || { echo "check_unit: $bin missing; build it with 'cargo build -p reflex-agent'" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/reflex-agent#$bin#" crates/agent/dist/reflex-agent.service > "$tmp/reflex-agent.service"
out=$(systemd-analyze verify "$tmp/reflex-agent.service" 2>&1) || { echo "$out" >&2; exit 1; }
[ -z "$out" ] || { echo "check_unit: systemd-analyze complained:"; echo "$out"; exit 1; } >&2
sed 's/^ProtectSystem=/ProtectSytem=/' "$tmp/reflex-agent.service" > "$tmp/reflex-agent-bad.service"
bad=$(systemd-analyze verify "$tmp/reflex-agent-bad.service" 2>&1 || true)
[ -n "$bad" ] || { echo "check_unit: a misspelt key went unnoticed; the check is broken" >&2; exit 1; }
echo "ok    reflex-agent.service: systemd-analyze verify is clean; a misspelt key is caught"
