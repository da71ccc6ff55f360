/**
 * Finds and loads the optional libtorch addon (crate/libtorch), lazily: importing torchsave
 * never loads libtorch; the first compute call, `torch.backends.libtorch.isAvailable()` or
 * `torch.cuda.isAvailable()` does.
 *
 * Two things are found, in this order:
 *
 * libtorch 2.11 (the compute addon carries no rpath, so nothing of the build machine is baked
 * into it):
 * 1. `TORCHSAVE_LIBTORCH`, else `LIBTORCH`: a folder, either an unpacked libtorch download or
 *    a pip torch's package folder (`.../site-packages/torch`), or its `lib/` folder itself;
 * 2. the `torch/lib` of `python3 -c "import torch"` (`python` on Windows) when that torch is 2.11.
 * Its libraries (c10, torch_cpu, torch, and the CUDA ones when present) are then loaded by
 * absolute path, process-wide (RTLD_GLOBAL), through the default addon's
 * `preloadSharedLibraries`, before the compute addon is required: its NEEDED sonames resolve
 * to them. With none found the addon is still tried (LD_LIBRARY_PATH may cover it).
 *
 * The addon itself:
 * 1. `TORCHSAVE_LIBTORCH_ADDON`: a path to the `.node` file, required as is
 *    (`TORCHSAVE_LIBTORCH=0` turns the addon off);
 * 2. the `@torchsave/libtorch` package, if installed;
 * 3. napi's generated loader `native/libtorch/bindings.js` (shipped in the package; written by
 *    `scripts/build-libtorch.sh`): `torchsave-libtorch.<platform>.node` next to it, else the
 *    prebuilt package `@torchsave/libtorch-<platform>`.
 * Failing that, `E_DEVICE_UNAVAILABLE` says what was tried and the commands that fix it.
 *
 * The addon throws coded errors itself (`.code` from crate/core's ErrorCode: `E_COMPUTE` for
 * an error libtorch raised, `E_INVALID_ARGUMENT` for a freed handle, ...).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { torchsaveError } from '../errors';
import { loaderReasons, native } from '../raw/native';
import type * as Bindings from '../../native/libtorch/bindings';

export type LibtorchAddon = typeof Bindings;
export type NativeTensor = Bindings.NativeTensor;

/** The libtorch version the compute addon is built against (tch 0.24). */
export const LIBTORCH_VERSION = '2.11';

/** The prebuilt compute package for this platform (napi's platform-arch-abi naming). */
export function computePackage(): string {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : process.platform === 'win32' ? '-msvc' : '';
  return `@torchsave/libtorch-${process.platform}-${process.arch}${abi}`;
}

// napi's loader asks the same first (a small file read, cheap enough for import time).
function isMusl(): boolean {
  return safeRead('/usr/bin/ldd').includes('musl');
}

export const LIBTORCH_HOW_TO =
  `install the compute package (\`npm install ${computePackage()}\`) and a libtorch ${LIBTORCH_VERSION}: ` +
  `\`pip install torch==${LIBTORCH_VERSION}.0\` into the \`python3\` on PATH, or TORCHSAVE_LIBTORCH=/path/to/torch ` +
  '(a pip torch folder, its lib/, or an unpacked libtorch download); from a source checkout `bash scripts/build-libtorch.sh` ' +
  'builds the addon, and TORCHSAVE_LIBTORCH_ADDON=/path/to/torchsave-libtorch.node points at a built one';

interface LoadState {
  addon?: LibtorchAddon;
  reason?: string;
  path?: string;
}

let state: LoadState | undefined;

// dist/libtorch/addon.js and ts/libtorch/addon.ts both sit two levels below the package root.
const GENERATED_LOADER = join(__dirname, '..', '..', 'native', 'libtorch', 'bindings.js');

function candidates(): string[] {
  const out: string[] = [];
  const env = process.env.TORCHSAVE_LIBTORCH_ADDON;
  if (env) out.push(env);
  try {
    out.push(require.resolve('@torchsave/libtorch'));
  } catch {
    // not installed: fine
  }
  out.push(GENERATED_LOADER);
  return out;
}

const LIB_NAMES = ['c10', 'c10_cuda', 'torch_cpu', 'torch_cuda', 'torch'];

function libFile(dir: string, name: string): string {
  if (process.platform === 'win32') return join(dir, `${name}.dll`);
  return join(dir, process.platform === 'darwin' ? `lib${name}.dylib` : `lib${name}.so`);
}

/** `dir`'s folder of libtorch libraries (`dir` itself or `dir/lib`), or why not. */
function libDirOf(dir: string): { lib?: string; why?: string } {
  for (const lib of [join(dir, 'lib'), dir]) {
    if (!existsSync(libFile(lib, 'c10'))) continue;
    // A libtorch download records its version in build-version; pip's torch in version.py.
    const root = lib === dir ? join(dir, '..') : dir;
    let version: string | undefined;
    try {
      version = readFileSync(join(root, 'build-version'), 'utf8').trim();
    } catch {
      const m = /__version__\s*=\s*['"]([^'"]+)/.exec(safeRead(join(root, 'version.py')));
      version = m?.[1];
    }
    if (version && !version.startsWith(`${LIBTORCH_VERSION}.`)) return { why: `libtorch ${version} at ${lib}, not ${LIBTORCH_VERSION}` };
    return { lib };
  }
  return { why: `no ${libFile('lib', 'c10').replace(/^lib[\\/]/, '')} in ${dir} or ${join(dir, 'lib')}` };
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/** Where libtorch's libraries are (see the module comment), with what was tried. */
function findLibtorch(tried: string[]): string | undefined {
  for (const name of ['TORCHSAVE_LIBTORCH', 'LIBTORCH'] as const) {
    const dir = process.env[name];
    if (!dir) {
      tried.push(`${name} (unset)`);
      continue;
    }
    const r = libDirOf(dir);
    if (r.lib) return r.lib;
    tried.push(`${name}=${dir} (${r.why})`);
  }
  const py = process.platform === 'win32' ? 'python' : 'python3';
  try {
    const out = execFileSync(py, ['-c', 'import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 30_000,
    }).trim().split(/\r?\n/);
    const [version = '', dir = ''] = out.slice(-2);
    if (!version.startsWith(`${LIBTORCH_VERSION}.`)) {
      tried.push(`${py} (torch ${version} at ${dir}, not ${LIBTORCH_VERSION})`);
      return undefined;
    }
    const r = libDirOf(dir);
    if (r.lib) return r.lib;
    tried.push(`${py} (torch ${version}: ${r.why})`);
  } catch (e) {
    tried.push(`${py} (${e instanceof Error && 'code' in e && e.code === 'ENOENT' ? 'not on PATH' : 'no torch: import torch failed'})`);
  }
  return undefined;
}

/** Loads libtorch's libraries process-wide; the reason when that fails. */
function preload(lib: string): string | undefined {
  const files = LIB_NAMES.map((n) => libFile(lib, n)).filter((f) => existsSync(f));
  try {
    native().preloadSharedLibraries(files);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
}

/** Loads the addon once; never throws. */
export function loadLibtorch(): LoadState {
  if (state) return state;
  if (process.env.TORCHSAVE_LIBTORCH === '0') {
    state = { reason: `the libtorch addon is turned off (TORCHSAVE_LIBTORCH=0); to use it unset that and ${LIBTORCH_HOW_TO}` };
    return state;
  }
  const tried: string[] = [];
  const lib = findLibtorch(tried);
  if (lib) {
    const why = preload(lib);
    if (why) tried.push(`libtorch at ${lib} (${why})`);
  }
  for (const p of candidates()) {
    if (!p.startsWith('@') && !existsSync(p)) {
      tried.push(`${p} (not found)`);
      continue;
    }
    try {
      state = { addon: require(p) as LibtorchAddon, path: p };
      return state;
    } catch (e) {
      tried.push(`${p} (${loaderReasons(e).join('; ') || 'not loadable'})`);
    }
  }
  state = { reason: `the libtorch addon is not available: ${LIBTORCH_HOW_TO}. Tried: ${tried.join('; ')}` };
  return state;
}

/** Whether the addon is loaded already (never loads it). */
export function libtorchLoaded(): boolean {
  return state?.addon !== undefined;
}

/** The addon, or an E_DEVICE_UNAVAILABLE error that says how to get it. */
export function lt(what = 'this operation'): LibtorchAddon {
  const s = loadLibtorch();
  if (s.addon) return s.addon;
  throw torchsaveError('E_DEVICE_UNAVAILABLE', `${what} needs the libtorch addon; torchsave loads and saves without it. ${s.reason}`);
}
