/**
 * The native addon: loads it through the napi-rs generated loader (`native/bindings.js`),
 * which honours `NAPI_RS_NATIVE_LIBRARY_PATH`, and types it by the generated
 * `native/bindings.d.ts` (the one description of the binding's surface; option and result
 * shapes come from the Rust structs, the raw tree's from `./tree`). Loading is lazy so that
 * importing torchsave (for types, `repr`, tensor math) never fails on a machine without the
 * binary; the first load/save then explains what is missing.
 */
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
    const why = e instanceof Error ? e.message : String(e);
    throw torchsaveError(
      'E_NATIVE_MISSING',
      `torchsave's native addon could not be loaded for ${process.platform}-${process.arch}. ` +
        `Install the matching prebuilt package (@torchsave/binding-<platform>), build it with ` +
        `'npm run build:native', or point NAPI_RS_NATIVE_LIBRARY_PATH at a torchsave .node file.\n${why}`,
    );
  }
  return binding;
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
