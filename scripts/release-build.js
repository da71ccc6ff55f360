#!/usr/bin/env node
// Builds the default addon (crate/node) the way releases ship it: release mode, stripped, and on
// Linux with napi-rs's own glibc-2.17 cross toolchain (`napi build --use-napi-cross`), so the
// binary loads on glibc >= 2.17 and not only on the build machine. `npm run build:native` is
// this script, so the tests run the very binary `npm run release:pack` packs.
//
//   node scripts/release-build.js [--target TRIPLE] [other napi build args]
//
// Per target (the host's when no --target):
//   *-linux-gnu on a Linux x64/arm64 host   --use-napi-cross (toolchain from the npm registry)
//   *-linux-musl                            -x (cargo-zigbuild; needs zig, as in CI)
//   anything else (darwin, win32, wasm)     the host toolchain
// Cross builds go to their own cargo target dir (<target dir>/napi-cross): the cross linker is
// part of cargo's fingerprint, so sharing target/ with scripts/build-libtorch.sh (host linker)
// would rebuild every shared crate on each switch.
//
// The toolchain: napi's CLI downloads `@napi-rs/cross-toolchain-<host>-target-<arch>` at the
// exact version of `@napi-rs/cross-toolchain` it depends on, but not every target package is
// published at every version (1.0.5 wants x86_64 1.0.5; the registry has 1.0.0). So this script
// puts the newest published version <= that one where napi looks first
// (~/.napi-rs/cross-toolchain/<version>/<triple>/, skipped when it exists), and napi uses it.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const ti = args.findIndex((a) => a === '--target' || a === '-t');
const hostTriple = /host: (\S+)/.exec(execFileSync('rustc', ['-vV'], { encoding: 'utf8' }))[1];
const target = ti >= 0 ? args[ti + 1] : hostTriple;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function semverLe(a, b) {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] < pb[i];
  return true;
}

/** Puts napi's cross toolchain for `triple` where `napi build --use-napi-cross` finds it. */
function provisionNapiCross(triple) {
  const version = require('@napi-rs/cross-toolchain/package.json').version;
  const dir = path.join(os.homedir(), '.napi-rs', 'cross-toolchain', version, triple);
  if (fs.existsSync(path.join(dir, 'package.json'))) return;
  const arch = process.arch; // x64 | arm64: the host the toolchain runs on
  const short = { 'x86_64-unknown-linux-gnu': 'x86_64', 'aarch64-unknown-linux-gnu': 'aarch64' }[triple];
  if (!short) throw new Error(`release-build: no napi cross toolchain for ${triple}`);
  const pkg = `@napi-rs/cross-toolchain-${arch}-target-${short}`;
  const published = JSON.parse(execFileSync(npm, ['view', pkg, 'versions', '--json'], { encoding: 'utf8' }));
  const pick = [].concat(published).filter((v) => /^\d+\.\d+\.\d+$/.test(v) && semverLe(v, version)).pop();
  if (!pick) throw new Error(`release-build: ${pkg} has no version <= ${version} on the registry`);
  if (pick !== version) console.error(`release-build: ${pkg}@${version} is not published; using ${pick}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-cross-'));
  try {
    const tgz = execFileSync(npm, ['pack', `${pkg}@${pick}`, '--pack-destination', tmp, '--silent'], { encoding: 'utf8' }).trim().split('\n').pop();
    execFileSync('tar', ['-xzf', path.join(tmp, tgz), '-C', tmp]);
    const xz = fs.readdirSync(path.join(tmp, 'package')).find((f) => f.endsWith('.tar.xz'));
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-xJf', path.join(tmp, 'package', xz), '-C', dir]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!fs.existsSync(path.join(dir, 'package.json'))) throw new Error(`release-build: ${dir} has no package.json after unpacking`);
}

const extra = [];
const crossHost = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');
if (/-linux-gnu$/.test(target) && crossHost && !process.env.TORCHSAVE_HOST_TOOLCHAIN) {
  provisionNapiCross(target);
  extra.push('--use-napi-cross');
} else if (/-linux-musl$/.test(target)) {
  extra.push('-x');
}
if (extra.length && !args.includes('--target-dir')) {
  const base = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  extra.push('--target-dir', path.join(base, 'napi-cross'));
}
if (ti < 0) extra.push('--target', target);

const napiArgs = [
  'build', '--platform', '--release', '--strip',
  '--manifest-path', 'crate/node/Cargo.toml', '--package-json-path', 'package.json',
  '--output-dir', 'native', '--js', 'bindings.js', '--dts', 'bindings.d.ts',
  ...extra, ...args,
];
console.error(`release-build: napi ${napiArgs.join(' ')}`);
// The CLI's package.json `exports` hides dist/: resolve its folder through node_modules.
const napiCli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
const started = Date.now() - 1000;
const r = spawnSync(process.execPath, [napiCli, ...napiArgs], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

// Strip the symbol table (5.3 MB -> about 4 MB on linux-x64). napi's --strip adds
// `-C link-arg=-s` to RUSTFLAGS, but the artifact it copies still has .symtab, so strip the
// copy with the target's own binutils (the cross toolchain's for a cross build).
const outDir = path.join(root, 'native');
for (const f of fs.readdirSync(outDir).filter((f) => f.endsWith('.node'))) {
  const file = path.join(outDir, f);
  if (fs.statSync(file).mtimeMs < started) continue;
  let strip = null;
  if (extra.includes('--use-napi-cross')) {
    const version = require('@napi-rs/cross-toolchain/package.json').version;
    strip = path.join(os.homedir(), '.napi-rs', 'cross-toolchain', version, target, 'bin', `${target}-strip`);
  } else if (process.platform === 'linux' && target === hostTriple) strip = 'strip';
  else if (process.platform === 'darwin' && target.endsWith('-apple-darwin')) strip = 'strip';
  if (!strip) continue; // musl via zig, Windows (.pdb is separate), wasm: nothing to strip here
  execFileSync(strip, process.platform === 'darwin' ? ['-x', file] : ['--strip-unneeded', file]);
  console.error(`release-build: stripped ${path.relative(root, file)} (${fs.statSync(file).size} bytes)`);
}
