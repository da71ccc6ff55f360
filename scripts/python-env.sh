#!/usr/bin/env bash
# The Python side of the test suite: real PyTorch is the oracle every interop test asks.
#
# Creates, only when missing or incomplete, a virtualenv OUTSIDE the clone at
#   ${TORCHSAVE_PYENV:-$HOME/.cache/torchsave/venv-torch-2.11.0}
# with the pins of __test__/python/requirements.txt (+ constraints.txt), installed by pip from
# PyPI. A marker file inside the venv holds the sha256 of those two files: when it matches,
# this script does nothing but print the path (fast, no pip, no import). A venv that has the
# right versions but no marker (made by hand) is accepted as it is and stamped; a venv with
# other versions is upgraded in place by pip, never deleted.
#
# Also, on Debian-like machines, Debian's `python3-torch` (PyTorch 1.13) for /usr/bin/python3:
# the oracle for files old torch wrote (legacy format, 1.13-era zip). It is about 150 MB of
# packages, ~45 s to install. TORCHSAVE_LEGACY_TORCH=auto (default: install where apt-get
# exists and we are root, fail if that install fails), =1 (required), =0 (skip).
#
# Prints exactly one line on stdout: the path of the venv's python. Logs go to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req="$root/__test__/python/requirements.txt"
con="$root/__test__/python/constraints.txt"
venv="${TORCHSAVE_PYENV:-$HOME/.cache/torchsave/venv-torch-2.11.0}"
py="$venv/bin/python"
marker="$venv/.torchsave-requirements.sha256"
want=$(cat "$req" "$con" | sha256sum | cut -c1-64)

log() { echo "python-env: $*" >&2; }

# True when every `name==version` pin of requirements.txt is what the venv has installed
# (a local suffix such as +cu130 or +cpu is ignored: same release, other build).
versions_match() {
  "$py" - "$req" <<'EOF' >&2
import sys, importlib.metadata as md
bad = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, pin = line.partition("==")
    try:
        have = md.version(name).split("+", 1)[0]
    except md.PackageNotFoundError:
        have = None
    if have != pin:
        bad.append(f"{name}: want {pin}, have {have}")
if bad:
    print("python-env: version mismatch: " + "; ".join(bad))
    sys.exit(1)
EOF
}

ensure_venv() {
  if [[ -x "$py" && -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    return 0
  fi
  if [[ ! -x "$py" ]]; then
    local base="${TORCHSAVE_BASE_PYTHON:-python3}"
    log "creating virtualenv $venv with $("$base" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$base" -m venv "$venv"
  fi
  if versions_match 2>/dev/null; then
    log "existing virtualenv already has the pinned versions; stamping it"
  else
    local t0=$SECONDS
    log "installing $(grep -c '==' "$req") pinned packages (torch is several GB with its CUDA wheels; a few minutes)"
    "$py" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$con" >&2
    versions_match
    log "pip install took $((SECONDS - t0)) s"
  fi
  # A real import, once, before stamping: a half-extracted wheel must not be stamped complete.
  "$py" -c 'import torch, numpy, safetensors' >&2
  echo "$want" >"$marker"
}

legacy_torch_ok() {
  [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 && command -v unzip >/dev/null
}

ensure_legacy_torch() {
  local mode="${TORCHSAVE_LEGACY_TORCH:-auto}"
  [[ "$mode" == 0 ]] && return 0
  legacy_torch_ok && return 0
  if ! command -v apt-get >/dev/null || [[ $(id -u) != 0 ]]; then
    if [[ "$mode" == 1 ]]; then
      log "TORCHSAVE_LEGACY_TORCH=1 but apt-get (as root) is unavailable"
      return 1
    fi
    log "skipping Debian python3-torch (torch 1.13): no apt-get as root here; 1.13 fixtures will be absent"
    return 0
  fi
  local t0=$SECONDS
  log "installing Debian python3-torch (torch 1.13, ~150 MB) for /usr/bin/python3"
  apt-get update -qq >&2
  # unzip: the writer's tests check that `unzip -t` accepts our archives.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch unzip >&2
  legacy_torch_ok || { log "python3-torch installed but /usr/bin/python3 cannot import torch"; return 1; }
  log "python3-torch took $((SECONDS - t0)) s"
}

ensure_venv
ensure_legacy_torch
echo "$py"
