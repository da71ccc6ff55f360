/**
 * The raw tree: what the native binding returns from `load` and accepts in `save`.
 *
 * This is the typed mirror of `crate/node/src/to_js.rs` / `from_js.rs`; keep them in step.
 * The binding builds these values by hand, so napi cannot describe them: the generated
 * `native/bindings.d.ts` points at `RawLoaded` and `RawSaveTree` here (`ts_return_type` /
 * `ts_args_type` in `crate/node/src/lib.rs`), so this is their one description.
 * Users never see it: `serialization/` turns it into TS values (Map, OrderedDict, PyTuple,
 * Tensor, ...) and back.
 *
 * * scalars: `null`, boolean, number (an int within ±2^53 or a non-integral float), bigint
 *   (an int beyond ±2^53), string, `Uint8Array` (Python `bytes`);
 * * an integral Python float (`2.0`) is `{t:'float', v: 2}` so it can be re-saved as a float;
 * * a list is a plain array on load; on save it may also be `{t:'list', id, items}`;
 * * other compound values are objects tagged by `t`; dict-like items are flat `[k0, v0, ...]`;
 * * identity on load: a node reached twice is the same JS object; on save: a compound node
 *   may carry `id`, and later occurrences of that object are `{t:'ref', id}`.
 */

export type RawValue = null | boolean | number | bigint | string | Uint8Array | RawValue[] | RawNode;

export interface RawIdentity {
  /** Save only: identity of this node; later occurrences are `{t:'ref', id}`. */
  id?: number;
}

export interface RawFloat {
  t: 'float';
  v: number;
}
export interface RawComplex {
  t: 'complex';
  re: number;
  im: number;
}
export interface RawRef {
  t: 'ref';
  id: number;
}
export interface RawSeq extends RawIdentity {
  t: 'list' | 'tuple' | 'set' | 'frozenset';
  items: RawValue[];
}
export interface RawDict extends RawIdentity {
  t: 'dict';
  items: RawValue[];
}
export interface RawODict extends RawIdentity {
  t: 'odict';
  items: RawValue[];
  /** The instance `__dict__` restored by BUILD (`{'_metadata': OrderedDict}` for state dicts). */
  state?: RawValue;
}
export interface RawByteArray extends RawIdentity {
  t: 'bytearray';
  data: Uint8Array;
}
export interface RawTensor extends RawIdentity {
  t: 'tensor';
  /** Index into the storages array; `null` for meta tensors. */
  storage: number | null;
  dtype: string;
  shape: number[];
  stride: number[];
  offset: number;
  requiresGrad: boolean;
  parameter: boolean;
  parameterState?: RawValue;
  quantizer?: { scheme: string; params: RawValue[] };
  metadata?: RawValue;
  subclass?: { module: string; name: string; state: RawValue };
  device?: string;
}
export interface RawSparse extends RawIdentity {
  t: 'sparse';
  layout: string;
  args: RawValue[];
  requiresGrad: boolean;
}
export interface RawStorageRef extends RawIdentity {
  t: 'storage';
  storage: number;
}
export interface RawSize extends RawIdentity {
  t: 'size';
  dims: (number | bigint)[];
}
export interface RawName extends RawIdentity {
  t: 'device' | 'dtype' | 'layout';
  v: string;
}
export interface RawGlobal extends RawIdentity {
  t: 'global';
  module: string;
  name: string;
}
export interface RawNdArray extends RawIdentity {
  t: 'ndarray';
  module: string;
  descr: string;
  shape: number[];
  fortran: boolean;
  data: Uint8Array;
  items?: RawValue;
}
export interface RawNpScalar extends RawIdentity {
  t: 'npscalar';
  module: string;
  descr: string;
  data: Uint8Array;
}
export interface RawObject extends RawIdentity {
  t: 'object';
  module: string;
  name: string;
  kind: 'reduce' | 'newobj' | 'newobj_ex' | 'inst';
  args: RawValue;
  kwargs?: RawValue;
  /** Absent: no BUILD; `null`: BUILD with None. */
  state?: RawValue;
  listItems: RawValue[];
  dictItems: RawValue[];
}

export type RawNode =
  | RawSaveTensor
  | RawFloat
  | RawComplex
  | RawRef
  | RawSeq
  | RawDict
  | RawODict
  | RawByteArray
  | RawTensor
  | RawSparse
  | RawStorageRef
  | RawSize
  | RawName
  | RawGlobal
  | RawNdArray
  | RawNpScalar
  | RawObject;

/** A storage as loaded: a window onto an ArrayBuffer (shared by all storages of one file). */
export interface RawStorage {
  key: string;
  dtype: string;
  untyped: boolean;
  numel: number;
  location: string;
  buffer: ArrayBuffer;
  byteOffset: number;
  byteLength: number;
  /** `buffer` is the loaded file's own memory map (see ts/raw/mapped.ts). */
  mapped?: boolean;
}

export interface RawLoadInfo {
  format: 'zip' | 'legacy' | 'tar' | 'pickle' | 'torchscript' | 'dcp';
  globals: string[];
  bigEndian: boolean;
  pickleProtocol: number;
  archiveName?: string;
  version?: string;
}

export interface RawLoaded {
  root: RawValue;
  storages: RawStorage[];
  /** Absent only from the `_graphRoundTrip` test hook. */
  info?: RawLoadInfo;
}

/**
 * A tensor as `save` receives it: its numeric facts live in the tree's `tensorMeta` table
 * from index `m` (see {@link RawSaveTree}), so a state dict of thousands of tensors crosses
 * into Rust as one Float64Array instead of thousands of small objects and arrays.
 */
export interface RawSaveTensor extends RawIdentity {
  t: 'tensor';
  m: number;
  parameterState?: RawValue;
  quantizer?: { scheme: string; params: RawValue[] };
  metadata?: RawValue;
  subclass?: { module: string; name: string; state: RawValue };
}

/** `tensorMeta` flag bits of a {@link RawSaveTensor}. */
export const TENSOR_FLAGS = {
  requiresGrad: 1,
  parameter: 2,
  metaDevice: 4,
  parameterState: 8,
  quantizer: 16,
  metadata: 32,
  subclass: 64,
} as const;

/**
 * What `save` receives: the value tree plus its tables, read by Rust in a few calls instead of
 * a dozen property reads per tensor. Each tensor's entry in `tensorMeta` is `[storage (-1:
 * none), dtype (index into dtypes), ndim, storageOffset, flags, ...shape, ...stride]`; the
 * flags say which optional fields its node carries. Storage `i` is `storageData[i]` (not
 * copied) with `storageMeta[3i..3i+3] = [dtype index, location (index into strings), key
 * (index into strings, -1: its index)]`.
 */
export interface RawSaveTree {
  root: RawValue;
  tensorMeta: Float64Array;
  dtypes: string[];
  storageData: Uint8Array[];
  storageMeta: Float64Array;
  strings: string[];
}

/** A storage handed to `save`: its bytes are not copied. */
export interface RawSaveStorage {
  data: Uint8Array;
  dtype: string;
  location: string;
  key?: string;
}
