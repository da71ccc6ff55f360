/**
 * safetensors files as flat state dicts: `loadSafetensors` / `saveSafetensors`, the
 * counterparts of `safetensors.torch.load_file` / `save_file`. `torch.load(path)` reads a
 * `.safetensors` path through the same code.
 *
 * Differences from the Python package, both so that `save` → `load` gives back the dict that
 * was saved: tensors that share memory are written once (like `save_model`) with the alias
 * recorded in `__metadata__`, and loading re-adds such aliases as second keys for the same
 * tensor (`restoreAliases: false` reads the file as `load_file` does).
 */
import { native } from './raw/native';
import { torchsaveError } from './errors';
import { type LoadOptions, fromRaw, loadSafetensorsWithInfo, toRaw } from './serialization';
import { Tensor } from './tensor';
import { OrderedDict } from './values';

/** Options of {@link loadSafetensors}: `mmap` and `externalBuffers` as for `torch.load`. */
export interface SafetensorsLoadOptions extends Pick<LoadOptions, 'mmap' | 'externalBuffers'> {
  /** Re-add names the writer dropped as aliases of another tensor (default true). */
  restoreAliases?: boolean;
}

/** Options of {@link saveSafetensors}. */
export interface SafetensorsSaveOptions {
  /** `__metadata__` strings (after `format: pt`). */
  metadata?: Record<string, string>;
}

/** Reads a safetensors file: name → Tensor in the file's order (mmapped, zero-copy). */
export function loadSafetensors(path: string, opts: SafetensorsLoadOptions = {}): OrderedDict<string, Tensor> {
  return loadSafetensorsWithMetadata(path, opts).stateDict;
}

/** {@link loadSafetensors} plus the file's `__metadata__`. */
export function loadSafetensorsWithMetadata(
  path: string,
  opts: SafetensorsLoadOptions = {},
): {
  /** name → Tensor, in the file's order. */
  stateDict: OrderedDict<string, Tensor>;
  /** The `__metadata__` strings (`format: pt` included when present). */
  metadata: Record<string, string>;
} {
  if (typeof path !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', 'loadSafetensors expects a path');
  if (opts.restoreAliases === false) {
    const lo: { mmap?: boolean; externalBuffers?: boolean } = {};
    if (opts.mmap !== undefined) lo.mmap = opts.mmap;
    if (opts.externalBuffers !== undefined) lo.externalBuffers = opts.externalBuffers;
    const raw = native().loadSafetensors(path, lo, false);
    const stateDict = fromRaw(raw, opts as LoadOptions, path) as OrderedDict<string, Tensor>;
    return { stateDict, metadata: Object.fromEntries(raw.metadata) };
  }
  const { value, info } = loadSafetensorsWithInfo<OrderedDict<string, Tensor>>(path, opts);
  return { stateDict: value, metadata: info.metadata ?? {} };
}

function entries(sd: unknown): [string, Tensor][] {
  if (sd === null || typeof sd !== 'object') {
    throw torchsaveError('E_INVALID_ARGUMENT', 'saveSafetensors expects a state dict (a Map or object of name -> Tensor)');
  }
  const list: [unknown, unknown][] = sd instanceof Map ? [...sd] : Object.entries(sd);
  return list.map(([k, v]) => {
    if (typeof k !== 'string') throw torchsaveError('E_UNSERIALIZABLE', `safetensors keys are strings, got ${typeof k}`);
    if (!(v instanceof Tensor)) throw torchsaveError('E_UNSERIALIZABLE', `'${k}' is not a Tensor: safetensors holds tensors only`);
    return [k, v];
  });
}

/**
 * Writes a flat state dict as safetensors: to `path` atomically (temporary file, fsync,
 * rename), or returns the bytes when `path` is null.
 */
export function saveSafetensors(stateDict: Map<string, Tensor> | Record<string, Tensor>, path: string, opts?: SafetensorsSaveOptions): void;
export function saveSafetensors(stateDict: Map<string, Tensor> | Record<string, Tensor>, path: null, opts?: SafetensorsSaveOptions): Buffer;
export function saveSafetensors(
  stateDict: Map<string, Tensor> | Record<string, Tensor>,
  path: string | null,
  opts: SafetensorsSaveOptions = {},
): Buffer | void {
  if (path !== null && typeof path !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', 'saveSafetensors expects a path or null');
  const flat = new OrderedDict<string, Tensor>(entries(stateDict));
  const md = Object.entries(opts.metadata ?? {});
  for (const [k, v] of md) {
    if (typeof v !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', `metadata '${k}' must be a string`);
  }
  const { raw } = toRaw(flat);
  const bytes = native().saveSafetensors(raw, path, md);
  if (path === null) return bytes ?? Buffer.alloc(0);
}
