#!/usr/bin/env bash
# THE test command (`npm test`, and CI through .ci/run). Every step must pass; nothing is
# skipped for a missing prerequisite: without the Python oracle the interop tests fail.
#   npm ci (when node_modules is absent or older than package-lock.json)
#   scripts/python-env.sh       torch 2.11 venv (+ Debian torch 1.13) -> TORCHSAVE_PYTHON
#   cargo fmt --check, cargo clippy -D warnings, cargo test (debug: fast to build, same code)
#   npm run build               napi addon in release + tsc
#   npm run typecheck
#   scripts/fixtures.sh         fixtures + attack files from real torch (skipped when stamped)
#   vitest run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

t_all=$SECONDS
step() { echo; echo "== [$((SECONDS - t_all))s] $*"; }

step "npm dependencies"
if [[ ! -d node_modules || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
else
  echo "node_modules is up to date with package-lock.json"
fi

step "python oracle environment"
TORCHSAVE_PYTHON=$(bash scripts/python-env.sh)
export TORCHSAVE_PYTHON
echo "TORCHSAVE_PYTHON=$TORCHSAVE_PYTHON"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
cargo test --workspace

step "npm run build (release addon + tsc)"
npm run build

step "typecheck"
npm run typecheck

step "fixtures from real torch"
bash scripts/fixtures.sh

step "vitest"
report=$(mktemp)
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
# A plain closing line CI can read whatever the runner prints.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
echo "test.sh: total $((SECONDS - t_all)) s"
exit $status
