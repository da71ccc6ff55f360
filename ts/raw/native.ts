/**
 * The native addon: loads it through the napi-rs generated loader (`native/bindings.js`),
 * which honours `NAPI_RS_NATIVE_LIBRARY_PATH`, and types it by the generated
 * `native/bindings.d.ts` (the one description of the binding's surface; option and result
 * shapes come from the Rust structs, the raw tree's from `./tree`). Loading is lazy so that
 * importing torchsave (for types, `repr`, tensor math) never fails on a machine without the
 * binary; the first load/save then explains what is missing.
 */
import { readFileSync } from 'node:fs';
import { torchsaveError } from '../errors';

/** The binding's exports, as generated from `crate/node`. */
export type NativeBinding = typeof import('../../native/bindings');
export type {
  NativeConvertOptions,
  NativeDiff,
  NativeFileReport,
  NativeInspectOptions,
  NativeLoadOptions,
  NativeProgress,
  NativeSaveOptions,
  NativeSummary,
} from '../../native/bindings';

let binding: NativeBinding | undefined;

/** The native addon; throws `E_NATIVE_MISSING` with the loader's reasons when absent. */
export function native(): NativeBinding {
  if (binding) return binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require('../../native/bindings.js') as NativeBinding;
  } catch (e) {
    throw torchsaveError('E_NATIVE_MISSING', missingMessage(e));
  }
  return binding;
}

/** napi's platform-arch-abi name for this machine (`linux-x64-gnu`, `darwin-arm64`, ...). */
export function platformTriple(): string {
  if (process.platform === 'linux') {
    let musl = false;
    try {
      musl = readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
    } catch {
      // no ldd: assume glibc, as napi's loader falls back to
    }
    return `linux-${process.arch}-${musl ? 'musl' : 'gnu'}`;
  }
  return process.platform === 'win32' ? `win32-${process.arch}-msvc` : `${process.platform}-${process.arch}`;
}

/**
 * What to install, as sharp says it: the exact platform package, and the npm flag that drops
 * it (`--omit=optional`, a lockfile made on another OS). napi's loader errors (its generic
 * "npm has a bug related to optional dependencies" text) are reduced to their first lines.
 */
function missingMessage(e: unknown): string {
  const pkg = `@torchsave/binding-${platformTriple()}`;
  const causes = loaderReasons(e);
  return (
    `torchsave's native addon could not be loaded for ${platformTriple()} (Node ${process.version}).\n` +
    `Install its prebuilt binary: \`npm install ${pkg}\` (it is an optional dependency of torchsave: ` +
    `reinstall with \`npm install --include=optional torchsave\` if optional dependencies were omitted, ` +
    `or if package-lock.json was made on another platform).\n` +
    `Supported: linux x64/arm64 (glibc >= 2.17 or musl), macOS x64/arm64, Windows x64/arm64. ` +
    `From a source checkout: \`npm run build:native\`; or set NAPI_RS_NATIVE_LIBRARY_PATH to a torchsave .node file.\n` +
    (causes.length ? `Loader said: ${causes.join(' | ')}` : '')
  );
}

/**
 * The reasons in a napi loader error, without its generic "Cannot find native binding. npm has
 * a bug ..." headline: the loader throws one error whose `cause` chain holds each attempt's.
 */
export function loaderReasons(e: unknown): string[] {
  const out: string[] = [];
  let c: unknown = e;
  while (c instanceof Error && out.length < 8) {
    const first = c.message.split('\n')[0] ?? '';
    if (first && !/^Cannot find native binding/.test(first)) out.push(first);
    c = (c as { cause?: unknown }).cause;
  }
  if (out.length === 0 && !(e instanceof Error)) out.push(String(e));
  return out;
}

/** True when the native addon loads. */
export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}
