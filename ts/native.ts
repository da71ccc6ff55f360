/**
 * Loads the prebuilt addon through the napi-rs generated loader (`native/bindings.js`), which
 * honours `NAPI_RS_NATIVE_LIBRARY_PATH`, and types its raw surface. Loading is lazy so that
 * importing torchsave (for types, `repr`, tensor math) never fails on a machine without the
 * binary; the first load/save then explains what is missing.
 */
import type { RawLoaded, RawSaveTree } from './raw';
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
  durable?: boolean;
}

export interface NativeInspectOptions {
  sha256?: boolean;
  weightsOnly?: boolean;
  safeGlobals?: string[];
}

export interface NativeConvertOptions {
  to?: string;
  out?: string;
  select?: string;
  stripPrefix?: string[];
  stripDataParallel?: boolean;
  /** `[pattern, replacement]` pairs, Rust regex syntax. */
  rename?: (string | [string, string])[];
  dtype?: string;
  dropOptimizer?: boolean;
  compact?: boolean;
  shardSize?: number | string;
  jobs?: number;
  dryRun?: boolean;
  verify?: boolean;
  force?: boolean;
  durable?: boolean;
  keepTree?: boolean;
  shardIndex?: number;
  shardCount?: number;
  weightsOnly?: boolean;
  safeGlobals?: string[];
}

export interface NativeFileReport {
  input: string;
  outputs: string[];
  format: string;
  tensors: number;
  bytesIn: number;
  bytesOut: number;
  millis: number;
  verified: boolean;
  notes: string[];
  error?: { code: string; message: string };
}

export interface NativeProgress {
  index: number;
  total: number;
  done: number;
  input: string;
  report?: NativeFileReport;
}

export interface NativeSummary {
  files: string[];
  count: number;
  formats: { name: string; files: number }[];
  dtypes: { dtype: string; tensors: number; bytes: number }[];
  tensors: number;
  totalBytes: number;
  tensorBytes: number;
  errors: { path: string; code: string; message: string }[];
}

export interface NativeDiff {
  added: string[];
  removed: string[];
  changed: { key: string; reason: 'dtype' | 'shape' | 'values'; maxAbsDiff?: number | null }[];
  same: number;
}

export interface NativeBinding {
  coreVersion(): string;
  load(source: string | Uint8Array, options?: NativeLoadOptions): RawLoaded;
  loadAsync(source: string | Uint8Array, options?: NativeLoadOptions): Promise<RawLoaded>;
  save(raw: RawSaveTree, path: string | null, options?: NativeSaveOptions): Buffer | null;
  saveAsync(raw: RawSaveTree, path: string | null, options?: NativeSaveOptions): Promise<Buffer | null>;
  inspect(source: string | Uint8Array, options?: NativeInspectOptions): string;
  _graphRoundTrip(raw: RawSaveTree): RawLoaded;
  loadSafetensors(path: string, options?: NativeLoadOptions, restoreAliases?: boolean): RawLoaded & { metadata: [string, string][] };
  saveSafetensors(raw: RawSaveTree, path: string | null, metadata?: [string, string][]): Buffer | null;
  convert(
    inputs: string[],
    options: NativeConvertOptions,
    onProgress?: ((event: NativeProgress) => void) | null,
    signal?: AbortSignal | null,
  ): Promise<NativeFileReport[]>;
  inspectMany(patterns: string[], weightsOnly?: boolean): Promise<NativeSummary>;
  diff(a: string, b: string, weightsOnly?: boolean): Promise<NativeDiff>;
  discoverInputs(patterns: string[], shardIndex?: number, shardCount?: number): string[];
  parseSize(size: string): number;
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
