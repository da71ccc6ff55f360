/**
 * Finds and loads the optional libtorch addon (crate/libtorch), lazily: importing torchsave
 * never loads libtorch; the first compute call, `torch.backends.libtorch.isAvailable()` or
 * `torch.cuda.isAvailable()` does.
 *
 * Where it looks, in order:
 * 1. `TORCHSAVE_LIBTORCH_ADDON`: a path to the `.node` file (`TORCHSAVE_LIBTORCH=0` turns the
 *    addon off);
 * 2. the `@torchsave/libtorch` package, if installed;
 * 3. `native/libtorch/torchsave-libtorch.<platform>.node` in this package, which
 *    `scripts/build-libtorch.sh` builds against a pip-installed torch 2.11 or a `LIBTORCH`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { torchsaveError, type TorchsaveErrorCode } from '../errors';
import type * as Bindings from '../../native/libtorch/bindings';

export type LibtorchAddon = typeof Bindings;
export type NativeTensor = Bindings.NativeTensor;

export const LIBTORCH_HOW_TO =
  'build it with `bash scripts/build-libtorch.sh` (needs Rust and either `pip install torch==2.11.0` or LIBTORCH=/path/to/libtorch-2.11), ' +
  'or point TORCHSAVE_LIBTORCH_ADDON at a built torchsave-libtorch .node file';

interface LoadState {
  addon?: LibtorchAddon;
  reason?: string;
  path?: string;
}

let state: LoadState | undefined;

function platformTag(): string {
  const arch = process.arch;
  if (process.platform === 'linux') {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    return `linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
  }
  if (process.platform === 'win32') return `win32-${arch}-msvc`;
  return `${process.platform}-${arch}`;
}

function candidates(): string[] {
  const out: string[] = [];
  const env = process.env.TORCHSAVE_LIBTORCH_ADDON;
  if (env) out.push(env);
  try {
    out.push(require.resolve('@torchsave/libtorch'));
  } catch {
    // not installed: fine
  }
  // dist/libtorch/addon.js and ts/libtorch/addon.ts both sit two levels below the package root.
  out.push(join(__dirname, '..', '..', 'native', 'libtorch', `torchsave-libtorch.${platformTag()}.node`));
  return out;
}

/** Loads the addon once; never throws. */
export function loadLibtorch(): LoadState {
  if (state) return state;
  if (process.env.TORCHSAVE_LIBTORCH === '0') {
    state = { reason: `the libtorch addon is turned off (TORCHSAVE_LIBTORCH=0); to use it unset that and ${LIBTORCH_HOW_TO}` };
    return state;
  }
  const tried: string[] = [];
  for (const p of candidates()) {
    if (!p.startsWith('@') && !existsSync(p)) {
      tried.push(`${p} (not found)`);
      continue;
    }
    try {
      state = { addon: require(p) as LibtorchAddon, path: p };
      return state;
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
      tried.push(`${p} (${msg}; libtorch's shared libraries must be findable: the rpath of the build, or LD_LIBRARY_PATH=<torch>/lib)`);
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

const CODE_PREFIX = /^(E_[A-Z_]+): /;

/** Runs a native call, moving the addon's `E_...: ` message prefix into the error's `code`. */
export function nat<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw withCode(e);
  }
}

export function withCode(e: unknown): unknown {
  if (e instanceof Error) {
    const m = CODE_PREFIX.exec(e.message);
    if (m) return torchsaveError(m[1] as TorchsaveErrorCode, e.message.slice(m[0].length));
  }
  return e;
}
