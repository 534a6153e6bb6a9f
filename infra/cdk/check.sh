#!/usr/bin/env bash
# Checks the CDK app in infra/cdk (called by `make test`; runs from any directory):
#   1. npm ci when node_modules is missing (versions from package-lock.json)
#   2. tsc
#   3. the assertion tests (node --test)
#   4. cdk synth with no AWS credentials and without bundling, into cdk.out
#   5. cfn-lint on the synthesized template (errors fail; warnings are shown)
# Nothing here builds Rust: test/no-cargo/cargo is first on PATH and refuses any build.
# Exits non-zero on any failure; the last line is a one-line summary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

start=$SECONDS
step="setup"
work="$(mktemp -d "${TMPDIR:-/tmp}/reflex-cdk-check.XXXXXX")"
on_exit() {
  local rc=$1
  rm -rf "$work"
  if [[ $rc -ne 0 ]]; then
    echo "infra/cdk check: FAILED at step '$step' (exit $rc) after $((SECONDS - start))s" >&2
  fi
}
trap 'on_exit $?' EXIT

# The cargo stub: cargo-lambda-cdk probes `cargo lambda --version`; a build would fail here.
export PATH="$here/test/no-cargo:$PATH"
export REFLEX_CARGO_STUB_LOG="$work/cargo.log"

step="node"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "Node.js 20 or later is needed (found $(node --version))" >&2
  exit 1
fi

step="npm ci"
if [[ ! -d node_modules ]]; then
  npm ci --no-audit --no-fund
fi

step="tsc"
echo "--- tsc"
node_modules/.bin/tsc -p .

step="tests"
echo "--- node --test"
shopt -s nullglob
test_files=(dist/test/*.test.js)
if (( ${#test_files[@]} == 0 )); then
  echo "no compiled tests in dist/test" >&2
  exit 1
fi
node --test \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$work/tests.tap" \
  "${test_files[@]}"
tests_passed="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$work/tests.tap" | tail -1)"
tests_failed="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$work/tests.tap" | tail -1)"
if [[ -z "$tests_passed" || "$tests_failed" != "0" || "$tests_passed" == "0" ]]; then
  echo "unexpected test result: pass=${tests_passed:-?} fail=${tests_failed:-?}" >&2
  exit 1
fi

step="cdk synth"
echo "--- cdk synth (no AWS credentials, bundling skipped)"
rm -rf cdk.out
: >"$REFLEX_CARGO_STUB_LOG"
(
  # No credentials of any kind: no AWS_* variables, no shared config / credentials files,
  # no instance metadata. No notices or telemetry (only the package registries are reachable).
  for v in $(compgen -e); do
    if [[ "$v" == AWS_* ]]; then unset "$v"; fi
  done
  export AWS_CONFIG_FILE="$work/no-aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/no-aws-credentials"
  export AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true
  node_modules/.bin/cdk synth --quiet --no-notices -c skipBundling=true -o cdk.out
)
template="cdk.out/ReflexStack.template.json"
[[ -s "$template" ]] || { echo "$template was not written" >&2; exit 1; }
if grep -q 'build' "$REFLEX_CARGO_STUB_LOG"; then
  echo "cdk synth ran cargo lambda build:" >&2
  cat "$REFLEX_CARGO_STUB_LOG" >&2
  exit 1
fi
resources="$(node -p "Object.keys(require('./$template').Resources).length")"

step="cfn-lint"
echo "--- cfn-lint $template"
cfn_lint="${CFN_LINT:-$repo/.venv/bin/cfn-lint}"
if [[ ! -x "$cfn_lint" ]]; then
  echo "cfn-lint not found at $cfn_lint (run 'make tools', or set CFN_LINT)" >&2
  exit 1
fi
lint_rc=0
"$cfn_lint" --non-zero-exit-code error "$template" >"$work/cfn-lint.txt" 2>&1 || lint_rc=$?
cat "$work/cfn-lint.txt"
lint_errors="$(grep -cE '^E[0-9]{4} ' "$work/cfn-lint.txt" || true)"
lint_warnings="$(grep -cE '^W[0-9]{4} ' "$work/cfn-lint.txt" || true)"
if [[ $lint_rc -ne 0 || $lint_errors -ne 0 ]]; then
  echo "cfn-lint: exit $lint_rc, $lint_errors error(s)" >&2
  exit 1
fi

step="done"
echo "infra/cdk check: OK - ${tests_passed} tests passed, ReflexStack synthesized without AWS credentials or a Rust build (${resources} resources), cfn-lint 0 errors / ${lint_warnings} warnings, $((SECONDS - start))s"
