#!/usr/bin/env bash
# THE test command (`npm test`, and CI through .ci/run). Every step must pass; nothing is
# skipped for a missing prerequisite: without the Python oracle the interop tests fail.
#   npm ci (fresh clone, or package-lock.json changed since this script's last npm ci)
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
# `npm ci` on a fresh clone (no node_modules) or when package-lock.json changed since the last
# `npm ci` made here (stamp). A node_modules this script did not install (a developer's, or a
# symlink to a shared one) is left alone: npm ci would delete it first.
lock_hash=$(sha256sum package-lock.json | cut -c1-64)
stamp=node_modules/.torchsave-npm-ci.sha256
if [[ ! -e node_modules ]] || { [[ -f $stamp ]] && [[ "$(cat "$stamp")" != "$lock_hash" ]]; }; then
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
else
  echo "node_modules present; not reinstalling"
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
