/**
 * TS values → the raw tree with its tables (the save direction). {@link toRaw} walks the
 * value, gives every compound object an id (later occurrences become `{t:'ref', id}`),
 * collects each distinct UntypedStorage once, and names the path of anything it cannot
 * write (`E_UNSERIALIZABLE`).
 */
import type { DType } from '../dtype';
import { type TorchsaveError, torchsaveError } from '../errors';
import { TENSOR_FLAGS, type RawNode, type RawObject, type RawSaveStorage, type RawSaveTensor, type RawSaveTree, type RawValue } from '../raw/tree';
import { SparseTensor } from '../sparse';
import { Parameter, Tensor, UntypedStorage } from '../tensor';
import {
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  OrderedDict,
  PyByteArray,
  PyComplex,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
  Size,
  isPyReducible,
  pyReduce,
} from '../values';
import { storageFacts, wasPyFloat } from './facts';

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
    return torchsaveError('E_UNSERIALIZABLE', `${pathString(this.path)}: ${message}`);
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
