/**
 * `Tensor` and `Parameter`: strided views onto shared little-endian bytes (an
 * {@link UntypedStorage}), or libtorch tensors once computed on. This file holds what a tensor
 * is and reads: shape, strides, values, views, casts, device moves, autograd state. The
 * compute methods (libtorch's ops) are in `./ops`; CPU byte helpers in `./cpu`.
 *
 * Tensors that came from one storage in a file share one {@link UntypedStorage} object, so
 * views stay views and tied weights stay tied; `torch.save` writes each storage once.
 * Storage bytes may live in a memory-mapped file (copy-on-write: writing to a tensor never
 * changes the file) or, under Electron's V8 sandbox, in a JS-owned copy.
 */
import { inspect } from 'node:util';
import {
  type DType,
  type TypedArray,
  bf16ToFloat,
  elementSize,
  halfToFloat,
  isComplex,
  isFloatingPoint,
  parseDType,
  typedArrayCtor,
} from '../dtype';
import { torchsaveError } from '../errors';
import { checkMapped } from '../raw/mapped';
import { type NativeTensor } from '../libtorch/addon';
import { trackResult, untracked } from '../scope';
import { Device, Size } from '../values';
import { castTensor, fromNumbers, writeStrided } from './cpu';
import { checkDevice } from './device';
import { formatTensor } from './format';
import { type Generator, defaultGenerator } from './random';
import { UntypedStorage, freedError, storageOf } from './storage';

function sameView(a: NativeTensor, b: NativeTensor): boolean {
  const x = a.storageInfo();
  const y = b.storageInfo();
  return x.id === y.id && x.device === y.device && a.storageOffset === b.storageOffset && a.shape.join() === b.shape.join();
}


/** Storages up to this size are copied, not shared, when only read as values (`readable`). */
const SMALL_READ_COPY = 64 << 10;

/** How a quantized tensor's integers map to reals (`torch.Tensor.qscheme()` and its parameters). */
export interface QuantizerInfo {
  /** `per_tensor_affine`, `per_channel_affine`, ... */
  scheme: string;
  /** `[scale, zeroPoint]` or `[scales, zeroPoints, axis]` as pickled. */
  params: unknown[];
}

/** A tensor subclass as pickled by `torch._tensor._rebuild_from_type_v2`, kept for re-saving. */
export interface TensorSubclassInfo {
  /** The Python module of the subclass (`torch.nn.parameter`). */
  module: string;
  /** The class name in that module. */
  name: string;
  /** The object's `__dict__` / `__setstate__` state as pickled. */
  state: unknown;
}

/** What {@link Tensor}'s constructor takes: a strided view onto a storage. */
export interface TensorInit {
  /** The bytes the tensor views (little-endian). */
  storage: UntypedStorage;
  /** The element type. */
  dtype: DType;
  /** Size of each dim. */
  shape: readonly number[];
  /** Elements; defaults to contiguous (C order). */
  stride?: readonly number[];
  /** Elements. */
  storageOffset?: number;
  /** `requires_grad` (default false). */
  requiresGrad?: boolean;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const stride = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    stride[i] = acc;
    acc *= Math.max(shape[i]!, 1);
  }
  return stride;
}

/** `torch.Tensor`: a strided view onto an {@link UntypedStorage}, or a libtorch tensor once computed on.
 * Reading and writing values, views and casts work without libtorch; the math methods need the libtorch addon. */
export class Tensor {
  /** `torch.Tensor.dtype`: the element type (`float32`, ...). */
  readonly dtype: DType;
  /** For subclasses: the sizes (use {@link shape} / {@link size}). */
  protected _shape: number[];
  /** For subclasses: the strides in elements (use {@link stride}). */
  protected _stride: number[];
  /** For subclasses: the storage offset in elements (use {@link storageOffset}). */
  protected _offset: number;
  /** The storage; for a libtorch result it is made on first use (most results never need it). */
  private _st: UntypedStorage | undefined;
  private _dev: Device | undefined;
  private _requiresGrad: boolean;
  private _grad: Tensor | null = null;
  private _gradWrap: Tensor | undefined;
  private _disposed?: boolean;
  /** @internal Made by a load: counted in its storage's `_users` (dispose frees the storage with its last tensor). */
  _loadUser?: boolean;
  /** @internal The libtorch tensor (autograd history included), once made. */
  _nt?: NativeTensor;
  /** Quantized tensors: how integers map to reals. */
  quantizer?: QuantizerInfo;
  /** `{conj: true}` / `{neg: true}` lazy-view flags from the file. */
  metadata?: Map<string, unknown>;
  /** A tensor subclass or Python attributes (`_rebuild_from_type_v2`). */
  subclass?: TensorSubclassInfo;

  constructor(init: TensorInit) {
    this.dtype = init.dtype;
    this._shape = [...init.shape];
    this._stride = init.stride ? [...init.stride] : contiguousStrides(init.shape);
    this._offset = init.storageOffset ?? 0;
    this._st = init.storage;
    this._requiresGrad = init.requiresGrad ?? false;
    if (this._shape.length !== this._stride.length) {
      throw torchsaveError('E_STORAGE_BOUNDS', `shape has ${this._shape.length} dims but stride has ${this._stride.length}`);
    }
    // Meta tensors have a dtype, shape and strides but no data.
    const need = this._storage.device.type === 'meta' ? 0 : this.requiredStorageBytes();
    if (need > this._storage.nbytes) {
      throw torchsaveError(
        'E_STORAGE_BOUNDS',
        `tensor of shape [${this._shape.join(', ')}] at offset ${this._offset} needs ${need} bytes but its storage has ${this._storage.nbytes}`,
      );
    }
  }

  /** Whether autograd records operations on this tensor (`requires_grad`). */
  get requiresGrad(): boolean {
    return this._nt ? this._nt.requiresGrad : this._requiresGrad;
  }
  /** Turns autograd recording on or off for this tensor (`t.requires_grad = v`). */
  set requiresGrad(v: boolean) {
    this._requiresGrad = v;
    const nt = this._nt;
    if (nt && nt.requiresGrad !== v) this._nt = nt.setRequiresGrad(v);
  }

  /** The gradient autograd accumulated (`.grad`), or null. */
  get grad(): Tensor | null {
    const nt = this._nt;
    if (!nt) return this._grad;
    const g = nt.grad();
    if (!g) return null;
    const w = this._gradWrap;
    if (w && w._nt && sameView(w._nt, g)) return w;
    // The wrapper is cached on the parameter: no torch.tidy may free it.
    this._gradWrap = untracked(() => Tensor.fromNative(g));
    return this._gradWrap;
  }
  /** Replaces (or with null clears) the accumulated gradient, as `t.grad = v`. */
  set grad(v: Tensor | null) {
    this._grad = v;
    this._gradWrap = v ?? undefined;
    const nt = this._nt;
    if (nt) nt.setGrad(v ? v.native() : null);
  }

  /**
   * The libtorch tensor behind this one (needs the libtorch addon). Host memory is shared,
   * not copied: writes through either side are seen by the other.
   */
  native(): NativeTensor {
    if (this._disposed) throw freedError();
    if (this._nt) return this._nt;
    if (this.quantizer) throw torchsaveError('E_UNSUPPORTED_DTYPE', 'computing on a quantized tensor is not supported');
    const base = this._storage.native();
    let nt = base.viewAs(this.dtype, this._shape, this._stride, this._offset);
    if (this._requiresGrad) nt = nt.setRequiresGrad(true);
    if (this._grad) {
      const g = this._grad.native();
      nt.setGrad(g);
    }
    this._nt = nt;
    return nt;
  }

  /**
   * @internal Wraps a libtorch result. Cheap: the storage object (shared by every view of one
   * libtorch storage) is looked up only when something needs it.
   */
  static fromNative(nt: NativeTensor): Tensor {
    const t = Object.create(Tensor.prototype) as Tensor;
    const m = nt.track();
    Object.assign(t, {
      dtype: m.dtype as DType,
      _shape: m.shape,
      _stride: m.strides,
      _offset: m.storageOffset,
      _st: undefined,
      _dev: undefined,
      _requiresGrad: false,
      _grad: null,
      _gradWrap: undefined,
      _nt: nt,
    });
    trackResult(t);
    return t;
  }

  /**
   * Frees this tensor's libtorch memory now instead of when the garbage collector gets to it
   * (Node runs finalizers between event-loop turns, so a long synchronous loop of ops keeps
   * every result until it yields). Storage still used elsewhere (views, JS typed arrays, an
   * optimizer) stays alive; the tensor itself must not be used afterwards.
   */
  dispose(): void {
    if (this._disposed) return;
    const nt = this._nt;
    if (nt) {
      nt.dispose();
      this._disposed = true;
    }
    // A loaded tensor: its storage is freed with the last of the load's tensors on it
    // (tied weights and views from the file stay alive while one of them does).
    if (this._loadUser) {
      this._loadUser = false;
      this._disposed = true;
      this._st?._dropUser();
    }
  }

  /** `using t = ...` frees the tensor at the end of the block ({@link dispose}). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** True once {@link dispose} (or `torch.dispose`, or the end of a `torch.tidy` scope) has freed this tensor. */
  get isDisposed(): boolean {
    return this._disposed === true || this._st?.isFreed === true;
  }

  /** For subclasses: the storage, made on first use for a libtorch result; throws `E_INVALID_ARGUMENT` once freed. */
  protected get _storage(): UntypedStorage {
    if (this._disposed) throw freedError();
    if (!this._st) this._st = storageOf(this._nt!);
    return this._st;
  }

  /** True when the value is a libtorch tensor already (a result, or on a device). */
  protected get onNative(): boolean {
    if (this._nt !== undefined) return true;
    const t = this._storage.device.type;
    return t !== 'cpu' && t !== 'meta';
  }

  /** Bytes of storage this view reaches (0 for an empty tensor). */
  protected requiredStorageBytes(): number {
    if (this._shape.some((d) => d === 0)) return 0;
    let last = this._offset;
    for (let i = 0; i < this._shape.length; i++) last += (this._shape[i]! - 1) * this._stride[i]!;
    return (last + 1) * elementSize(this.dtype);
  }

  /** `torch.Tensor.shape`: the sizes, a `torch.Size`. */
  get shape(): Size {
    return Size.fromDims(this._shape);
  }
  /** `t.size()` is a `torch.Size`; `t.size(d)` one dimension (negative counts from the end). */
  size(): Size;
  size(dim: number): number;
  size(dim?: number): Size | number {
    if (dim === undefined) return Size.fromDims(this._shape);
    return this._shape[this.normDim(dim)]!;
  }
  /** `torch.Tensor.stride()`: the step in elements of each dim. */
  stride(): number[];
  /** `torch.Tensor.stride(dim)`: one dim's step in elements (negative counts from the end; out of range: `E_INVALID_ARGUMENT`). */
  stride(dim: number): number;
  stride(dim?: number): number[] | number {
    if (dim === undefined) return [...this._stride];
    return this._stride[this.normDim(dim)]!;
  }
  /** `torch.Tensor.storage_offset`: where the first element sits in the storage, in elements. */
  storageOffset(): number {
    return this._offset;
  }
  /** `torch.Tensor.ndim`: the number of dims. */
  get ndim(): number {
    return this._shape.length;
  }
  /** `torch.Tensor.dim`: the number of dims. */
  dim(): number {
    return this._shape.length;
  }
  /** `torch.Tensor.numel`: the number of elements (1 for a 0-dim tensor). */
  numel(): number {
    return this._shape.reduce((a, b) => a * b, 1);
  }
  /** `torch.Tensor.element_size`: bytes per element of the dtype. */
  elementSize(): number {
    return elementSize(this.dtype);
  }
  /** `torch.Tensor.device`: where the data lives (`cpu`, `cuda:0`, `meta`, ...). */
  get device(): Device {
    if (this._st) return this._st.device;
    if (!this._dev) this._dev = new Device(this._nt!.device);
    return this._dev;
  }
  /** `torch.Tensor.is_cuda`: whether the data is on a CUDA device. */
  get isCuda(): boolean {
    return this.device.type === 'cuda';
  }
  /** `torch.Tensor.is_quantized`: whether the dtype is a quantized one (see {@link quantizer}). */
  get isQuantized(): boolean {
    return this.quantizer !== undefined;
  }
  /** `torch.Tensor.untyped_storage`: the storage this tensor views (shared with its views and tied weights). */
  untypedStorage(): UntypedStorage {
    return this._storage;
  }
  /** `torch.Tensor.is_floating_point`: whether the dtype is a real float dtype. */
  isFloatingPoint(): boolean {
    return isFloatingPoint(this.dtype);
  }
  /** `torch.Tensor.is_complex`: whether the dtype is complex. */
  isComplex(): boolean {
    return isComplex(this.dtype);
  }

  /** For subclasses: `dim` with negatives counted from the end; out of range throws `E_INVALID_ARGUMENT`. */
  protected normDim(dim: number): number {
    const d = dim < 0 ? dim + this._shape.length : dim;
    if (d < 0 || d >= this._shape.length) {
      throw torchsaveError('E_INVALID_ARGUMENT', `Dimension out of range (expected to be in range of [${-this._shape.length}, ${this._shape.length - 1}], but got ${dim})`);
    }
    return d;
  }

  /** `torch.Tensor.is_contiguous`: whether the elements sit in C order with no gaps. */
  isContiguous(): boolean {
    let expected = 1;
    for (let i = this._shape.length - 1; i >= 0; i--) {
      const n = this._shape[i]!;
      if (n === 0) return true;
      if (n !== 1 && this._stride[i] !== expected) return false;
      expected *= n;
    }
    return true;
  }

  /** The elements' bytes in C order (a view when contiguous, else a copy). */
  contiguousBytes(): Uint8Array {
    if (this._storage.device.type === 'meta') {
      throw torchsaveError('E_DEVICE_UNAVAILABLE', `a meta tensor of shape [${this._shape.join(', ')}] has no data`);
    }
    if (this.onNative && this.device.type !== 'cpu') return this.cpu().contiguousBytes();
    const es = elementSize(this.dtype);
    const n = this.numel();
    const bytes = this._storage.bytes;
    // A storage over a loaded file's map whose file changed since: E_FILE_CHANGED.
    checkMapped(bytes);
    if (this.isContiguous()) return bytes.subarray(this._offset * es, (this._offset + n) * es);
    const out = new Uint8Array(n * es);
    const nd = this._shape.length;
    const idx = new Array<number>(nd).fill(0);
    let src = this._offset;
    for (let k = 0; k < n; k++) {
      out.set(bytes.subarray(src * es, src * es + es), k * es);
      for (let d = nd - 1; d >= 0; d--) {
        idx[d]!++;
        src += this._stride[d]!;
        if (idx[d]! < this._shape[d]!) break;
        src -= this._stride[d]! * this._shape[d]!;
        idx[d] = 0;
      }
    }
    return out;
  }

  /**
   * The elements as the dtype's typed array, C order: a view into the storage when the
   * tensor is contiguous and aligned, else a copy. float16/bfloat16 give their raw bits
   * (`Uint16Array`); use {@link toFloat32Array} for values.
   */
  typedArray(): TypedArray {
    const Ctor = typedArrayCtor(this.dtype);
    let bytes = this.contiguousBytes();
    if ((bytes.byteOffset % Ctor.BYTES_PER_ELEMENT) !== 0) bytes = bytes.slice();
    return new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
  }

  /** Values as float32 (float16/bfloat16 converted, integers cast); always a copy. */
  toFloat32Array(): Float32Array {
    return Float32Array.from(this.numbers());
  }

  /** Values as float64 numbers in C order (int64 beyond 2^53 loses precision). */
  toFloat64Array(): Float64Array {
    return Float64Array.from(this.numbers());
  }

  /**
   * What the value readers (item, tolist, toFloat32Array...) read: the tensor itself, or for
   * a small libtorch result whose storage JS has not taken yet, a host copy. Why: taking the
   * storage zero-copy pins its libtorch memory until the garbage collector runs, and a small
   * block pinned between the big ones a loop frees (`loss.item()` after each step) keeps
   * glibc from reusing them: memory grew by a whole activation per iteration.
   */
  private readable(): Tensor {
    const nt = this._nt;
    if (this._disposed) throw freedError();
    if (!nt || this._st || this.device.type !== 'cpu') return this;
    const info = nt.storageInfo();
    if (info.nbytes > SMALL_READ_COPY) return this;
    const bytes = new Uint8Array(nt.storageBuffer(true));
    return new Tensor({ storage: new UntypedStorage(bytes, 'cpu'), dtype: this.dtype, shape: this._shape, stride: this._stride, storageOffset: this._offset });
  }

  /** Values as JS numbers (bool: 0/1; complex: not supported, use typedArray()). */
  protected numbers(): number[] {
    if (isComplex(this.dtype)) throw torchsaveError('E_UNSUPPORTED_DTYPE', `${this.dtype} has no real-valued view; use typedArray()`);
    const a = this.readable().typedArray();
    const out = new Array<number>(a.length);
    if (this.dtype === 'float16') for (let i = 0; i < a.length; i++) out[i] = halfToFloat(a[i] as number);
    else if (this.dtype === 'bfloat16') for (let i = 0; i < a.length; i++) out[i] = bf16ToFloat(a[i] as number);
    else for (let i = 0; i < a.length; i++) out[i] = Number(a[i]);
    return out;
  }

  /** Scalar values in C order, each as PyTorch's `.tolist()` would give it. */
  protected scalars(): (number | bigint | boolean | [number, number])[] {
    const r = this.readable();
    if (r !== this) return r.scalars();
    if (isComplex(this.dtype)) {
      const a = this.typedArray();
      const out: [number, number][] = [];
      const conv = this.dtype === 'complex32' ? halfToFloat : (x: number) => x;
      for (let i = 0; i < a.length; i += 2) out.push([conv(a[i] as number), conv(a[i + 1] as number)]);
      return out;
    }
    if (this.dtype === 'bool') return Array.from(this.typedArray() as Uint8Array, (x) => x !== 0);
    if (this.dtype === 'int64' || this.dtype === 'uint64') {
      return Array.from(this.typedArray() as BigInt64Array, (x: bigint) =>
        x >= -(2n ** 53n) && x <= 2n ** 53n ? Number(x) : x,
      );
    }
    return this.numbers();
  }

  /** Nested JS arrays like `tensor.tolist()`; complex elements are `[re, im]` pairs. */
  toArray(): unknown {
    const flat = this.scalars();
    if (this._shape.length === 0) return flat[0];
    let pos = 0;
    const build = (d: number): unknown[] => {
      const n = this._shape[d]!;
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = d === this._shape.length - 1 ? flat[pos++] : build(d + 1);
      return out;
    };
    return build(0);
  }
  /** PyTorch's name for {@link toArray}. */
  tolist(): unknown {
    return this.toArray();
  }

  /** The single value of a one-element tensor. */
  item(): number | bigint | boolean | [number, number] {
    if (this.onNative && this.device.type !== 'cpu') return this.cpu().item();
    if (this.numel() !== 1) {
      throw torchsaveError('E_INVALID_ARGUMENT', `a Tensor with ${this.numel()} elements cannot be converted to Scalar`);
    }
    return this.scalars()[0]!;
  }

  /** This tensor if contiguous, else a contiguous copy. */
  contiguous(): Tensor {
    return this.isContiguous() ? this : this.clone();
  }

  /** A contiguous copy with its own storage (quantizer and subclass kept). */
  clone(): Tensor {
    if (this.onNative) return Tensor.fromNative(this.native().clone());
    const bytes = this.contiguousBytes().slice();
    const t = new Tensor({ storage: new UntypedStorage(bytes, this.device), dtype: this.dtype, shape: this._shape, requiresGrad: this.requiresGrad });
    t.quantizer = this.quantizer;
    t.metadata = this.metadata;
    return t;
  }

  /** A tensor sharing this one's storage, without autograd history. */
  detach(): Tensor {
    if (this.onNative) return Tensor.fromNative(this.native().detach());
    return new Tensor({ storage: this._storage, dtype: this.dtype, shape: this._shape, stride: this._stride, storageOffset: this._offset });
  }

  /** `torch.Tensor.requires_grad_`: sets `requiresGrad` in place and returns the tensor. */
  requiresGrad_(requiresGrad = true): this {
    this.requiresGrad = requiresGrad;
    return this;
  }
  /** Whether this tensor was made by the user rather than by an op that autograd recorded. */
  get isLeaf(): boolean {
    return this._nt ? this._nt.isLeaf : true;
  }

  /** A view with a new shape (contiguous tensors only; one dim may be -1). */
  view(...shape: number[] | [number[]]): Tensor {
    const dims = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
    if (this.onNative) return Tensor.fromNative(this.native().view(dims));
    const n = this.numel();
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = dims.map((d) => (d === -1 ? n / known : d));
    if (resolved.reduce((a, b) => a * b, 1) !== n || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
      throw torchsaveError('E_INVALID_ARGUMENT', `shape '[${dims.join(', ')}]' is invalid for input of size ${n}`);
    }
    if (!this.isContiguous()) throw torchsaveError('E_INVALID_ARGUMENT', 'view size is not compatible with input tensor\'s size and stride; use .reshape(...) / .contiguous()');
    return new Tensor({ storage: this._storage, dtype: this.dtype, shape: resolved, storageOffset: this._offset });
  }
  /** `torch.Tensor.reshape`: a tensor with the new shape (one dim may be -1), a view when possible, else a copy; a size mismatch throws `E_INVALID_ARGUMENT`. */
  reshape(...shape: number[] | [number[]]): Tensor {
    if (this.onNative) {
      const dims = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
      return Tensor.fromNative(this.native().reshape(dims));
    }
    return this.contiguous().view(...shape);
  }

  /**
   * A CPU cast to another dtype (floating, integer and bool dtypes), or a move to another
   * device (needs the libtorch addon, see `torch.backends.libtorch`).
   */
  to(target: DType | Device | string): Tensor {
    if (target instanceof Device || /^(cpu|cuda|mps|meta|xpu)(:\d+)?$/.test(target)) {
      const dev = new Device(target);
      if (dev.equals(this.device)) return this;
      if (this.onNative || (dev.type !== 'cpu' && dev.type !== 'meta')) {
        checkDevice(dev);
        return Tensor.fromNative(this.native().to(undefined, dev.toString(), false, false));
      }
      if (dev.type === 'cpu') {
        return new Tensor({ storage: new UntypedStorage(this.contiguousBytes().slice(), dev), dtype: this.dtype, shape: this._shape, requiresGrad: this.requiresGrad });
      }
      throw torchsaveError('E_DEVICE_UNAVAILABLE', `moving a tensor to ${dev} needs the libtorch addon (torch.backends.libtorch.isAvailable() is false)`);
    }
    const dtype = parseDType(target);
    if (dtype === this.dtype) return this;
    if (this.onNative) return Tensor.fromNative(this.native().to(dtype, undefined, false, false));
    return castTensor(this, dtype);
  }
  /** `torch.Tensor.float`: `to('float32')`. */
  float(): Tensor {
    return this.to('float32');
  }
  /** `torch.Tensor.half`: `to('float16')`. */
  half(): Tensor {
    return this.to('float16');
  }
  /** `torch.Tensor.bfloat16`: `to('bfloat16')`. */
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  /** `torch.Tensor.double`: `to('float64')`. */
  double(): Tensor {
    return this.to('float64');
  }
  /** `torch.Tensor.long`: `to('int64')`. */
  long(): Tensor {
    return this.to('int64');
  }
  /** `torch.Tensor.cpu`: `to('cpu')`, the tensor itself when already there. */
  cpu(): Tensor {
    return this.to('cpu');
  }

  /** Writes `values` (C order) into this tensor's elements in place. */
  protected writeNumbers(values: ArrayLike<number>): this {
    const n = this.numel();
    const tmp = fromNumbers(values, this.dtype, n);
    if (this.onNative && this.device.type !== 'cpu') {
      // Values made on the host, then one copy to the device.
      const host = new Tensor({ storage: new UntypedStorage(tmp), dtype: this.dtype, shape: this._shape });
      return this.copy_(host);
    }
    writeStrided(this, tmp);
    return this;
  }
  /** `torch.Tensor.fill_`: sets every element to `value` in place; returns the tensor. */
  fill_(value: number): this {
    if (this.onNative) {
      this.native().fill_(value);
      return this;
    }
    return this.writeNumbers(new Float64Array(this.numel()).fill(value));
  }
  /** `torch.Tensor.zero_`: sets every element to 0 in place; returns the tensor. */
  zero_(): this {
    if (this.onNative) {
      this.native().zero_();
      return this;
    }
    return this.fill_(0);
  }
  /** Fills with samples from U(a, b) (`torch.nn.init.uniform_`). */
  uniform_(a = 0, b = 1, generator: Generator = defaultGenerator): this {
    const n = this.numel();
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = a + (b - a) * generator.random();
    return this.writeNumbers(v);
  }
  /** Fills with samples from N(mean, std²). */
  normal_(mean = 0, std = 1, generator: Generator = defaultGenerator): this {
    const n = this.numel();
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = mean + std * generator.normal();
    return this.writeNumbers(v);
  }
  /** Copies `src`'s values (same number of elements; dtype converted) into this tensor. */
  copy_(src: Tensor): this {
    if (this.onNative || src.onNative) {
      const s = src.native();
      this.native().copy_(s);
      return this;
    }
    if (src.numel() !== this.numel()) {
      throw torchsaveError('E_INVALID_ARGUMENT', `copy_: source has ${src.numel()} elements, destination ${this.numel()}`);
    }
    const converted = src.dtype === this.dtype ? src.contiguousBytes() : castTensor(src, this.dtype).contiguousBytes();
    writeStrided(this, converted);
    return this;
  }

  /** Same dtype, shape and values (like `torch.equal`). */
  equal(other: Tensor): boolean {
    if (other.dtype !== this.dtype || other._shape.length !== this._shape.length) return false;
    if (other._shape.some((d, i) => d !== this._shape[i])) return false;
    const a = this.contiguousBytes();
    const b = other.contiguousBytes();
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }



  /** `str(tensor)`: PyTorch's `tensor([...])` printout. */
  toString(): string {
    return formatTensor(this);
  }
  /** What `console.log` shows: the same printout as {@link toString}. */
  [inspect.custom](): string {
    return formatTensor(this);
  }
}

/** `nn.Parameter`: a tensor that a module registers as learnable; requires grad by default. */
export class Parameter extends Tensor {
  /** `_rebuild_parameter_with_state`'s Python attributes, kept for re-saving. */
  pyState?: unknown;
  constructor(data: Tensor | TensorInit, requiresGrad = true) {
    const init: TensorInit =
      data instanceof Tensor
        ? { storage: data.untypedStorage(), dtype: data.dtype, shape: data.size(), stride: data.stride(), storageOffset: data.storageOffset() }
        : data;
    super({ ...init, requiresGrad });
    if (data instanceof Tensor) {
      this.quantizer = data.quantizer;
      this.metadata = data.metadata;
    }
  }
  override toString(): string {
    return `Parameter containing:\n${formatTensor(this)}`;
  }
  override [inspect.custom](): string {
    return this.toString();
  }
}
