#!/usr/bin/env bash
# `npm run demo`: builds the package and runs the seed walkthrough (ts/demo/seed.ts), the
# TypeScript twin of every snippet in the seed notes on saving and loading PyTorch models.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -e node_modules ]]; then
  npm ci --no-audit --no-fund
fi
npm run build
exec node dist/demo/seed.js "$@"
