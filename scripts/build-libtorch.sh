#!/usr/bin/env bash
# Builds the optional libtorch addon (crate/libtorch) into native/libtorch/.
#
# It links against a libtorch 2.11, found (tch's rules) from:
#   LIBTORCH=/path/to/libtorch        an unpacked libtorch download (CPU or CUDA), or
#   a Python with torch==2.11 installed: TORCHSAVE_PYTHON, else the test venv that
#   scripts/python-env.sh makes (~/.cache/torchsave/venv-torch-2.11.0), else `python3`.
# The addon records no rpath (crate/libtorch/build.rs): nothing of this machine's venv is baked
# into it. At run time the facade finds a libtorch 2.11 (TORCHSAVE_LIBTORCH / LIBTORCH, else the
# torch of `python3`) and preloads its libraries (ts/libtorch/addon.ts); LD_LIBRARY_PATH works too.
# `npm run release:pack` packs the result as @torchsave/libtorch-<platform> and fails if
# `readelf -d` shows an absolute RUNPATH.
#
# Output: native/libtorch/torchsave-libtorch.<platform>.node, napi's generated loader
# bindings.js and typings bindings.d.ts (both committed; the test command fails when they
# differ from what the build generates).
#
# `build-libtorch.sh clippy` lints the crate instead, with the same environment and target
# as the build, so cargo reuses the compiled libtorch bindings (their C++ takes minutes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -z "${LIBTORCH:-}" ]]; then
  py="${TORCHSAVE_PYTHON:-}"
  if [[ -z "$py" && -x "$HOME/.cache/torchsave/venv-torch-2.11.0/bin/python" ]]; then
    py="$HOME/.cache/torchsave/venv-torch-2.11.0/bin/python"
  fi
  py="${py:-python3}"
  # torch-sys runs `python` from PATH when VIRTUAL_ENV is set: make that the chosen one.
  bindir=$(dirname "$py")
  export VIRTUAL_ENV
  VIRTUAL_ENV=$(cd "$bindir/.." && pwd)
  export PATH="$bindir:$PATH"
  export LIBTORCH_USE_PYTORCH=1
  echo "build-libtorch: linking against torch from $("$py" -c 'import torch, os; print(torch.__version__, os.path.dirname(torch.__file__))')" >&2
fi

if [[ "${1:-}" == "clippy" ]]; then
  host=$(rustc -vV | sed -n 's/^host: //p')
  exec cargo clippy --release --target "$host" -p torchsave-libtorch --quiet -- -D warnings
fi

npx napi build --platform --release \
  --manifest-path crate/libtorch/Cargo.toml \
  --package-json-path crate/libtorch/package.json \
  --output-dir native/libtorch --js bindings.js --dts bindings.d.ts "$@"
