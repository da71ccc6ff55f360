/**
 * Raw tree → TS values (the load direction). {@link fromRaw} builds one
 * {@link UntypedStorage} per file storage (tensors viewing it share it, so views stay views),
 * resolves each storage's device (`mapLocation`, see `./devices`), and turns tagged nodes
 * into classes. Identity survives: a raw node reached twice is one JS object, so it becomes
 * one TS value. Integral Python floats load as numbers and are remembered (`./facts`).
 * PyObjects whose `module.name` has a class (`classes` option, then the global registry)
 * are replaced bottom-up by `cls.fromPyObject(obj)`.
 */
import { parseDType } from '../dtype';
import { torchsaveError } from '../errors';
import { loadLibtorch } from '../libtorch/addon';
import { markMapped } from '../raw/mapped';
import type { RawLoaded, RawNode, RawObject, RawStorage, RawTensor, RawValue } from '../raw/tree';
import { SparseTensor } from '../sparse';
import { trackResult } from '../scope';
import { Parameter, Tensor, UntypedStorage } from '../tensor';
import type { LoadBlock } from '../tensor/storage';
import {
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  OrderedDict,
  PyByteArray,
  PyComplex,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  type PyObjectKind,
  PyTuple,
  Size,
  lookupPyClass,
} from '../values';
import { type PendingDeviceStorage, deviceUsable, isCpu, parseLocation, placeOnDevices, placeOnDevicesSync, warnDeviceFallbackOnce } from './devices';
import { type StorageFacts, rememberFloat, storageFacts } from './facts';
import type { LoadOptions } from './options';

class Reader {
  private cache = new Map<object, unknown>();
  /** One per buffer the binding made (see `LoadBlock`): `torch.dispose` frees it with its last storage. */
  private blocks = new Map<ArrayBuffer, LoadBlock>();
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
    if (!raw) throw torchsaveError('E_BAD_PICKLE', `storage index ${i} is out of range`);
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
    if (raw.mapped === true) markMapped(raw.buffer);
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
    if (isCpu(target)) return this.owned(new UntypedStorage(bytes, target), raw.buffer);
    if (deviceUsable(target)) {
      const st = UntypedStorage.pending(bytes.byteLength, target.toString());
      this.pendingDevice.push({ storage: st, bytes, device: target.toString() });
      return st;
    }
    if (ml === undefined) {
      // Better than torch.load, which raises here: the bytes are host memory anyway.
      warnDeviceFallbackOnce(loc);
      return this.owned(new UntypedStorage(bytes, 'cpu'), raw.buffer);
    }
    throw torchsaveError(
      'E_DEVICE_UNAVAILABLE',
      `${this.source}: mapLocation sends storage ${raw.key} (saved on '${loc}') to '${target}', ` +
        `but ${loadLibtorch().addon ? `${target} is not available here (torch.cuda.isAvailable() is false or the index is too high)` : "only 'cpu' is available without the libtorch addon (torch.backends.libtorch.isAvailable())"}.`,
    );
  }

  /** Marks `s` as living in a buffer this load made, so dispose can give it back. */
  private owned(s: UntypedStorage, buffer: ArrayBuffer): UntypedStorage {
    if (buffer.byteLength === 0) return s;
    let b = this.blocks.get(buffer);
    if (!b) this.blocks.set(buffer, (b = { buffer, storages: 0 }));
    b.storages++;
    s._block = b;
    s._users = 0;
    return s;
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
        throw torchsaveError('E_BAD_PICKLE', 'unexpected reference node in a loaded tree');
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
    if (storage._users !== undefined) {
      storage._users++;
      t._loadUser = true;
      // A load inside torch.tidy belongs to the scope: freed at its end unless returned/kept.
      trackResult(t);
    }
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
