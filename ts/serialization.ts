/**
 * `torch.load` / `torch.save` for TypeScript: the raw tree (ts/raw.ts) ↔ TS values.
 *
 * Loading: the binding returns `{root, storages, info}`; {@link fromRaw} builds one
 * {@link UntypedStorage} per file storage (tensors viewing it share it, so views stay views),
 * resolves each storage's device (`mapLocation`), and turns tagged nodes into classes.
 * Identity survives: a raw node reached twice is one JS object, so it becomes one TS value.
 * Integral Python floats (`2.0`) load as numbers; their positions are remembered per
 * container (a WeakMap) so that a re-save writes floats again.
 * PyObjects whose `module.name` has a class (`classes` option, then the global registry)
 * are replaced bottom-up by `cls.fromPyObject(obj)`.
 *
 * Saving: {@link toRaw} walks the value, gives every compound object an id (later
 * occurrences become `{t:'ref', id}`), collects each distinct UntypedStorage once, and names
 * the path of anything it cannot write (`E_UNSERIALIZABLE`).
 */
import * as fs from 'node:fs';
import { type DType, parseDType } from './dtype';
import { type TorchsaveError, torchsaveError } from './errors';
import { native, type NativeLoadOptions, type NativeSaveOptions } from './native';
import { TENSOR_FLAGS, type RawLoaded, type RawNode, type RawObject, type RawSaveStorage, type RawSaveTensor, type RawSaveTree, type RawStorage, type RawTensor, type RawValue } from './raw';
import { SparseTensor } from './sparse';
import { Parameter, Tensor, UntypedStorage } from './tensor';
import { loadLibtorch, lt, nat, type NativeTensor, withCode } from './libtorch/addon';
import {
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  OrderedDict,
  PyByteArray,
  type PyClass,
  PyComplex,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  type PyObjectKind,
  PyTuple,
  Size,
  isPyReducible,
  lookupPyClass,
  pyReduce,
} from './values';

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------

/** Where a storage recorded at `location` should go: PyTorch's `map_location`. */
export type MapLocation =
  | string
  | Device
  | Record<string, string | Device>
  | ((storage: UntypedStorage, location: string) => UntypedStorage | string | Device | null | undefined);

/** A class allowed by `safeGlobals`: anything with a static `pyName` (`module.qualname`). */
export interface NamedPyClass {
  readonly pyName: string;
}

export interface LoadOptions {
  /** Accept only what PyTorch's weights-only unpickler accepts (default `true`, like torch ≥ 2.6). */
  weightsOnly?: boolean;
  /** Map the file instead of reading it (default `true`; paths only). */
  mmap?: boolean;
  /**
   * Where storages go, as PyTorch's `map_location`. Without it, storages go where they were
   * saved; a file saved on a GPU (`cuda:0`) still opens on a machine without one (where
   * torch.load raises): its storages load on the CPU, a warning says so once, and a re-save
   * keeps their recorded location. Targets other than the CPU need the libtorch addon.
   */
  mapLocation?: MapLocation;
  /** Extra globals the weights-only loader may accept: `module.qualname` strings or classes with `pyName`. */
  safeGlobals?: (string | NamedPyClass)[];
  /** How Python 2 byte strings decode: `utf8` (default), `latin1`, or `bytes`. */
  encoding?: 'utf8' | 'latin1' | 'bytes';
  /**
   * TS classes for pickled Python classes, by `module.qualname` (built-in `torch.nn` classes
   * are mapped automatically). `false` keeps every object a raw {@link PyObject}.
   */
  classes?: Record<string, PyClass> | false;
  /**
   * Expose storage bytes as external memory (default `true`: zero-copy, mmap-backed for zip
   * files). `false` copies every storage into JS memory, which is what Electron's V8 sandbox
   * forces anyway (the binding falls back to copying there automatically).
   */
  externalBuffers?: boolean;
  /** Check the CRC-32 of every record, storages included. */
  verifyCrc?: boolean;
}

export interface SaveOptions {
  /** `zip` (default; what torch.save writes since 1.6) or `legacy` (pre-1.6 readers). */
  format?: 'zip' | 'legacy';
  /** Pickle protocol: 2 like torch.save (the default), up to 5. torch's weights-only loader (torch.load's default) refuses 4 and 5: such files need weights_only=False there. */
  pickleProtocol?: number;
  /** Write only the bytes each storage's tensors reach (smaller files for views). */
  compact?: boolean;
  /** Top folder inside the zip; default: like torch (the file's stem, or `archive`). */
  archiveName?: string;
  /**
   * Saving to a path: make the new file survive a power loss or OS crash before `save`
   * returns (default `true`: the file and its folder are fsynced; big files go to the disk
   * with direct I/O). `false` skips the fsyncs, which is what `torch.save` and `cp` do: the
   * OS writes the data back later. Either way the save is atomic: it writes a temporary file
   * in the same folder and renames it over the target, so a failed or killed save never
   * leaves a torn file and never damages the old one. Ignored for streams and buffers.
   */
  durable?: boolean;
}

/** Something bytes can be written to: a Node `Writable`, a `FileHandle`-like object, ... */
export interface WritableLike {
  write(chunk: Uint8Array): unknown;
}

/** A destination: a path, an open file descriptor, or a writable. */
export type SaveTarget = string | number | WritableLike;

/** Facts about a loaded file, next to its value (see {@link loadWithInfo}). */
export interface LoadInfo {
  /** `safetensors` for a `.safetensors` path (then `globals` is empty, `pickleProtocol` 0). */
  format: 'zip' | 'legacy' | 'tar' | 'pickle' | 'safetensors';
  /** Every global the pickle named (`module.name`), first-seen order. */
  globals: string[];
  bigEndian: boolean;
  pickleProtocol: number;
  archiveName?: string;
  version?: string;
  /** safetensors only: the `__metadata__` strings. */
  metadata?: Record<string, string>;
}

// ---------------------------------------------------------------------------------------
// Integral floats and storage facts remembered across load → save
// ---------------------------------------------------------------------------------------

/** Containers → the keys/indices that held an integral Python float. */
const floatPositions = new WeakMap<object, Set<unknown>>();

function rememberFloat(container: object, key: unknown): void {
  let s = floatPositions.get(container);
  if (!s) floatPositions.set(container, (s = new Set()));
  s.add(key);
}

/** True when `container[key]` was an integral Python float in the file it came from. */
export function wasPyFloat(container: object, key: unknown): boolean {
  return floatPositions.get(container)?.has(key) ?? false;
}

/** Marks `container[key]` as a Python float for the next save (e.g. `lr = 1` → `1.0`). */
export function markPyFloat(container: object, key: unknown): void {
  rememberFloat(container, key);
}

/** What the file said about a loaded storage (its element dtype, typed vs untyped, key). */
export interface StorageFacts {
  dtype: DType;
  untyped: boolean;
  key: string;
  /** The location recorded in the file when the storage was loaded elsewhere by default
   * (a GPU checkpoint on a CPU-only machine): a re-save writes it back. */
  recordedLocation?: string;
}
const storageFacts = new WeakMap<UntypedStorage, StorageFacts>();

/** The facts recorded for a storage that came from a file, if it did. */
export function storageInfo(s: UntypedStorage): StorageFacts | undefined {
  return storageFacts.get(s);
}

// ---------------------------------------------------------------------------------------
// Raw → TS
// ---------------------------------------------------------------------------------------

function err(code: TorchsaveError['code'], message: string): TorchsaveError {
  return torchsaveError(code, message);
}

function isCpu(d: Device): boolean {
  return d.type === 'cpu';
}

class Reader {
  private cache = new Map<object, unknown>();
  private storageObjs: (UntypedStorage | undefined)[];
  /** Storages bound for a device: filled after the value tree is built (see placeOnDevices). */
  readonly pendingDevice: PendingDeviceStorage[] = [];

  constructor(
    private loaded: RawLoaded,
    private opts: LoadOptions,
    private source: string,
  ) {
    this.storageObjs = new Array(loaded.storages.length);
  }

  storage(i: number): UntypedStorage {
    const have = this.storageObjs[i];
    if (have) return have;
    const raw = this.loaded.storages[i];
    if (!raw) throw err('E_BAD_PICKLE', `storage index ${i} is out of range`);
    const s = this.placeStorage(raw);
    const facts: StorageFacts = { dtype: parseDType(raw.dtype), untyped: raw.untyped, key: raw.key };
    if (this.opts.mapLocation === undefined && s.device.toString() !== raw.location) facts.recordedLocation = raw.location;
    storageFacts.set(s, facts);
    this.storageObjs[i] = s;
    return s;
  }

  /** Applies `mapLocation` to one storage (PyTorch's `default_restore_location` rules). */
  private placeStorage(raw: RawStorage): UntypedStorage {
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    const loc = raw.location;
    const ml = this.opts.mapLocation;
    let target: Device;
    if (ml === undefined) {
      target = parseLocation(loc);
    } else if (typeof ml === 'function') {
      const r = ml(new UntypedStorage(bytes, 'cpu'), loc);
      if (r instanceof UntypedStorage) return r;
      target = r === null || r === undefined ? parseLocation(loc) : new Device(r);
    } else if (typeof ml === 'string' || ml instanceof Device) {
      target = new Device(ml);
    } else {
      const m = ml[loc];
      target = m === undefined ? parseLocation(loc) : new Device(m);
    }
    if (isCpu(target)) return new UntypedStorage(bytes, target);
    if (deviceUsable(target)) {
      const st = UntypedStorage.pending(bytes.byteLength, target.toString());
      this.pendingDevice.push({ storage: st, bytes, device: target.toString() });
      return st;
    }
    if (ml === undefined) {
      // Better than torch.load, which raises here: the bytes are host memory anyway.
      warnDeviceFallbackOnce(loc);
      return new UntypedStorage(bytes, 'cpu');
    }
    throw err(
      'E_DEVICE_UNAVAILABLE',
      `${this.source}: mapLocation sends storage ${raw.key} (saved on '${loc}') to '${target}', ` +
        `but ${loadLibtorch().addon ? `${target} is not available here (torch.cuda.isAvailable() is false or the index is too high)` : "only 'cpu' is available without the libtorch addon (torch.backends.libtorch.isAvailable())"}.`,
    );
  }

  value(v: RawValue, parent?: object, key?: unknown): unknown {
    if (v === null || typeof v !== 'object') return v;
    if (v instanceof Uint8Array) return v;
    const hit = this.cache.get(v);
    if (hit !== undefined) return hit;
    if (Array.isArray(v)) {
      const out: unknown[] = new Array(v.length);
      this.cache.set(v, out);
      for (let i = 0; i < v.length; i++) out[i] = this.value(v[i]!, out, i);
      return out;
    }
    return this.node(v, parent, key);
  }

  private pairsInto(flat: RawValue[], target: Map<unknown, unknown>): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const k = this.value(flat[i]!);
      const raw = flat[i + 1]!;
      target.set(k, this.value(raw, target, k));
      if (isRawFloat(raw)) rememberFloat(target, k);
    }
  }

  private node(n: RawNode, parent?: object, key?: unknown): unknown {
    switch (n.t) {
      case 'float':
        if (parent !== undefined) rememberFloat(parent, key);
        return n.v;
      case 'complex':
        return new PyComplex(n.re, n.im);
      case 'ref':
        throw err('E_BAD_PICKLE', 'unexpected reference node in a loaded tree');
      case 'list':
      case 'tuple': {
        const out = n.t === 'tuple' ? new PyTuple<unknown>() : ([] as unknown[]);
        this.cache.set(n, out);
        n.items.forEach((x, i) => out.push(this.value(x, out, i)));
        return out;
      }
      case 'set':
      case 'frozenset': {
        const out = n.t === 'set' ? new Set<unknown>() : new PyFrozenSet<unknown>();
        this.cache.set(n, out);
        for (const x of n.items) out.add(this.value(x));
        return out;
      }
      case 'dict': {
        const out = new Map<unknown, unknown>();
        this.cache.set(n, out);
        this.pairsInto(n.items, out);
        return out;
      }
      case 'odict': {
        const out = new OrderedDict<unknown, unknown>();
        this.cache.set(n, out);
        this.pairsInto(n.items, out);
        if (n.state !== undefined && n.state !== null) {
          const st = this.value(n.state);
          if (st instanceof Map) {
            const rest = new Map<string, unknown>();
            for (const [k, val] of st) {
              if (k === '_metadata' && val instanceof Map) out._metadata = val as OrderedDict<string, Map<string, unknown>>;
              else rest.set(String(k), val);
            }
            if (rest.size > 0) out.pyState = rest;
          } else {
            out.pyState = new Map([['__state__', st]]);
          }
        }
        return out;
      }
      case 'bytearray': {
        const out = new PyByteArray(n.data.byteLength);
        out.set(n.data);
        this.cache.set(n, out);
        return out;
      }
      case 'tensor': {
        // Loaded trees carry RawTensor; RawSaveTensor exists only on the way to `save`.
        const t = this.tensor(n as RawTensor);
        this.cache.set(n, t);
        return t;
      }
      case 'sparse': {
        const out = new SparseTensor(n.layout, [], n.requiresGrad);
        this.cache.set(n, out);
        n.args.forEach((x, i) => out.args.push(this.value(x, out.args, i)));
        return out;
      }
      case 'storage': {
        const s = this.storage(n.storage);
        this.cache.set(n, s);
        return s;
      }
      case 'size': {
        const s = Size.fromDims(n.dims.map((d) => Number(d)));
        this.cache.set(n, s);
        return s;
      }
      case 'device':
        return this.cached(n, new Device(n.v));
      case 'dtype':
        return this.cached(n, new DTypeRef(n.v));
      case 'layout':
        return this.cached(n, new Layout(n.v));
      case 'global':
        return this.cached(n, new PyGlobal(n.module, n.name));
      case 'ndarray': {
        const items = n.items === undefined ? undefined : this.value(n.items);
        return this.cached(n, new NdArray(n.descr, n.shape, n.fortran, n.data, n.module, items));
      }
      case 'npscalar':
        return this.cached(n, new NpScalar(n.descr, n.data, n.module));
      case 'object':
        return this.object(n);
    }
  }

  private cached<T>(n: object, v: T): T {
    this.cache.set(n, v);
    return v;
  }

  private tensor(n: RawTensor): Tensor {
    const dtype = parseDType(n.dtype);
    // Meta tensors (`_rebuild_meta_tensor_no_storage`) carry dtype, shape and stride only.
    const storage = n.storage === null ? new UntypedStorage(new Uint8Array(0), n.device ?? 'meta') : this.storage(n.storage);
    const init = { storage, dtype, shape: n.shape, stride: n.stride, storageOffset: n.offset, requiresGrad: n.requiresGrad };
    const t = n.parameter ? new Parameter(init, n.requiresGrad) : new Tensor(init);
    if (n.parameter && n.parameterState !== undefined) (t as Parameter).pyState = this.value(n.parameterState);
    if (n.quantizer) {
      const params: unknown[] = [];
      n.quantizer.params.forEach((p, i) => params.push(this.value(p, params, i)));
      t.quantizer = { scheme: n.quantizer.scheme, params };
    }
    if (n.metadata !== undefined) {
      const m = this.value(n.metadata);
      if (m instanceof Map) t.metadata = m as Map<string, unknown>;
    }
    if (n.subclass) t.subclass = { module: n.subclass.module, name: n.subclass.name, state: this.value(n.subclass.state) };
    return t;
  }

  private object(n: RawObject): unknown {
    const kind = n.kind as PyObjectKind;
    const obj = new PyObject(n.module, n.name, kind);
    this.cache.set(n, obj);
    const args = this.value(n.args);
    obj.args = Array.isArray(args) ? args : PyTuple.fromItems([args]);
    if (n.kwargs !== undefined) {
      const kw = this.value(n.kwargs);
      if (kw instanceof Map) obj.kwargs = kw as Map<string, unknown>;
    }
    if (n.state !== undefined) obj.state = this.value(n.state);
    n.listItems.forEach((x, i) => obj.listItems.push(this.value(x, obj.listItems, i)));
    for (let i = 0; i + 1 < n.dictItems.length; i += 2) {
      obj.dictItems.push([this.value(n.dictItems[i]!), this.value(n.dictItems[i + 1]!)]);
    }
    if (this.opts.classes === false) return obj;
    const cls = this.opts.classes?.[obj.fullName] ?? lookupPyClass(obj.fullName);
    if (!cls) return obj;
    const built = cls.fromPyObject(obj);
    this.cache.set(n, built);
    return built;
  }
}

function isRawFloat(v: RawValue): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && v.t === 'float';
}

let warnedDeviceFallback = false;
function warnDeviceFallbackOnce(loc: string): void {
  if (warnedDeviceFallback) return;
  warnedDeviceFallback = true;
  process.emitWarning(
    `tensors saved on '${loc}' were loaded on the CPU: that device is not available here ` +
      `(torchsave computes on the CPU without the libtorch addon). Pass mapLocation to choose; ` +
      `a re-save keeps the recorded location.`,
    { code: 'TORCHSAVE_DEVICE_FALLBACK' },
  );
}

/** A recorded location (`cpu`, `cuda:0`, `cuda`, `mps`) as a Device. */
function parseLocation(loc: string): Device {
  try {
    return new Device(loc);
  } catch {
    throw err('E_DEVICE_UNAVAILABLE', `unknown storage location '${loc}'`);
  }
}

interface PendingDeviceStorage {
  storage: UntypedStorage;
  bytes: Uint8Array;
  device: string;
}

/** Whether storages can be placed on `d` here (the libtorch addon and, for CUDA, a GPU). */
function deviceUsable(d: Device): boolean {
  if (d.type !== 'cuda') return false;
  const addon = loadLibtorch().addon;
  if (!addon) return false;
  const info = addon.buildInfo();
  return info.cudaAvailable && (d.index ?? 0) < info.cudaDeviceCount;
}

/** Synchronous placement: one copy per storage. */
function placeOnDevicesSync(pending: PendingDeviceStorage[]): void {
  const addon = lt('loading onto a device');
  for (const p of pending) {
    const host = nat(() => addon.NativeTensor.fromStorage(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength));
    p.storage._nt = nat(() => host.to(undefined, p.device, false, true));
  }
}

/**
 * Async placement: every storage of one device in one worker-thread pass, streamed through
 * pinned buffers (the read of the mmapped file overlaps the transfer). `pending` keeps the
 * host memory referenced until the copies are done.
 */
async function placeOnDevices(pending: PendingDeviceStorage[]): Promise<void> {
  const addon = lt('loading onto a device');
  const byDevice = new Map<string, PendingDeviceStorage[]>();
  for (const p of pending) {
    const list = byDevice.get(p.device);
    if (list) list.push(p);
    else byDevice.set(p.device, [p]);
  }
  for (const [device, list] of byDevice) {
    let out: NativeTensor[];
    try {
      out = await addon.copyToDevice(list.map((p) => p.bytes), device);
    } catch (e) {
      throw withCode(e);
    }
    list.forEach((p, i) => (p.storage._nt = out[i]));
  }
}

/** Turns a binding result into TS values. */
export function fromRaw(loaded: RawLoaded, opts: LoadOptions = {}, source = '<buffer>'): unknown {
  const reader = new Reader(loaded, opts, source);
  const value = reader.value(loaded.root);
  if (reader.pendingDevice.length !== 0) placeOnDevicesSync(reader.pendingDevice);
  return value;
}

/** {@link fromRaw} with device placement off the event loop. */
export async function fromRawAsync(loaded: RawLoaded, opts: LoadOptions = {}, source = '<buffer>'): Promise<unknown> {
  const reader = new Reader(loaded, opts, source);
  const value = reader.value(loaded.root);
  if (reader.pendingDevice.length !== 0) await placeOnDevices(reader.pendingDevice);
  return value;
}

// ---------------------------------------------------------------------------------------
// TS → raw
// ---------------------------------------------------------------------------------------

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function pathString(path: readonly (string | number)[]): string {
  let s = 'obj';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `[${JSON.stringify(p)}]`;
  return s;
}

class Writer {
  private ids = new Map<object, number>();
  private nextId = 0;
  readonly storages: RawSaveStorage[] = [];
  private storageIndex = new Map<UntypedStorage, number>();
  private storageDType: (DType | undefined)[] = [];
  private path: (string | number)[] = [];
  /** The tensor table (RawSaveTree.tensorMeta) and its dtype names. */
  readonly tensorMeta: number[] = [];
  readonly dtypes: string[] = [];
  private dtypeIndex = new Map<string, number>();

  /** `name`'s index in the tree's dtype table (added on first use). */
  dtypeCode(name: string): number {
    let i = this.dtypeIndex.get(name);
    if (i === undefined) {
      i = this.dtypes.length;
      this.dtypes.push(name);
      this.dtypeIndex.set(name, i);
    }
    return i;
  }

  /** The tree with its tables (RawSaveTree), once the whole value is written. */
  tree(root: RawValue): RawSaveTree {
    const strings: string[] = [];
    const codes = new Map<string, number>();
    const code = (x: string): number => {
      let i = codes.get(x);
      if (i === undefined) {
        i = strings.length;
        strings.push(x);
        codes.set(x, i);
      }
      return i;
    };
    const n = this.storages.length;
    const storageMeta = new Float64Array(3 * n);
    const storageData: Uint8Array[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const st = this.storages[i]!;
      storageData[i] = st.data;
      storageMeta[3 * i] = this.dtypeCode(st.dtype);
      storageMeta[3 * i + 1] = code(st.location);
      storageMeta[3 * i + 2] = st.key === undefined ? -1 : code(st.key);
    }
    return { root, tensorMeta: Float64Array.from(this.tensorMeta), dtypes: this.dtypes, storageData, storageMeta, strings };
  }

  private fail(message: string): TorchsaveError {
    return err('E_UNSERIALIZABLE', `${pathString(this.path)}: ${message}`);
  }

  private storage(s: UntypedStorage, dtype: DType | undefined): number {
    let i = this.storageIndex.get(s);
    if (i === undefined) {
      i = this.storages.length;
      this.storageIndex.set(s, i);
      const facts = storageFacts.get(s);
      const location = facts?.recordedLocation ?? s.device.toString();
      this.storages.push({ data: s.hostBytes(), dtype: dtype ?? facts?.dtype ?? 'uint8', location });
      this.storageDType.push(dtype);
      return i;
    }
    const have = this.storageDType[i];
    if (dtype !== undefined) {
      if (have === undefined) {
        this.storageDType[i] = dtype;
        this.storages[i]!.dtype = dtype;
      } else if (have !== dtype) {
        throw this.fail(
          `cannot save multiple tensors or storages that view the same data as different types (${have} and ${dtype}), as PyTorch refuses too`,
        );
      }
    }
    return i;
  }

  /** Returns `{t:'ref'}` for an object already written, else registers it and returns its id. */
  private identity(o: object): { ref: RawValue } | { id: number } {
    const seen = this.ids.get(o);
    if (seen !== undefined) return { ref: { t: 'ref', id: seen } };
    const id = this.nextId++;
    this.ids.set(o, id);
    return { id };
  }

  private child(v: unknown, key: string | number, container?: object, containerKey?: unknown): RawValue {
    this.path.push(key);
    try {
      if (container !== undefined && typeof v === 'number' && Number.isInteger(v) && wasPyFloat(container, containerKey ?? key)) {
        return { t: 'float', v };
      }
      return this.value(v);
    } finally {
      this.path.pop();
    }
  }

  private seq(items: ArrayLike<unknown>, container: object): RawValue[] {
    const out: RawValue[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) out[i] = this.child(items[i], i, container);
    return out;
  }

  private mapItems(m: Map<unknown, unknown>): RawValue[] {
    const out: RawValue[] = [];
    for (const [k, v] of m) {
      const label = typeof k === 'string' || typeof k === 'number' ? k : String(k);
      out.push(this.child(k, `<key ${String(label)}>`));
      out.push(this.child(v, label, m, k));
    }
    return out;
  }

  value(v: unknown): RawValue {
    switch (typeof v) {
      case 'undefined':
        throw this.fail('undefined cannot be saved (use null for Python None)');
      case 'boolean':
      case 'string':
      case 'bigint':
        return v;
      case 'number':
        return v;
      case 'function':
        throw this.fail(`a function (${v.name || 'anonymous'}) cannot be saved`);
      case 'symbol':
        throw this.fail('a symbol cannot be saved');
    }
    if (v === null) return null;
    const o = v as object;
    if (o instanceof PyFloat) return { t: 'float', v: o.value };
    if (o instanceof PyComplex) return { t: 'complex', re: o.re, im: o.im };

    // Python bytes are immutable values: no identity needed (and none is sent).
    if (o instanceof Uint8Array && !(o instanceof PyByteArray)) return o.constructor === Uint8Array ? o : new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
    if (ArrayBuffer.isView(o) && !(o instanceof PyByteArray)) {
      throw this.fail(`a ${o.constructor.name} cannot be saved as a Python value; wrap it in a tensor (torch.tensor(array))`);
    }

    const idn = this.identity(o);
    if ('ref' in idn) return idn.ref;
    const id = idn.id;

    if (o instanceof Tensor) return this.tensor(o, id);
    if (o instanceof UntypedStorage) return { t: 'storage', id, storage: this.storage(o, undefined) };
    if (o instanceof PyByteArray) return { t: 'bytearray', id, data: new Uint8Array(o.buffer, o.byteOffset, o.byteLength) };
    if (o instanceof Size) return { t: 'size', id, dims: [...o] };
    if (o instanceof PyTuple) return { t: 'tuple', id, items: this.seq(o, o) };
    if (Array.isArray(o)) return { t: 'list', id, items: this.seq(o, o) };
    if (o instanceof OrderedDict) {
      const node: RawNode = { t: 'odict', id, items: this.mapItems(o) };
      const state = new Map<unknown, unknown>();
      if (o._metadata !== undefined) state.set('_metadata', o._metadata);
      if (o.pyState) for (const [k, val] of o.pyState) state.set(k, val);
      if (state.size > 0) {
        this.path.push('<state>');
        try {
          node.state = this.value(state);
        } finally {
          this.path.pop();
        }
      }
      return node;
    }
    if (o instanceof Map) return { t: 'dict', id, items: this.mapItems(o) };
    if (o instanceof PyFrozenSet) return { t: 'frozenset', id, items: this.seq([...o], o) };
    if (o instanceof Set) return { t: 'set', id, items: this.seq([...o], o) };
    if (o instanceof Device) return { t: 'device', id, v: o.toString() };
    if (o instanceof DTypeRef) return { t: 'dtype', id, v: o.name };
    if (o instanceof Layout) return { t: 'layout', id, v: o.name };
    if (o instanceof PyGlobal) return { t: 'global', id, module: o.module, name: o.name };
    if (o instanceof NdArray) {
      const node: RawNode = { t: 'ndarray', id, module: o.module, descr: o.descr, shape: o.shape, fortran: o.fortranOrder, data: o.data };
      if (o.items !== undefined) node.items = this.child(o.items, '<items>');
      return node;
    }
    if (o instanceof NpScalar) return { t: 'npscalar', id, module: o.module, descr: o.descr, data: o.data };
    if (o instanceof SparseTensor) return { t: 'sparse', id, layout: o.layout, args: this.seq(o.args, o.args), requiresGrad: o.requiresGrad };
    if (o instanceof PyObject) return this.object(o, id);
    if (isPyReducible(o)) {
      const po = o[pyReduce]();
      if (!(po instanceof PyObject)) throw this.fail('[pyReduce]() must return a PyObject');
      return this.object(po, id);
    }
    const proto = Object.getPrototypeOf(o) as unknown;
    if (proto === Object.prototype || proto === null) {
      const items: RawValue[] = [];
      for (const [k, val] of Object.entries(o)) {
        items.push(k);
        items.push(this.child(val, k, o, k));
      }
      return { t: 'dict', id, items };
    }
    const name = (o as { constructor?: { name?: string } }).constructor?.name ?? 'object';
    throw this.fail(`a ${name} cannot be saved: implement [pyReduce]() (see torchsave's PyReducible) or convert it to a Map/Array/Tensor`);
  }

  private tensor(t: Tensor, id: number): RawSaveTensor {
    const meta = t.device.type === 'meta';
    const storage = meta ? -1 : this.storage(t.untypedStorage(), t.dtype);
    const dt = this.dtypeCode(t.dtype);
    // `m` is set below, after the children (a quantizer's scale tensors...) add their entries.
    const node: RawSaveTensor = { t: 'tensor', id, m: -1 };
    let flags = (t.requiresGrad ? TENSOR_FLAGS.requiresGrad : 0) | (t instanceof Parameter ? TENSOR_FLAGS.parameter : 0) | (meta ? TENSOR_FLAGS.metaDevice : 0);
    if (t instanceof Parameter && t.pyState !== undefined) {
      node.parameterState = this.child(t.pyState, '<parameter state>');
      flags |= TENSOR_FLAGS.parameterState;
    }
    if (t.quantizer) {
      node.quantizer = { scheme: t.quantizer.scheme, params: this.seq(t.quantizer.params, t.quantizer.params) };
      flags |= TENSOR_FLAGS.quantizer;
    }
    if (t.metadata) {
      node.metadata = this.child(t.metadata, '<metadata>');
      flags |= TENSOR_FLAGS.metadata;
    }
    if (t.subclass) {
      node.subclass = { module: t.subclass.module, name: t.subclass.name, state: this.child(t.subclass.state, '<subclass state>') };
      flags |= TENSOR_FLAGS.subclass;
    }
    const shape = t.size();
    const stride = t.stride();
    const tm = this.tensorMeta;
    node.m = tm.length;
    tm.push(storage, dt, shape.length, t.storageOffset(), flags);
    for (let i = 0; i < shape.length; i++) tm.push(shape[i]!);
    for (let i = 0; i < stride.length; i++) tm.push(stride[i]!);
    return node;
  }

  private object(o: PyObject, id: number): RawObject {
    const node: RawObject = {
      t: 'object',
      id,
      module: o.module,
      name: o.name,
      kind: o.kind,
      args: this.child(o.args instanceof PyTuple ? o.args : PyTuple.fromItems(o.args), '<args>'),
      listItems: this.seq(o.listItems, o.listItems),
      dictItems: [],
    };
    if (o.kwargs !== undefined) node.kwargs = this.child(o.kwargs, '<kwargs>');
    if (o.state !== undefined) node.state = this.child(o.state, '<state>');
    for (const [k, v] of o.dictItems) {
      node.dictItems.push(this.child(k, '<dict key>'));
      node.dictItems.push(this.child(v, typeof k === 'string' ? k : '<dict value>'));
    }
    return node;
  }
}

/** Turns a TS value into the raw tree with its tables (what `save` takes), and the storages
 * it lists (for inspection). */
export function toRaw(obj: unknown): { raw: RawSaveTree; storages: RawSaveStorage[] } {
  const w = new Writer();
  const root = w.value(obj);
  return { raw: w.tree(root), storages: w.storages };
}

// ---------------------------------------------------------------------------------------
// load / save
// ---------------------------------------------------------------------------------------

function nativeLoadOptions(opts: LoadOptions): NativeLoadOptions {
  const safeGlobals = opts.safeGlobals?.map((g) => {
    if (typeof g === 'string') return g;
    if (g && typeof g.pyName === 'string') return g.pyName;
    throw err('E_INVALID_ARGUMENT', 'safeGlobals entries must be "module.qualname" strings or classes with a static pyName');
  });
  const out: NativeLoadOptions = {};
  if (opts.weightsOnly !== undefined) out.weightsOnly = opts.weightsOnly;
  if (opts.mmap !== undefined) out.mmap = opts.mmap;
  if (safeGlobals) out.safeGlobals = safeGlobals;
  if (opts.encoding !== undefined) out.encoding = opts.encoding;
  if (opts.externalBuffers !== undefined) out.externalBuffers = opts.externalBuffers;
  if (opts.verifyCrc !== undefined) out.verifyCrc = opts.verifyCrc;
  return out;
}

function checkSource(f: unknown): asserts f is string | Uint8Array {
  if (typeof f !== 'string' && !(f instanceof Uint8Array)) {
    throw err('E_INVALID_ARGUMENT', 'torch.load expects a path (string) or the file bytes (Uint8Array/Buffer)');
  }
}

function label(f: string | Uint8Array): string {
  return typeof f === 'string' ? f : '<buffer>';
}

function infoOf(raw: RawLoaded): LoadInfo {
  const i = raw.info;
  return i ? { ...i, globals: [...i.globals] } : { format: 'zip', globals: [], bigEndian: false, pickleProtocol: 2 };
}

/**
 * `torch.load`: reads what `torch.save` wrote (zip, legacy, tar, bare pickle).
 * Never executes anything from the file; with `weightsOnly` (the default) it accepts only
 * what PyTorch's weights-only loader accepts.
 */
export function load<T = unknown>(f: string | Uint8Array, opts: LoadOptions = {}): T {
  return loadWithInfo<T>(f, opts).value;
}

/** True for paths read as safetensors (by name, as the `safetensors` package does). */
export function isSafetensorsPath(f: unknown): f is string {
  return typeof f === 'string' && /\.safetensors$/i.test(f);
}

/** Reads a safetensors file through the same raw → TS conversion as torch files: an
 * OrderedDict name → Tensor, plus the `__metadata__`. */
export function loadSafetensorsWithInfo<T = unknown>(path: string, opts: LoadOptions = {}): { value: T; info: LoadInfo } {
  const raw = native().loadSafetensors(path, nativeLoadOptions(opts), true);
  const info: LoadInfo = { format: 'safetensors', globals: [], bigEndian: false, pickleProtocol: 0, metadata: Object.fromEntries(raw.metadata) };
  return { value: fromRaw(raw, opts, path) as T, info };
}

/** {@link load}, plus facts about the file (format, globals, protocol). */
export function loadWithInfo<T = unknown>(f: string | Uint8Array, opts: LoadOptions = {}): { value: T; info: LoadInfo } {
  checkSource(f);
  if (isSafetensorsPath(f)) return loadSafetensorsWithInfo<T>(f, opts);
  const raw = native().load(f, nativeLoadOptions(opts));
  return { value: fromRaw(raw, opts, label(f)) as T, info: infoOf(raw) };
}

/** `torch.load` off the event loop: reading and parsing run on a worker thread. */
export async function loadAsync<T = unknown>(f: string | Uint8Array, opts: LoadOptions = {}): Promise<T> {
  checkSource(f);
  // safetensors parsing is a header read (the data stays mmapped), so the sync path is cheap.
  if (isSafetensorsPath(f)) return loadSafetensorsWithInfo<T>(f, opts).value;
  const raw = await native().loadAsync(f, nativeLoadOptions(opts));
  return (await fromRawAsync(raw, opts, label(f))) as T;
}

function nativeSaveOptions(opts: SaveOptions): NativeSaveOptions {
  const out: NativeSaveOptions = {};
  if (opts.format !== undefined) out.format = opts.format;
  if (opts.pickleProtocol !== undefined) out.protocol = opts.pickleProtocol;
  if (opts.compact !== undefined) out.compact = opts.compact;
  if (opts.archiveName !== undefined) out.archiveName = opts.archiveName;
  if (opts.durable !== undefined) out.durable = opts.durable;
  return out;
}

function checkTarget(f: unknown): void {
  if (f === undefined || f === null || typeof f === 'string') return;
  if (typeof f === 'number' && Number.isInteger(f) && f >= 0) return;
  if (typeof f === 'object' && typeof (f as WritableLike).write === 'function') return;
  throw err('E_INVALID_ARGUMENT', 'torch.save expects a path, a file descriptor, or an object with write(chunk)');
}

function deliver(bytes: Uint8Array, f: number | WritableLike): unknown {
  if (typeof f === 'number') {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(f, bytes, off, bytes.length - off);
    return undefined;
  }
  return f.write(bytes);
}

/**
 * `torch.save`: writes `obj` the way PyTorch does (zip by default, byte-compatible).
 * With a path the write is atomic (the old file survives a failure) and, unless
 * `durable: false`, synced to disk before it returns. Without a target the bytes are returned.
 */
export function save(obj: unknown, f: SaveTarget, opts?: SaveOptions): void;
export function save(obj: unknown, f?: null, opts?: SaveOptions): Buffer;
export function save(obj: unknown, f?: SaveTarget | null, opts: SaveOptions = {}): Buffer | void {
  checkTarget(f);
  const { raw } = toRaw(obj);
  const path = typeof f === 'string' ? f : null;
  const bytes = native().save(raw, path, nativeSaveOptions(opts));
  if (f === undefined || f === null) return bytes ?? Buffer.alloc(0);
  if (typeof f !== 'string' && bytes) deliver(bytes, f);
}

/** `torch.save` off the event loop (pickling and I/O on a worker thread). Do not modify the
 * tensors being saved until the promise settles: their bytes are written without a copy. */
export async function saveAsync(obj: unknown, f: SaveTarget, opts?: SaveOptions): Promise<void>;
export async function saveAsync(obj: unknown, f?: null, opts?: SaveOptions): Promise<Buffer>;
export async function saveAsync(obj: unknown, f?: SaveTarget | null, opts: SaveOptions = {}): Promise<Buffer | void> {
  checkTarget(f);
  const { raw } = toRaw(obj);
  const path = typeof f === 'string' ? f : null;
  const bytes = await native().saveAsync(raw, path, nativeSaveOptions(opts));
  if (f === undefined || f === null) return bytes ?? Buffer.alloc(0);
  if (typeof f !== 'string' && bytes) await deliver(bytes, f);
}
