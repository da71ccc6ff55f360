/**
 * Finds and loads the optional libtorch addon (crate/libtorch), lazily: importing torchsave
 * never loads libtorch; the first compute call, `torch.backends.libtorch.isAvailable()` or
 * `torch.cuda.isAvailable()` does.
 *
 * Where it looks, in order:
 * 1. `TORCHSAVE_LIBTORCH_ADDON`: a path to the `.node` file, required as is
 *    (`TORCHSAVE_LIBTORCH=0` turns the addon off);
 * 2. the `@torchsave/libtorch` package, if installed;
 * 3. napi's generated loader `native/libtorch/bindings.js` (written by
 *    `scripts/build-libtorch.sh`, which builds against a pip-installed torch 2.11 or a
 *    `LIBTORCH`): `torchsave-libtorch.<platform>.node` next to it, or its platform package.
 *
 * The addon throws coded errors itself (`.code` from crate/core's ErrorCode: `E_COMPUTE` for
 * an error libtorch raised, `E_INVALID_ARGUMENT` for a freed handle, ...).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { torchsaveError } from '../errors';
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
