#!/usr/bin/env bash
# Generates the interop fixtures (__test__/fixtures/generated/, gitignored) from real torch:
# make_fixtures.py (+ make_fixtures_113.py under Debian's torch 1.13 when present) and
# make_attacks.py, make_scan_attacks.py (the scanner's attack corpus) and make_jit_fixtures.py (TorchScript archives). Skips the work when a stamp (hash of the generating scripts, the pins and
# the torch 1.x version seen) matches. Safe to call concurrently (flock where available).
# Uses $TORCHSAVE_PYTHON, else scripts/python-env.sh (which installs the env if needed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/__test__/fixtures/generated"
py="${TORCHSAVE_PYTHON:-$(bash "$root/scripts/python-env.sh")}"
[[ -x "$py" ]] || { echo "fixtures: TORCHSAVE_PYTHON=$py is not an executable python" >&2; exit 1; }
legacy_py="${TORCHSAVE_PYTHON_LEGACY:-/usr/bin/python3}"
legacy=$("$legacy_py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
want=$( (cat "$root"/__test__/python/*.py "$root/__test__/python/requirements.txt"; echo "torch1=$legacy") | sha256sum | cut -c1-64)

mkdir -p "$out"
generate() {
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$want" && -f "$out/index.json" && -f "$out/attacks/attacks.json" && -f "$out/jit/jit.json" && -f "$out/scan-attacks/scan-attacks.json" ]]; then
    return 0
  fi
  rm -f "$out/.stamp"
  local t0=$SECONDS
  echo "fixtures: generating with $("$py" -c 'import torch; print("torch", torch.__version__)') (torch 1.x: $legacy)" >&2
  "$py" -W ignore "$root/__test__/python/make_fixtures.py" "$out"
  "$py" -W ignore "$root/__test__/python/make_attacks.py" "$out/attacks"
  "$py" -W ignore "$root/__test__/python/make_jit_fixtures.py" "$out/jit"
  "$py" -W ignore "$root/__test__/python/make_scan_attacks.py" "$out/scan-attacks"
  echo "$want" >"$out/.stamp"
  echo "fixtures: done in $((SECONDS - t0)) s" >&2
}

if command -v flock >/dev/null; then
  exec 9>"$out/.lock"
  flock 9
fi
generate
