#!/usr/bin/env bash
# The install test (run by scripts/test.sh after its build; alone: `npm run test:install`):
# packs with scripts/release-pack.sh, installs the tarballs into an empty folder, and uses
# torchsave there as a user would, with PATH holding node/npm/npx (+ sh) only (no cargo, rustc,
# python; NAPI_RS_NATIVE_LIBRARY_PATH, LD_LIBRARY_PATH and TORCHSAVE_* unset):
#   CJS require + ESM import, save -> load of a state dict, the seed's state-dict listing,
#   `npx torchsave inspect` and `convert`, a user .ts file type-checked with strict and
#   skipLibCheck: false, attw + publint on the packed tarball, the binary's glibc floor
#   (objdump -T: nothing newer than GLIBC_2.17), and the compute package: no absolute RUNPATH
#   (readelf -d), libtorch found through TORCHSAVE_LIBTORCH at a path that is not the build
#   venv's (a hard-linked copy of its torch + nvidia folders), the seed model's forward
#   checked against real torch (TORCHSAVE_PYTHON, run outside the restricted PATH).
#
#   INSTALL_TEST_BUILD=1   rebuild instead of packing what `npm run build` left (--no-build)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
t0=$SECONDS
fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
ok() { echo "install-test: ok  $*"; }

work=$(mktemp -d /tmp/torchsave-install-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
pack=$work/pack app=$work/app bin=$work/bin
mkdir -p "$pack" "$app" "$bin"

build_flag=--no-build
[[ "${INSTALL_TEST_BUILD:-0}" == 1 ]] && build_flag=""
bash scripts/release-pack.sh --out "$pack" $build_flag
main_tgz=$pack/torchsave-$(node -p 'require("./package.json").version').tgz
[[ -f $main_tgz ]] || fail "release-pack wrote no $main_tgz"

# Tools from the repo's devDependencies (package-lock), by absolute path.
nm=${INSTALL_TEST_NODE_MODULES:-$root/node_modules}
tsc=$nm/typescript/bin/tsc
attw=$nm/@arethetypeswrong/cli/dist/index.js
publint=$nm/publint/src/cli.js
for f in "$tsc" "$attw" "$publint"; do [[ -f $f ]] || fail "$f missing: npm ci (package-lock.json lists it)"; done

# attw / publint on the packed tarball: nothing to report.
node "$attw" "$main_tgz" --format ascii >"$work/attw.txt" 2>&1 || { cat "$work/attw.txt"; fail "attw reported problems"; }
ok "attw (strict profile: node10, node16 CJS/ESM, bundler): no problems"
node "$publint" "$main_tgz" --strict >"$work/publint.txt" 2>&1 || { cat "$work/publint.txt"; fail "publint reported problems"; }
grep -Eiq 'warning|error|suggestion' "$work/publint.txt" && { cat "$work/publint.txt"; fail "publint reported something"; }
ok "publint: $(tail -1 "$work/publint.txt")"

# PATH with node, npm, npx only (and sh: npx runs a package's bin through it, as on any machine).
# On Windows (Git Bash) node's own folder holds node.exe, npm and npx and nothing else of ours,
# and npx needs cmd.exe from System32.
case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*) bin="$(dirname "$(command -v node)"):/c/Windows/System32" ;;
  *) for tool in node npm npx sh; do ln -s "$(command -v "$tool")" "$bin/$tool"; done ;;
esac
run() { # run in the app folder with the restricted environment
  (cd "$app" && env -i HOME="$work/home" PATH="$bin" npm_config_cache="${npm_config_cache:-$HOME/.npm}" \
    ${SYSTEMROOT:+SYSTEMROOT=$SYSTEMROOT} \
    ${TORCHSAVE_LIBTORCH_FOR_TEST:+TORCHSAVE_LIBTORCH=$TORCHSAVE_LIBTORCH_FOR_TEST} "$@")
}
mkdir -p "$work/home"
for tool in cargo rustc python python3; do
  if run node -e "require('child_process').execFileSync('$tool',['--version'],{stdio:'ignore'})" 2>/dev/null; then
    fail "$tool is reachable from the restricted PATH"
  fi
done

echo '{"name":"app","version":"1.0.0","private":true}' >"$app/package.json"
run npm install --offline --no-audit --no-fund --loglevel=error "$pack"/*.tgz >"$work/npm.txt" 2>&1 || { cat "$work/npm.txt"; fail "npm install of the tarballs"; }
ok "npm install --offline of $(ls "$pack" | tr '\n' ' ')"

shopt -s nullglob
bins=("$app"/node_modules/@torchsave/binding-*/*.node)
[[ ${#bins[@]} -gt 0 ]] || fail "no @torchsave/binding-* package installed"
for f in "${bins[@]}"; do
  if [[ $f == *-gnu.node ]]; then
    floor=$(objdump -T "$f" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    [[ "$(printf '%s\n2.17\n' "$floor" | sort -V | tail -1)" == 2.17 ]] || fail "$f needs GLIBC_$floor"
    ok "$(basename "$f"): newest glibc symbol GLIBC_$floor (<= 2.17)"
  fi
done

# CJS: save, load, the seed's state-dict listing.
cat >"$app/cjs.cjs" <<'EOF'
const assert = require('node:assert');
const torch = require('torchsave');
const { nn } = torch;
class TheModelClass extends nn.Module {
  conv1 = new nn.Conv2d(3, 6, 5);
  pool = new nn.MaxPool2d(2, 2);
  conv2 = new nn.Conv2d(6, 16, 5);
  fc1 = new nn.Linear(16 * 5 * 5, 120);
  fc2 = new nn.Linear(120, 84);
  fc3 = new nn.Linear(84, 10);
}
const model = new TheModelClass();
for (const [name, t] of model.stateDict()) console.log(name, '\t', t.size());
torch.save(model.stateDict(), 'model.pt');
const sd = torch.load('model.pt');
assert.deepStrictEqual([...sd.keys()], [...model.stateDict().keys()]);
for (const [k, v] of model.stateDict()) assert.ok(v.equal(sd.get(k)), k);
let code;
try { torch.load('missing.pt'); } catch (e) { code = e.code; }
assert.strictEqual(code, 'E_IO');
EOF
run node cjs.cjs >"$work/listing.txt" || fail "CJS require/save/load"
cat >"$work/listing.expected" <<'EOF'
conv1.weight 	 torch.Size([6, 3, 5, 5])
conv1.bias 	 torch.Size([6])
conv2.weight 	 torch.Size([16, 6, 5, 5])
conv2.bias 	 torch.Size([16])
fc1.weight 	 torch.Size([120, 400])
fc1.bias 	 torch.Size([120])
fc2.weight 	 torch.Size([84, 120])
fc2.bias 	 torch.Size([84])
fc3.weight 	 torch.Size([10, 84])
fc3.bias 	 torch.Size([10])
EOF
diff "$work/listing.expected" "$work/listing.txt" || fail "the state-dict listing differs from the seed's"
ok "CJS require: save -> load round trip, the seed's listing (10 lines)"

cat >"$app/esm.mjs" <<'EOF'
import assert from 'node:assert';
import * as torch from 'torchsave';
import def from 'torchsave';
assert.strictEqual(typeof torch.load, 'function');
assert.strictEqual(def.load, torch.load);
const sd = torch.load('model.pt');
assert.deepStrictEqual([...sd.get('fc3.bias').shape], [10]);
await torch.saveAsync(sd, 'esm.pt');
assert.deepStrictEqual([...(await torch.loadAsync('esm.pt')).keys()], [...sd.keys()]);
EOF
run node esm.mjs || fail "ESM import"
ok "ESM import (named + default), saveAsync/loadAsync"

run npx --no-install torchsave inspect model.pt >"$work/inspect.txt" || { cat "$work/inspect.txt"; fail "npx torchsave inspect"; }
grep -q 'fc3.bias' "$work/inspect.txt" || { cat "$work/inspect.txt"; fail "inspect does not list fc3.bias"; }
mkdir -p "$app/out"
run npx --no-install torchsave convert model.pt --out out --to safetensors >"$work/convert.txt" 2>&1 || { cat "$work/convert.txt"; fail "npx torchsave convert"; }
run node -e "const t=require('torchsave');const m=t.loadSafetensors('out/model.safetensors');if(m.size!==10)process.exit(1)" || { ls -R "$app/out"; fail "convert's output"; }
ok "npx torchsave inspect, convert (-> out/model.safetensors, 10 tensors)"

# A user's TypeScript, strict, with the shipped .d.ts set checked too (skipLibCheck: false).
cat >"$app/user.ts" <<'EOF'
import * as torch from 'torchsave';
const sd = torch.load('model.pt');
const t: torch.Tensor = torch.zeros([2, 3]);
const n: number = t.numel();
torch.save({ w: t }, 'user.pt');
export { sd, n };
EOF
cat >"$app/tsconfig.json" <<EOF
{ "compilerOptions": { "strict": true, "skipLibCheck": false, "noEmit": true, "module": "nodenext",
  "moduleResolution": "nodenext", "target": "es2022", "types": ["node"], "typeRoots": ["$root/node_modules/@types"] },
  "files": ["user.ts"] }
EOF
run node "$tsc" -p tsconfig.json >"$work/tsc.txt" 2>&1 || { cat "$work/tsc.txt"; fail "tsc on a user file (strict, skipLibCheck false)"; }
ok "tsc --strict, skipLibCheck false: the shipped .d.ts set type-checks"

# E_NATIVE_MISSING names the package to install.
run node -e "
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH='/nonexistent.node';
  try { require('torchsave').load('model.pt'); process.exit(1) } catch (e) {
    if (e.code !== 'E_NATIVE_MISSING' || !e.message.includes('npm install @torchsave/binding-')) { console.error(e); process.exit(1) }
    if (/npm has a bug/.test(e.message)) { console.error(e.message); process.exit(1) }
  }" || fail "E_NATIVE_MISSING"
ok "E_NATIVE_MISSING says which package to install"

# The compute package. INSTALL_TEST_COMPUTE=0 is for CI's per-platform jobs only: the compute
# package is built for linux-x64-gnu alone; the test command never sets it.
if [[ "${INSTALL_TEST_COMPUTE:-1}" == 0 ]]; then
  echo "install-test: passed in $((SECONDS - t0)) s (compute part not run: INSTALL_TEST_COMPUTE=0)"
  exit 0
fi
lt=("$app"/node_modules/@torchsave/libtorch-*/*.node)
if [[ ${#lt[@]} -eq 0 ]]; then
  fail "no @torchsave/libtorch-* package was packed (build it: bash scripts/build-libtorch.sh)"
fi
if readelf -d "${lt[0]}" | grep -E 'R(UN)?PATH' | grep -vq '\$ORIGIN'; then fail "${lt[0]} has an absolute RUNPATH"; fi
ok "$(basename "${lt[0]}"): no absolute RUNPATH"
# Without a libtorch: the coded error naming what was tried and the fixes.
run node -e "
  try { require('torchsave').cuda.isAvailable(); const t=require('torchsave'); t.zeros([1]).add(t.zeros([1])); process.exit(1) } catch (e) {
    if (e.code !== 'E_DEVICE_UNAVAILABLE' || !/pip install torch==2\.11/.test(e.message) || !/TORCHSAVE_LIBTORCH/.test(e.message)) { console.error(e); process.exit(1) }
  }" || fail "E_DEVICE_UNAVAILABLE without libtorch"
ok "without libtorch: E_DEVICE_UNAVAILABLE (tried list, pip command, env var)"
# libtorch at a path that is not the build's: hard links of the venv's torch and nvidia folders.
py=${TORCHSAVE_PYTHON:-$HOME/.cache/torchsave/venv-torch-2.11.0/bin/python}
site=$("$py" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
moved=$work/elsewhere/site-packages
mkdir -p "$moved"
cp -al "$site/torch" "$moved/torch"
[[ -d "$site/nvidia" ]] && cp -al "$site/nvidia" "$moved/nvidia"
cat >"$app/forward.cjs" <<'EOF'
const torch = require('torchsave');
const { nn } = torch;
const F = nn.functional;
class TheModelClass extends nn.Module {
  conv1 = new nn.Conv2d(3, 6, 5);
  pool = new nn.MaxPool2d(2, 2);
  conv2 = new nn.Conv2d(6, 16, 5);
  fc1 = new nn.Linear(16 * 5 * 5, 120);
  fc2 = new nn.Linear(120, 84);
  fc3 = new nn.Linear(84, 10);
  forward(x) {
    x = this.pool.forward(F.relu(this.conv1.forward(x)));
    x = this.pool.forward(F.relu(this.conv2.forward(x)));
    x = x.view(-1, 16 * 5 * 5);
    x = F.relu(this.fc1.forward(x));
    x = F.relu(this.fc2.forward(x));
    return this.fc3.forward(x);
  }
}
const model = new TheModelClass();
model.loadStateDict(torch.load('model.pt'));
model.eval();
const x = torch.load('x.pt').get('x');
const y = torch.noGrad(() => model.forward(x));
torch.save(new torch.OrderedDict([['y', y]]), 'y.pt');
console.log(require('torchsave/package.json').version, y.shape.join('x'));
EOF
# The input and the oracle's output from real torch (outside the restricted environment).
"$py" - "$app" <<'EOF'
import sys, torch
from collections import OrderedDict
torch.manual_seed(0)
torch.save(OrderedDict(x=torch.randn(2, 3, 32, 32)), f"{sys.argv[1]}/x.pt")
EOF
TORCHSAVE_LIBTORCH_FOR_TEST=$moved/torch run node forward.cjs >"$work/forward.txt" 2>&1 || { cat "$work/forward.txt"; fail "the seed model's forward with libtorch at $moved/torch"; }
"$py" - "$app" <<'EOF' || fail "forward differs from torch's"
import sys, torch, torch.nn as nn, torch.nn.functional as F
d = sys.argv[1]
class TheModelClass(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5); self.pool = nn.MaxPool2d(2, 2); self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120); self.fc2 = nn.Linear(120, 84); self.fc3 = nn.Linear(84, 10)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x))); x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 400); x = F.relu(self.fc1(x)); x = F.relu(self.fc2(x)); return self.fc3(x)
m = TheModelClass(); m.load_state_dict(torch.load(f"{d}/model.pt")); m.eval()
with torch.no_grad():
    want = m(torch.load(f"{d}/x.pt")["x"])
got = torch.load(f"{d}/y.pt")["y"]
assert got.shape == want.shape == (2, 10), (got.shape, want.shape)
torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
EOF
ok "compute: the seed model's forward with libtorch from a moved torch folder matches torch ($(tail -1 "$work/forward.txt"))"

echo "install-test: passed in $((SECONDS - t0)) s"
