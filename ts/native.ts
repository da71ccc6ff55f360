/**
 * Loads the prebuilt addon through the napi-rs generated loader (`native/bindings.js`), which
 * honours `NAPI_RS_NATIVE_LIBRARY_PATH`, and types its raw surface. Loading is lazy so that
 * importing torchsave (for types, `repr`, tensor math) never fails on a machine without the
 * binary; the first load/save then explains what is missing.
 */
import type { RawLoaded, RawSaveStorage, RawValue } from './raw';
import { torchsaveError } from './errors';

export interface NativeLoadOptions {
  weightsOnly?: boolean;
  safeGlobals?: string[];
  mmap?: boolean;
  encoding?: string;
  verifyCrc?: boolean;
  externalBuffers?: boolean;
}

export interface NativeSaveOptions {
  format?: 'zip' | 'legacy';
  protocol?: number;
  archiveName?: string;
  compact?: boolean;
}

export interface NativeInspectOptions {
  sha256?: boolean;
  weightsOnly?: boolean;
  safeGlobals?: string[];
}

export interface NativeBinding {
  coreVersion(): string;
  load(source: string | Uint8Array, options?: NativeLoadOptions): RawLoaded;
  loadAsync(source: string | Uint8Array, options?: NativeLoadOptions): Promise<RawLoaded>;
  save(raw: RawValue, storages: RawSaveStorage[], path: string | null, options?: NativeSaveOptions): Buffer | null;
  saveAsync(raw: RawValue, storages: RawSaveStorage[], path: string | null, options?: NativeSaveOptions): Promise<Buffer | null>;
  inspect(source: string | Uint8Array, options?: NativeInspectOptions): string;
  _graphRoundTrip(raw: RawValue, storages: RawSaveStorage[]): RawLoaded;
}

let binding: NativeBinding | undefined;

/** The native addon; throws `E_NATIVE_MISSING` with the loader's reasons when absent. */
export function native(): NativeBinding {
  if (binding) return binding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    binding = require('../native/bindings.js') as NativeBinding;
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
