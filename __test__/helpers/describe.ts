/**
 * `describeLoaded(value)`: the oracle's `describe` NODE (see __test__/python/oracle.py) built
 * from what torchsave loaded, so a test can deep-compare it with what real torch loaded.
 *
 * Numbering follows the oracle: `obj` per distinct tensor object and `storage` per distinct
 * storage, both in first-visit order of a depth-first walk (dict: key then value).
 */
import { createHash } from 'node:crypto';
import { floatRepr, repr } from '../../ts/repr';
import { storageInfo, wasPyFloat } from '../../ts/serialization';
import { SparseTensor } from '../../ts/sparse';
import { Parameter, Tensor, UntypedStorage } from '../../ts/tensor';
import { elementSize, isComplex } from '../../ts/dtype';
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
} from '../../ts/values';
import type { OracleNode } from './python';

const QSCHEMES = new Set([
  'per_tensor_affine',
  'per_channel_affine',
  'per_tensor_symmetric',
  'per_channel_symmetric',
  'per_channel_affine_float_qparams',
]);

function bitsHex(x: number): string {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(x);
  return b.toString('hex');
}

function floatNode(x: number): OracleNode {
  return { t: 'float', v: floatRepr(x), bits: bitsHex(x) };
}

function canon(v: unknown): string {
  const sortKeys = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sortKeys);
    if (x && typeof x === 'object') {
      return Object.fromEntries(
        Object.keys(x as object)
          .sort()
          .map((k) => [k, sortKeys((x as Record<string, unknown>)[k])]),
      );
    }
    return x;
  };
  return JSON.stringify(sortKeys(v));
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The tensor's logical values, C order, with conj/neg views resolved (oracle rules). */
function logicalBytes(t: Tensor): Uint8Array {
  const bytes = t.contiguousBytes().slice();
  const conj = t.metadata?.get('conj') === true;
  const neg = t.metadata?.get('neg') === true;
  if ((conj || neg) && (t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'complex64' || t.dtype === 'complex128')) {
    const F = t.dtype === 'float64' || t.dtype === 'complex128' ? Float64Array : Float32Array;
    const a = new F(bytes.buffer, bytes.byteOffset, bytes.byteLength / F.BYTES_PER_ELEMENT);
    for (let i = 0; i < a.length; i++) {
      const imag = isComplex(t.dtype) && i % 2 === 1;
      let sign = neg ? -1 : 1;
      if (conj && imag) sign = -sign;
      if (sign < 0) a[i] = -a[i]!;
    }
  }
  return bytes;
}

/** Dense C-order bytes of a COO sparse tensor (duplicates summed, like to_dense()). */
function cooDenseBytes(s: SparseTensor): Uint8Array {
  const indices = s.args[0] as Tensor;
  const values = s.args[1] as Tensor;
  const size = s.size();
  const es = elementSize(values.dtype);
  const sparseDims = indices.size(0);
  const nnz = indices.size(1);
  const denseInner = values.numel() / Math.max(nnz, 1);
  const total = size.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(total * es);
  const idx = indices.contiguous().typedArray() as BigInt64Array;
  const vals = values.contiguous().toFloat64Array();
  const outF = values.dtype === 'float64' ? new Float64Array(out.buffer) : values.dtype === 'float32' ? new Float32Array(out.buffer) : null;
  if (!outF) throw new Error(`describe: sparse ${values.dtype} not supported`);
  for (let k = 0; k < nnz; k++) {
    let lin = 0;
    for (let d = 0; d < sparseDims; d++) lin = lin * size[d]! + Number(idx[d * nnz + k]!);
    for (let j = 0; j < denseInner; j++) outF[lin * denseInner + j]! += vals[k * denseInner + j]!;
  }
  return out;
}

function ndarraySha(a: NdArray): string {
  const code = a.descr.replace(/^[<>|=]/, '');
  const size = Number(code.replace(/^[a-zA-Z]/, '')) || 1;
  let data = a.data;
  if (a.descr.startsWith('>') && size > 1) {
    data = data.slice();
    const unit = code.startsWith('c') ? size / 2 : size;
    for (let i = 0; i < data.length; i += unit) data.subarray(i, i + unit).reverse();
  }
  if (a.fortranOrder && a.shape.length > 1) {
    const n = a.shape.reduce((x, y) => x * y, 1);
    const out = new Uint8Array(n * size);
    const nd = a.shape.length;
    const fstride = new Array<number>(nd);
    let acc = 1;
    for (let d = 0; d < nd; d++) {
      fstride[d] = acc;
      acc *= a.shape[d]!;
    }
    const idx = new Array<number>(nd).fill(0);
    for (let k = 0; k < n; k++) {
      let src = 0;
      for (let d = 0; d < nd; d++) src += idx[d]! * fstride[d]!;
      out.set(data.subarray(src * size, src * size + size), k * size);
      for (let d = nd - 1; d >= 0; d--) {
        if (++idx[d]! < a.shape[d]!) break;
        idx[d] = 0;
      }
    }
    data = out;
  }
  return sha256(data);
}

class Describer {
  private objs = new Map<object, number>();
  private storages = new Map<object, number>();

  private objId(o: object): number {
    let id = this.objs.get(o);
    if (id === undefined) this.objs.set(o, (id = this.objs.size));
    return id;
  }

  private storageId(s: object): number {
    let id = this.storages.get(s);
    if (id === undefined) this.storages.set(s, (id = this.storages.size));
    return id;
  }

  private item(v: unknown, container: object, key: unknown): OracleNode {
    if (typeof v === 'number' && Number.isInteger(v) && wasPyFloat(container, key)) return floatNode(v);
    return this.node(v);
  }

  private dictItems(m: Map<unknown, unknown>): [OracleNode, OracleNode][] {
    return [...m].map(([k, x]) => [this.node(k), this.item(x, m, k)]);
  }

  node(v: unknown): OracleNode {
    if (v === null || v === undefined) return { t: 'none' };
    switch (typeof v) {
      case 'boolean':
        return { t: 'bool', v };
      case 'number':
        return Number.isInteger(v) && !Object.is(v, -0) && Math.abs(v) <= Number.MAX_SAFE_INTEGER ? { t: 'int', v: String(v) } : floatNode(v);
      case 'bigint':
        return { t: 'int', v: v.toString() };
      case 'string':
        return { t: 'str', v };
    }
    const o = v as object;
    if (o instanceof PyFloat) return floatNode(o.value);
    if (o instanceof PyComplex) {
      return { t: 'complex', re: bitsHex(o.re), im: bitsHex(o.im), repr: repr(o) };
    }
    if (o instanceof Tensor) return this.tensor(o);
    if (o instanceof SparseTensor) return this.sparse(o);
    if (o instanceof UntypedStorage) {
      const facts = storageInfo(o);
      return {
        t: 'storage',
        dtype: facts && !facts.untyped ? facts.dtype : 'uint8',
        nbytes: o.nbytes,
        device: o.device.toString(),
        storage: this.storageId(o),
        sha256: sha256(o.bytes),
      };
    }
    if (o instanceof PyByteArray) return { t: 'bytearray', hex: Buffer.from(o).toString('hex') };
    if (o instanceof Uint8Array) return { t: 'bytes', hex: Buffer.from(o).toString('hex') };
    if (o instanceof Size) return { t: 'Size', v: [...o] };
    if (o instanceof PyTuple) return { t: 'tuple', items: [...o].map((x, i) => this.item(x, o, i)) };
    if (Array.isArray(o)) return { t: 'list', items: o.map((x, i) => this.item(x, o, i)) };
    if (o instanceof OrderedDict) {
      const n: OracleNode = { t: 'OrderedDict', items: this.dictItems(o) };
      if (o._metadata !== undefined) n.metadata = this.node(o._metadata);
      if (o.pyState && o.pyState.size > 0) n.attrs = this.node(o.pyState);
      return n;
    }
    if (o instanceof Map) return { t: 'dict', items: this.dictItems(o) };
    if (o instanceof Set) {
      const items = [...o].map((x) => this.node(x)).sort((a, b) => (canon(a) < canon(b) ? -1 : canon(a) > canon(b) ? 1 : 0));
      return { t: o instanceof PyFrozenSet ? 'frozenset' : 'set', items };
    }
    if (o instanceof Device) return { t: 'device', v: o.toString() };
    if (o instanceof DTypeRef) return { t: 'dtype', v: o.name };
    if (o instanceof Layout) return { t: 'layout', v: o.name };
    if (o instanceof PyGlobal) {
      if (o.module === 'torch' && QSCHEMES.has(o.name)) return { t: 'qscheme', v: o.name };
      return { t: 'global', v: o.fullName };
    }
    if (o instanceof NdArray) {
      const n: OracleNode = { t: 'ndarray', dtype: o.descr, shape: [...o.shape], fortran_order: o.fortranOrder };
      if (o.items !== undefined) n.items = this.node(o.items);
      else n.sha256 = ndarraySha(o);
      return n;
    }
    if (o instanceof NpScalar) {
      const code = o.descr.replace(/^[<>|=]/, '');
      const unit = code.startsWith('c') ? o.data.length / 2 : o.data.length;
      const le = o.data.slice();
      if (o.descr.startsWith('>')) for (let i = 0; i < le.length; i += unit) le.subarray(i, i + unit).reverse();
      return { t: 'npscalar', dtype: o.descr, hex: Buffer.from(le).toString('hex') };
    }
    if (o instanceof PyObject) {
      const st = o.state instanceof Map ? o.state : new Map();
      return { t: 'object', class: o.fullName, state: this.node(st) };
    }
    // TS classes rebuilt from pickled objects (nn.Module, ...) describe as what they pickle to.
    if (isPyReducible(o)) return this.node(o[pyReduce]());
    if (Object.getPrototypeOf(o) === Object.prototype) return { t: 'dict', items: Object.entries(o).map(([k, x]) => [this.node(k), this.item(x, o, k)]) };
    return { t: 'unknown', class: (o as { constructor?: { name?: string } }).constructor?.name ?? '?', repr: String(o) };
  }

  tensor(t: Tensor): OracleNode {
    const n: OracleNode = { t: t instanceof Parameter ? 'Parameter' : 'Tensor', obj: this.objId(t) };
    const sc = t.subclass;
    const plain = !sc || ['torch._tensor.Tensor', 'torch.Tensor', 'torch.nn.parameter.Parameter'].includes(`${sc.module}.${sc.name}`);
    if (sc && !plain) n.class = `${sc.module}.${sc.name}`;
    n.dtype = t.dtype;
    n.shape = [...t.size()];
    n.stride = t.stride();
    n.storage_offset = t.storageOffset();
    n.storage = this.storageId(t.untypedStorage());
    n.storage_nbytes = t.untypedStorage().nbytes;
    n.requires_grad = t.requiresGrad;
    n.device = t.device.toString();
    n.layout = 'strided';
    n.sha256 = sha256(logicalBytes(t));
    if (t.metadata?.get('conj') === true) n.conj = true;
    if (t.metadata?.get('neg') === true) n.neg = true;
    if (t.quantizer) {
      const { scheme, params } = t.quantizer;
      const q: Record<string, unknown> = { qscheme: scheme };
      if (scheme === 'per_tensor_affine' || scheme === 'per_tensor_symmetric') {
        q.scale = floatNode(Number(params[0]));
        q.zero_point = Number(params[1]);
      } else {
        q.axis = Number(params[2]);
        q.scales = this.tensor(params[0] as Tensor);
        q.zero_points = this.tensor(params[1] as Tensor);
      }
      n.quant = q;
    }
    if (sc && sc.state instanceof Map && sc.state.size > 0) n.attrs = this.node(sc.state);
    return n;
  }

  sparse(s: SparseTensor): OracleNode {
    const values = s.values();
    const n: OracleNode = { t: 'Tensor', obj: this.objId(s) };
    n.dtype = values?.dtype ?? 'float32';
    n.shape = s.size();
    n.stride = null;
    n.storage_offset = null;
    n.storage = null;
    n.storage_nbytes = null;
    n.requires_grad = s.requiresGrad;
    n.device = values?.device.toString() ?? 'cpu';
    n.layout = s.layout;
    n.sha256 = s.layout === 'sparse_coo' ? sha256(cooDenseBytes(s)) : null;
    if (s.layout === 'sparse_coo') {
      n.indices = this.tensor(s.args[0] as Tensor);
      n.values = this.tensor(s.args[1] as Tensor);
      n.is_coalesced = s.args[3] === true;
    }
    return n;
  }
}

/** The oracle NODE for a loaded value. */
export function describeLoaded(value: unknown): OracleNode {
  return new Describer().node(value);
}
