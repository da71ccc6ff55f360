#!/usr/bin/env bash
# npm run release:pack -- --out DIR [--no-build] [--libtorch]
#
# Packs what this host can build into DIR, as npm would publish it:
#   torchsave-<v>.tgz                       the facade (dist/, napi's loaders, typings), with
#                                           optionalDependencies on every @torchsave/binding-*
#   torchsave-binding-<platform>-<v>.tgz    the default addon for this host (release, stripped,
#                                           napi-cross glibc 2.17 on Linux: scripts/release-build.js)
#   torchsave-libtorch-<platform>-<v>.tgz   the compute addon, when native/libtorch has one for
#                                           this host (--libtorch builds it: scripts/build-libtorch.sh)
# The per-platform package folders are napi's: `napi create-npm-dirs` (npm/, and
# crate/libtorch/npm/ for the compute package) and `napi artifacts` copies the built .node
# files into them. CI (.github/workflows/release.yml) runs the same napi commands with every
# target's artifact, then `napi pre-publish`.
#
# --no-build reuses native/*.node and dist/ as `npm run build` left them (the test command
# does, right after its build); the checks below still run on what is packed.
# Checks (each fails the pack): the Linux binary needs nothing newer than GLIBC_2.17; the
# compute addon has no absolute RUNPATH/RPATH.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

out="" build=1 libtorch=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --no-build) build=0; shift ;;
    --libtorch) libtorch=1; shift ;;
    *) echo "release-pack: unknown argument $1 (usage: --out DIR [--no-build] [--libtorch])" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || { echo "release-pack: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
napi() { node "$root/node_modules/@napi-rs/cli/dist/cli.js" "$@"; }
say() { echo "release-pack: $*" >&2; }

if [[ $build == 1 ]]; then
  npm run --silent build
fi
if [[ $libtorch == 1 ]]; then
  bash scripts/build-libtorch.sh
fi

version=$(node -p 'require("./package.json").version')
shopt -s nullglob
nodes=(native/torchsave.*.node)
[[ ${#nodes[@]} -gt 0 ]] || { say "no native/torchsave.*.node: run npm run build:native"; exit 1; }

# The glibc floor: every versioned glibc symbol the binary imports must be <= 2.17.
glibc_floor() { objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1; }
for f in "${nodes[@]}"; do
  if [[ $f == *linux-*-gnu.node ]]; then
    floor=$(glibc_floor "$f")
    if [[ "$(printf '%s\n2.17\n' "$floor" | sort -V | tail -1)" != "2.17" ]]; then
      say "$f needs GLIBC_$floor (> 2.17): it was not built with napi's cross toolchain (npm run build:native)"
      exit 1
    fi
    say "$f: glibc floor GLIBC_$floor (<= 2.17), $(wc -c <"$f" | tr -d " ") bytes"
  fi
done

# Per-platform package folders (napi's), then the built binaries into them (napi's).
# `napi artifacts` insists on every configured target, so it runs with a napi config naming the
# targets built here (--config-path): the same binaryName/packageName, only fewer targets.
built_config() { # package.json dir-with-.node-files config-out
  node -e '
    const [pj, dir, outFile] = process.argv.slice(1);
    const fs = require("fs");
    const napiCfg = require(require("path").resolve(pj)).napi;
    const abi = (t) => {
      const [arch, , os, env] = t.split("-");
      const a = { x86_64: "x64", aarch64: "arm64" }[arch] ?? arch;
      const p = { linux: "linux", darwin: "darwin", windows: "win32" }[os] ?? os;
      return env ? `${p}-${a}-${env}` : `${p}-${a}`;
    };
    const targets = napiCfg.targets.filter((t) => fs.existsSync(`${dir}/${napiCfg.binaryName}.${abi(t)}.node`));
    if (!targets.length) { console.error(`release-pack: no ${napiCfg.binaryName}.<platform>.node in ${dir}`); process.exit(1); }
    fs.writeFileSync(outFile, JSON.stringify({ ...napiCfg, targets }));
    console.error(`release-pack: ${napiCfg.packageName}: packing ${targets.join(", ")}`);
  ' "$@"
}
napi create-npm-dirs --npm-dir npm >/dev/null
cfgdir=$(mktemp -d)
built_config package.json native "$cfgdir/binding.json"
napi artifacts --config-path "$cfgdir/binding.json" --output-dir native --npm-dir npm
# napi artifacts also drops a copy next to package.json (for a local `require`): not ours to keep.
rm -f ./torchsave.*.node

# The facade, staged so the worktree's package.json keeps no release-only fields.
stage=$(mktemp -d)
trap 'rm -rf "$stage" "$cfgdir"' EXIT
mkdir -p "$stage/native/libtorch"
cp package.json README.md LICENSE CHANGELOG.md "$stage/"
cp -r dist "$stage/dist"
cp native/bindings.js native/bindings.d.ts "$stage/native/"
cp native/libtorch/bindings.js native/libtorch/bindings.d.ts "$stage/native/libtorch/"
# optionalDependencies: one per declared target, exactly the packages `napi create-npm-dirs`
# wrote (what `napi pre-publish` sets when CI publishes).
for pj in npm/*/package.json; do
  name=$(node -p "require('./$pj').name")
  (cd "$stage" && npm pkg set "optionalDependencies.$name=$version")
done
# Dev-only fields do not ship.
(cd "$stage" && npm pkg delete devDependencies scripts)

packed=()
pack() { # dir
  local tgz
  tgz=$(cd "$1" && npm pack --silent --pack-destination "$out" | tail -1)
  packed+=("$out/$tgz")
}
pack "$stage"
for d in npm/*/; do
  compgen -G "$d*.node" >/dev/null && pack "$d"
done

# The compute package, when its addon is built for this host.
lt_nodes=(native/libtorch/torchsave-libtorch.*.node)
if [[ ${#lt_nodes[@]} -gt 0 ]]; then
  for f in "${lt_nodes[@]}"; do
    if readelf -d "$f" | grep -E 'R(UN)?PATH' | grep -vq '\$ORIGIN'; then
      say "$f has an absolute RUNPATH: $(readelf -d "$f" | grep -E 'R(UN)?PATH')"
      exit 1
    fi
  done
  built_config crate/libtorch/package.json native/libtorch "$cfgdir/libtorch.json"
  (cd crate/libtorch && napi create-npm-dirs --npm-dir npm >/dev/null &&
    napi artifacts --config-path "$cfgdir/libtorch.json" --output-dir ../../native/libtorch --npm-dir npm && rm -f ./torchsave-libtorch.*.node)
  for d in crate/libtorch/npm/*/; do
    compgen -G "$d*.node" >/dev/null && pack "$d"
  done
else
  say "no native/libtorch/torchsave-libtorch.*.node: compute package not packed (--libtorch builds it)"
fi

say "packed into $out:"
for t in "${packed[@]}"; do
  printf '  %-60s %8s bytes\n' "$(basename "$t")" "$(wc -c <"$t" | tr -d " ")" >&2
done
