/**
 * `Tensor`, `Parameter` and `UntypedStorage`: strided views onto shared little-endian bytes.
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
  floatToBf16,
  floatToHalf,
  halfToFloat,
  isComplex,
  isFloatingPoint,
  parseDType,
  typedArrayCtor,
} from './dtype';
import { Device, Size } from './values';
import { lt, nat, type NativeTensor } from './libtorch/addon';
import { trackResult, untracked } from './scope';

export type { DType, TypedArray } from './dtype';

function tsError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Raw bytes of a storage plus the device it belongs to. With the libtorch addon a storage may
 * also be (or only be) a libtorch storage: CUDA storages have no host bytes until `.cpu()`.
 */
export class UntypedStorage {
  readonly device: Device;
  private _bytes: Uint8Array | undefined;
  private readonly _nbytes: number;
  /** @internal The libtorch storage (a 1-D uint8 tensor over all of it), once made. */
  _nt?: NativeTensor;
  constructor(
    /** The storage's bytes, little-endian. */
    bytes: Uint8Array,
    device: Device | string = 'cpu',
  ) {
    this.device = device instanceof Device ? device : new Device(device);
    this._bytes = bytes;
    this._nbytes = bytes.byteLength;
  }
  /** @internal A storage that libtorch owns (a result, or memory on a device). */
  static fromNative(storageTensor: NativeTensor | undefined, nbytes: number, device: string): UntypedStorage {
    const s = Object.create(UntypedStorage.prototype) as UntypedStorage;
    Object.assign(s, { device: new Device(device), _bytes: undefined, _nbytes: nbytes, _nt: storageTensor });
    return s;
  }
  /** @internal A device storage whose memory arrives later (a load's batched copy). */
  static pending(nbytes: number, device: string): UntypedStorage {
    return UntypedStorage.fromNative(undefined, nbytes, device);
  }
  /** The bytes (host memory). A libtorch CPU storage is exposed without a copy; a device storage throws: use `.cpu()`. */
  get bytes(): Uint8Array {
    if (this._bytes) return this._bytes;
    if (this._nt && this.device.type === 'cpu') {
      const nt = this._nt;
      const bytes = new Uint8Array(nat(() => nt.storageBuffer()));
      // Under Electron's sandbox this is a copy: never cache it, libtorch may write the storage.
      if (!lt().NativeTensor.externalRefused()) this._bytes = bytes;
      return bytes;
    }
    if (this.device.type === 'meta') return new Uint8Array(0);
    throw tsError('E_DEVICE_UNAVAILABLE', `this storage lives on ${this.device}: copy it to the host with .cpu() to read its bytes`);
  }
  /** The bytes on the host: the storage itself on the CPU, a copy from a device (for saving). */
  hostBytes(): Uint8Array {
    if (this.device.type === 'cpu' || this.device.type === 'meta' || this._bytes) return this.bytes;
    const nt = this.native();
    return new Uint8Array(nat(() => nt.to(undefined, 'cpu', false, true).storageBuffer()));
  }
  get nbytes(): number {
    return this._bytes ? this._bytes.byteLength : this._nbytes;
  }
  /** A storage of `nbytes` zero bytes. */
  static allocate(nbytes: number, device: Device | string = 'cpu'): UntypedStorage {
    return new UntypedStorage(new Uint8Array(nbytes), device);
  }
  /**
   * @internal The libtorch view of this storage (needs the addon): host memory is borrowed,
   * not copied, and kept alive while libtorch uses it.
   */
  native(): NativeTensor {
    if (this._nt) return this._nt;
    const addon = lt('computing on tensors');
    if (this.device.type !== 'cpu') {
      throw tsError('E_DEVICE_UNAVAILABLE', `a ${this.device} storage with host bytes cannot be computed on; load it with mapLocation`);
    }
    const b = this.bytes;
    const nt = nat(() => addon.NativeTensor.fromStorage(b.buffer, b.byteOffset, b.byteLength));
    this._nt = nt;
    registerStorage(nt, this);
    return nt;
  }
}

// One UntypedStorage per libtorch storage, so views of one result share one storage object
// (torch.save then writes it once) and its host bytes are exposed once.
const storageRegistry = new Map<string, WeakRef<UntypedStorage>>();
const storageCleanup = new FinalizationRegistry<string>((key) => {
  const ref = storageRegistry.get(key);
  if (ref && ref.deref() === undefined) storageRegistry.delete(key);
});

function storageKey(info: { id: bigint; device: string }): string {
  return `${info.device}:${info.id.toString(16)}`;
}

function registerStorage(nt: NativeTensor, s: UntypedStorage): void {
  const key = storageKey(nat(() => nt.storageInfo()));
  storageRegistry.set(key, new WeakRef(s));
  storageCleanup.register(s, key);
}

/** A clear E_DEVICE_UNAVAILABLE before libtorch's own "no NVIDIA driver" error. */
function checkDevice(dev: Device): void {
  if (dev.type === 'cpu' || dev.type === 'meta') return;
  const info = lt(`moving a tensor to ${dev}`).buildInfo();
  if (dev.type === 'cuda' && (!info.cudaAvailable || (dev.index ?? 0) >= info.cudaDeviceCount)) {
    throw tsError('E_DEVICE_UNAVAILABLE', `${dev} is not available: torch.cuda.isAvailable() is ${info.cudaAvailable}, deviceCount() is ${info.cudaDeviceCount}`);
  }
}

function sameView(a: NativeTensor, b: NativeTensor): boolean {
  const x = nat(() => a.storageInfo());
  const y = nat(() => b.storageInfo());
  return x.id === y.id && x.device === y.device && a.storageOffset === b.storageOffset && a.shape.join() === b.shape.join();
}

function freedError(): Error {
  return tsError('E_INVALID_ARGUMENT', 'this tensor was freed (tensor.dispose() or the end of a torch.tidy scope); return it from the scope or torch.keep() it to use it later');
}

/** Storages up to this size are copied, not shared, when only read as values (`readable`). */
const SMALL_READ_COPY = 64 << 10;

function storageOf(nt: NativeTensor): UntypedStorage {
  const info = nat(() => nt.storageInfo());
  const key = storageKey(info);
  const hit = storageRegistry.get(key)?.deref();
  if (hit && hit.nbytes === info.nbytes) return hit;
  const s = UntypedStorage.fromNative(nat(() => nt.storageTensor()), info.nbytes, info.device);
  storageRegistry.set(key, new WeakRef(s));
  storageCleanup.register(s, key);
  return s;
}

export interface QuantizerInfo {
  /** `per_tensor_affine`, `per_channel_affine`, ... */
  scheme: string;
  /** `[scale, zeroPoint]` or `[scales, zeroPoints, axis]` as pickled. */
  params: unknown[];
}

export interface TensorSubclassInfo {
  module: string;
  name: string;
  state: unknown;
}

export interface TensorInit {
  storage: UntypedStorage;
  dtype: DType;
  shape: readonly number[];
  /** Elements; defaults to contiguous (C order). */
  stride?: readonly number[];
  /** Elements. */
  storageOffset?: number;
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

export class Tensor {
  readonly dtype: DType;
  protected _shape: number[];
  protected _stride: number[];
  protected _offset: number;
  /** The storage; for a libtorch result it is made on first use (most results never need it). */
  private _st: UntypedStorage | undefined;
  private _dev: Device | undefined;
  private _requiresGrad: boolean;
  private _grad: Tensor | null = null;
  private _gradWrap: Tensor | undefined;
  private _disposed?: boolean;
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
      throw tsError('E_STORAGE_BOUNDS', `shape has ${this._shape.length} dims but stride has ${this._stride.length}`);
    }
    // Meta tensors have a dtype, shape and strides but no data.
    const need = this._storage.device.type === 'meta' ? 0 : this.requiredStorageBytes();
    if (need > this._storage.nbytes) {
      throw tsError(
        'E_STORAGE_BOUNDS',
        `tensor of shape [${this._shape.join(', ')}] at offset ${this._offset} needs ${need} bytes but its storage has ${this._storage.nbytes}`,
      );
    }
  }

  /** Whether autograd records operations on this tensor (`requires_grad`). */
  get requiresGrad(): boolean {
    return this._nt ? this._nt.requiresGrad : this._requiresGrad;
  }
  set requiresGrad(v: boolean) {
    this._requiresGrad = v;
    const nt = this._nt;
    if (nt && nt.requiresGrad !== v) this._nt = nat(() => nt.setRequiresGrad(v));
  }

  /** The gradient autograd accumulated (`.grad`), or null. */
  get grad(): Tensor | null {
    const nt = this._nt;
    if (!nt) return this._grad;
    const g = nat(() => nt.grad());
    if (!g) return null;
    const w = this._gradWrap;
    if (w && w._nt && sameView(w._nt, g)) return w;
    // The wrapper is cached on the parameter: no torch.tidy may free it.
    this._gradWrap = untracked(() => Tensor.fromNative(g));
    return this._gradWrap;
  }
  set grad(v: Tensor | null) {
    this._grad = v;
    this._gradWrap = v ?? undefined;
    const nt = this._nt;
    if (nt) nat(() => nt.setGrad(v ? v.native() : null));
  }

  /**
   * The libtorch tensor behind this one (needs the libtorch addon). Host memory is shared,
   * not copied: writes through either side are seen by the other.
   */
  native(): NativeTensor {
    if (this._disposed) throw freedError();
    if (this._nt) return this._nt;
    if (this.quantizer) throw tsError('E_UNSUPPORTED_DTYPE', 'computing on a quantized tensor is not supported');
    const base = this._storage.native();
    let nt = nat(() => base.viewAs(this.dtype, this._shape, this._stride, this._offset));
    if (this._requiresGrad) nt = nat(() => nt.setRequiresGrad(true));
    if (this._grad) {
      const g = this._grad.native();
      nat(() => nt.setGrad(g));
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
    const nt = this._nt;
    if (!nt) return;
    nt.dispose();
    this._disposed = true;
  }

  /** True once {@link dispose} (or the end of a `torch.tidy` scope) has freed this tensor. */
  get isDisposed(): boolean {
    return this._disposed === true;
  }

  protected get _storage(): UntypedStorage {
    if (!this._st) {
      if (this._disposed) throw freedError();
      this._st = storageOf(this._nt!);
    }
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
  stride(): number[];
  stride(dim: number): number;
  stride(dim?: number): number[] | number {
    if (dim === undefined) return [...this._stride];
    return this._stride[this.normDim(dim)]!;
  }
  storageOffset(): number {
    return this._offset;
  }
  get ndim(): number {
    return this._shape.length;
  }
  dim(): number {
    return this._shape.length;
  }
  numel(): number {
    return this._shape.reduce((a, b) => a * b, 1);
  }
  elementSize(): number {
    return elementSize(this.dtype);
  }
  get device(): Device {
    if (this._st) return this._st.device;
    if (!this._dev) this._dev = new Device(this._nt!.device);
    return this._dev;
  }
  get isCuda(): boolean {
    return this.device.type === 'cuda';
  }
  get isQuantized(): boolean {
    return this.quantizer !== undefined;
  }
  untypedStorage(): UntypedStorage {
    return this._storage;
  }
  isFloatingPoint(): boolean {
    return isFloatingPoint(this.dtype);
  }
  isComplex(): boolean {
    return isComplex(this.dtype);
  }

  protected normDim(dim: number): number {
    const d = dim < 0 ? dim + this._shape.length : dim;
    if (d < 0 || d >= this._shape.length) {
      throw tsError('E_INVALID_ARGUMENT', `Dimension out of range (expected to be in range of [${-this._shape.length}, ${this._shape.length - 1}], but got ${dim})`);
    }
    return d;
  }

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
      throw tsError('E_DEVICE_UNAVAILABLE', `a meta tensor of shape [${this._shape.join(', ')}] has no data`);
    }
    if (this.onNative && this.device.type !== 'cpu') return this.cpu().contiguousBytes();
    const es = elementSize(this.dtype);
    const n = this.numel();
    const bytes = this._storage.bytes;
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
    const info = nat(() => nt.storageInfo());
    if (info.nbytes > SMALL_READ_COPY) return this;
    const bytes = new Uint8Array(nat(() => nt.storageBuffer(true)));
    return new Tensor({ storage: new UntypedStorage(bytes, 'cpu'), dtype: this.dtype, shape: this._shape, stride: this._stride, storageOffset: this._offset });
  }

  /** Values as JS numbers (bool: 0/1; complex: not supported, use typedArray()). */
  protected numbers(): number[] {
    if (isComplex(this.dtype)) throw tsError('E_UNSUPPORTED_DTYPE', `${this.dtype} has no real-valued view; use typedArray()`);
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
      throw tsError('E_INVALID_ARGUMENT', `a Tensor with ${this.numel()} elements cannot be converted to Scalar`);
    }
    return this.scalars()[0]!;
  }

  /** This tensor if contiguous, else a contiguous copy. */
  contiguous(): Tensor {
    return this.isContiguous() ? this : this.clone();
  }

  /** A contiguous copy with its own storage (quantizer and subclass kept). */
  clone(): Tensor {
    if (this.onNative) return Tensor.fromNative(nat(() => this.native().clone()));
    const bytes = this.contiguousBytes().slice();
    const t = new Tensor({ storage: new UntypedStorage(bytes, this.device), dtype: this.dtype, shape: this._shape, requiresGrad: this.requiresGrad });
    t.quantizer = this.quantizer;
    t.metadata = this.metadata;
    return t;
  }

  /** A tensor sharing this one's storage, without autograd history. */
  detach(): Tensor {
    if (this.onNative) return Tensor.fromNative(nat(() => this.native().detach()));
    return new Tensor({ storage: this._storage, dtype: this.dtype, shape: this._shape, stride: this._stride, storageOffset: this._offset });
  }

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
    if (this.onNative) return Tensor.fromNative(nat(() => this.native().view(dims)));
    const n = this.numel();
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = dims.map((d) => (d === -1 ? n / known : d));
    if (resolved.reduce((a, b) => a * b, 1) !== n || resolved.some((d) => !Number.isInteger(d) || d < 0)) {
      throw tsError('E_INVALID_ARGUMENT', `shape '[${dims.join(', ')}]' is invalid for input of size ${n}`);
    }
    if (!this.isContiguous()) throw tsError('E_INVALID_ARGUMENT', 'view size is not compatible with input tensor\'s size and stride; use .reshape(...) / .contiguous()');
    return new Tensor({ storage: this._storage, dtype: this.dtype, shape: resolved, storageOffset: this._offset });
  }
  reshape(...shape: number[] | [number[]]): Tensor {
    if (this.onNative) {
      const dims = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
      return Tensor.fromNative(nat(() => this.native().reshape(dims)));
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
        return Tensor.fromNative(nat(() => this.native().to(undefined, dev.toString(), false, false)));
      }
      if (dev.type === 'cpu') {
        return new Tensor({ storage: new UntypedStorage(this.contiguousBytes().slice(), dev), dtype: this.dtype, shape: this._shape, requiresGrad: this.requiresGrad });
      }
      throw tsError('E_DEVICE_UNAVAILABLE', `moving a tensor to ${dev} needs the libtorch addon (torch.backends.libtorch.isAvailable() is false)`);
    }
    const dtype = parseDType(target);
    if (dtype === this.dtype) return this;
    if (this.onNative) return Tensor.fromNative(nat(() => this.native().to(dtype, undefined, false, false)));
    return castTensor(this, dtype);
  }
  float(): Tensor {
    return this.to('float32');
  }
  half(): Tensor {
    return this.to('float16');
  }
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
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
  fill_(value: number): this {
    if (this.onNative) {
      nat(() => this.native().fill_(value));
      return this;
    }
    return this.writeNumbers(new Float64Array(this.numel()).fill(value));
  }
  zero_(): this {
    if (this.onNative) {
      nat(() => this.native().zero_());
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
      nat(() => this.native().copy_(s));
      return this;
    }
    if (src.numel() !== this.numel()) {
      throw tsError('E_INVALID_ARGUMENT', `copy_: source has ${src.numel()} elements, destination ${this.numel()}`);
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


  // ---- compute: libtorch's ops (needs the libtorch addon), autograd recorded ----

  private un(f: (x: NativeTensor) => NativeTensor): Tensor {
    const x = this.native();
    return Tensor.fromNative(nat(() => f(x)));
  }
  private bin(other: Tensor | number, t: (x: NativeTensor, y: NativeTensor) => NativeTensor, sc: (x: NativeTensor, v: number) => NativeTensor): Tensor {
    const x = this.native();
    if (typeof other === 'number') return Tensor.fromNative(nat(() => sc(x, other)));
    const y = other.native();
    return Tensor.fromNative(nat(() => t(x, y)));
  }

  /** `self + alpha * other`. */
  add(other: Tensor | number, alpha?: number): Tensor {
    if (typeof other === 'number') return this.un((x) => x.addScalar(other * (alpha ?? 1)));
    const y = other.native();
    return this.un((x) => x.add(y, alpha));
  }
  /** `self - alpha * other`. */
  sub(other: Tensor | number, alpha?: number): Tensor {
    if (typeof other === 'number') return this.un((x) => x.subScalar(other * (alpha ?? 1)));
    const y = other.native();
    return alpha === undefined ? this.un((x) => x.sub(y)) : this.un((x) => x.add(y, -alpha));
  }
  mul(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.mul(y), (x, v) => x.mulScalar(v));
  }
  div(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.div(y), (x, v) => x.divScalar(v));
  }
  pow(exponent: Tensor | number): Tensor {
    return this.bin(exponent, (x, y) => x.pow(y), (x, v) => x.powScalar(v));
  }
  matmul(other: Tensor): Tensor {
    return this.bin(other, (x, y) => x.matmul(y), () => {
      throw tsError('E_INVALID_ARGUMENT', 'matmul needs a tensor');
    });
  }
  maximum(other: Tensor): Tensor {
    const y = other.native();
    return this.un((x) => x.maximum(y));
  }
  minimum(other: Tensor): Tensor {
    const y = other.native();
    return this.un((x) => x.minimum(y));
  }
  eq(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.eq(y), (x, v) => x.eqScalar(v));
  }
  ne(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.ne(y), (x, v) => x.eqScalar(v).logicalNot());
  }
  lt(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.lt(y), (x, v) => x.ltScalar(v));
  }
  le(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.le(y), (x, v) => x.leScalar(v));
  }
  gt(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.gt(y), (x, v) => x.gtScalar(v));
  }
  ge(other: Tensor | number): Tensor {
    return this.bin(other, (x, y) => x.ge(y), (x, v) => x.geScalar(v));
  }
  neg(): Tensor {
    return this.un((x) => x.neg());
  }
  abs(): Tensor {
    return this.un((x) => x.abs());
  }
  exp(): Tensor {
    return this.un((x) => x.exp());
  }
  log(): Tensor {
    return this.un((x) => x.log());
  }
  sqrt(): Tensor {
    return this.un((x) => x.sqrt());
  }
  rsqrt(): Tensor {
    return this.un((x) => x.rsqrt());
  }
  sin(): Tensor {
    return this.un((x) => x.sin());
  }
  cos(): Tensor {
    return this.un((x) => x.cos());
  }
  sign(): Tensor {
    return this.un((x) => x.sign());
  }
  square(): Tensor {
    return this.un((x) => x.square());
  }
  relu(): Tensor {
    return this.un((x) => x.relu());
  }
  sigmoid(): Tensor {
    return this.un((x) => x.sigmoid());
  }
  tanh(): Tensor {
    return this.un((x) => x.tanh());
  }
  clamp(min: number | null, max: number | null = null): Tensor {
    if (min !== null && max !== null) return this.un((x) => x.clamp(min, max));
    if (min !== null) return this.un((x) => x.clampMin(min));
    if (max !== null) return this.un((x) => x.clampMax(max));
    return this.clone();
  }
  /** Sum of all elements, or over `dim` (a number or a list). */
  sum(dim?: number | number[] | null, keepdim = false, opts: { dtype?: DType } = {}): Tensor {
    const dims = dim === undefined || dim === null ? undefined : typeof dim === 'number' ? [dim] : dim;
    return this.un((x) => x.sum(dims, keepdim, opts.dtype));
  }
  mean(dim?: number | number[] | null, keepdim = false, opts: { dtype?: DType } = {}): Tensor {
    const dims = dim === undefined || dim === null ? undefined : typeof dim === 'number' ? [dim] : dim;
    return this.un((x) => x.mean(dims, keepdim, opts.dtype));
  }
  /** `max()`: the largest element; `max(dim)`: `{values, indices}` like PyTorch's named tuple. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    const x = this.native();
    if (dim === undefined) return Tensor.fromNative(nat(() => x.maxAll()));
    const [v, i] = nat(() => x.maxDim(dim, keepdim));
    return { values: Tensor.fromNative(v!), indices: Tensor.fromNative(i!) };
  }
  min(): Tensor {
    return this.un((x) => x.minAll());
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return this.un((x) => x.argmax(dim, keepdim));
  }
  softmax(dim: number): Tensor {
    return this.un((x) => x.softmax(dim));
  }
  logSoftmax(dim: number): Tensor {
    return this.un((x) => x.logSoftmax(dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return this.un((x) => x.flatten(startDim, endDim));
  }
  permute(...dims: number[] | [number[]]): Tensor {
    const d = (Array.isArray(dims[0]) ? dims[0] : dims) as number[];
    return this.un((x) => x.permute(d));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return this.un((x) => x.transpose(dim0, dim1));
  }
  t(): Tensor {
    return this.un((x) => x.t());
  }
  unsqueeze(dim: number): Tensor {
    return this.un((x) => x.unsqueeze(dim));
  }
  squeeze(dim?: number): Tensor {
    return this.un((x) => x.squeeze(dim));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return this.un((x) => x.narrow(dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return this.un((x) => x.select(dim, index));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    const d = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
    return this.un((x) => x.expand(d));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    const x = this.native();
    return nat(() => x.chunk(chunks, dim)).map((c) => Tensor.fromNative(c));
  }
  /** `tensor.cuda(device)`: `to('cuda:N')`. */
  cuda(device: number | string = 0): Tensor {
    return this.to(typeof device === 'number' ? `cuda:${device}` : device);
  }

  /** `loss.backward()`: accumulates gradients into the leaves' `.grad`. */
  backward(gradient?: Tensor | null, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    const x = this.native();
    const g = gradient ? gradient.native() : undefined;
    nat(() => x.backward(g, opts.retainGraph, opts.createGraph));
  }

  /** In place `self += alpha * other`. */
  add_(other: Tensor | number, alpha?: number): this {
    const x = this.native();
    if (typeof other === 'number') {
      const v = other * (alpha ?? 1);
      nat(() => x.addScalar_(v));
    } else {
      const y = other.native();
      nat(() => x.add_(y, alpha));
    }
    return this;
  }
  sub_(other: Tensor | number, alpha = 1): this {
    return this.add_(other, -alpha);
  }
  mul_(other: Tensor | number): this {
    if (typeof other === 'number') {
      const x = this.native();
      nat(() => x.mulScalar_(other));
      return this;
    }
    return this.copy_(this.mul(other));
  }
  div_(other: Tensor | number): this {
    return typeof other === 'number' ? this.mul_(1 / other) : this.copy_(this.div(other));
  }

  toString(): string {
    return formatTensor(this);
  }
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

function fromNumbers(values: ArrayLike<number>, dtype: DType, n: number): Uint8Array {
  const Ctor = typedArrayCtor(dtype);
  if (isComplex(dtype)) throw tsError('E_UNSUPPORTED_DTYPE', `cannot fill ${dtype} from real numbers`);
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (dtype === 'float16') out[i] = floatToHalf(v);
    else if (dtype === 'bfloat16') out[i] = floatToBf16(v);
    else if (dtype === 'bool') out[i] = v !== 0 ? 1 : 0;
    else if (out instanceof BigInt64Array || out instanceof BigUint64Array) out[i] = BigInt(Math.trunc(v));
    else if (isFloatingPoint(dtype) || out instanceof Float32Array || out instanceof Float64Array) out[i] = v;
    else out[i] = Math.trunc(v);
  }
  return new Uint8Array(out.buffer);
}

/** Writes C-order element bytes into a (possibly strided) tensor. */
function writeStrided(t: Tensor, src: Uint8Array): void {
  const es = elementSize(t.dtype);
  const dst = t.untypedStorage().bytes;
  const shape = t.size();
  const stride = t.stride();
  const n = t.numel();
  if (t.isContiguous()) {
    dst.set(src.subarray(0, n * es), t.storageOffset() * es);
    return;
  }
  const idx = new Array<number>(shape.length).fill(0);
  let off = t.storageOffset();
  for (let k = 0; k < n; k++) {
    dst.set(src.subarray(k * es, k * es + es), off * es);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]!++;
      off += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

function castTensor(t: Tensor, dtype: DType): Tensor {
  if (isComplex(dtype) || isComplex(t.dtype)) throw tsError('E_UNSUPPORTED_DTYPE', `casting ${t.dtype} to ${dtype} is not supported on the CPU path`);
  if (t.quantizer) throw tsError('E_UNSUPPORTED_DTYPE', 'casting a quantized tensor needs dequantization (libtorch addon)');
  const n = t.numel();
  let bytes: Uint8Array;
  if ((t.dtype === 'int64' || t.dtype === 'uint64') && (dtype === 'int64' || dtype === 'uint64' || dtype === 'int32')) {
    const src = t.typedArray() as BigInt64Array;
    const Ctor = typedArrayCtor(dtype);
    const out = new Ctor(n);
    for (let i = 0; i < n; i++) out[i] = dtype === 'int32' ? Number(BigInt.asIntN(32, src[i] as bigint)) : (src[i] as bigint);
    bytes = new Uint8Array(out.buffer);
  } else {
    bytes = fromNumbers(t.toFloat64Array(), dtype, n);
  }
  return new Tensor({ storage: new UntypedStorage(bytes, t.device), dtype, shape: t.size(), requiresGrad: t.requiresGrad });
}

// --- formatting (PyTorch-like, abbreviated for big tensors) ---

function formatScalar(v: unknown, dtype: DType): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Array.isArray(v)) return `${formatScalar(v[0], 'float32')}${v[1] < 0 ? '-' : '+'}${formatScalar(Math.abs(v[1] as number), 'float32')}j`;
  if (typeof v === 'bigint') return v.toString();
  const x = v as number;
  if (!isFloatingPoint(dtype)) return String(x);
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return Number.isInteger(x) ? `${x}.` : x.toFixed(4);
}

function formatTensor(t: Tensor): string {
  const dtypeSuffix = t.dtype === 'float32' || t.dtype === 'int64' || t.dtype === 'bool' ? '' : `, dtype=torch.${t.dtype}`;
  const dev = t.device.type === 'cpu' ? '' : `, device='${t.device}'`;
  const grad = t.requiresGrad && !(t instanceof Parameter) ? ', requires_grad=True' : '';
  let body: string;
  if (t.device.type === 'meta') {
    // PyTorch: tensor(..., device='meta', size=(2, 3), dtype=torch.float16)
    const size = t.size();
    return `tensor(..., device='meta', size=(${size.join(', ')}${size.length === 1 ? ',' : ''})${dtypeSuffix}${grad})`;
  }
  if (t.numel() > 1000) {
    body = `[... ${t.numel()} elements, shape [${t.size().join(', ')}] ...]`;
  } else {
    const rec = (v: unknown): string => (Array.isArray(v) && !(t.isComplex() && typeof v[0] === 'number') ? `[${v.map(rec).join(', ')}]` : formatScalar(v, t.dtype));
    body = rec(t.toArray());
  }
  return `tensor(${body}${dev}${dtypeSuffix}${grad})`;
}

// --- random numbers for initialisation ---

/**
 * A seedable random source (xoshiro128**). Distributions match PyTorch's initialisers;
 * the exact numbers do not (PyTorch uses its own Philox/MT engines).
 */
export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  constructor(seed = Date.now()) {
    this.manualSeed(seed);
  }
  manualSeed(seed: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(seed));
    for (let i = 0; i < 4; i++) {
      // splitmix64 to spread the seed
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      z = z ^ (z >> 31n);
      this.s[i] = Number(z & 0xffffffffn);
    }
    this.spare = null;
    return this;
  }
  private next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }
  /** Uniform in [0, 1) with 53 bits. */
  random(): number {
    return ((this.next() >>> 5) * 67108864 + (this.next() >>> 6)) / 9007199254740992;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export const defaultGenerator = new Generator();

/** `torch.manual_seed`: reseeds the default generator used by initialisers. */
export function manualSeed(seed: number | bigint): Generator {
  return defaultGenerator.manualSeed(seed);
}

// --- factories ---

export interface FactoryOptions {
  dtype?: DType;
  device?: Device | string;
  requiresGrad?: boolean;
}

export type Dims = number[] | readonly number[];

function shapeArgs(args: (number | Dims)[]): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return [...(args[0] as number[])];
  return args as number[];
}

/** Uninitialised (zeroed) tensor. `empty([2, 3])` or `empty(2, 3)`. */
export function empty(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  const opts = (typeof rest[rest.length - 1] === 'object' ? rest.pop() : {}) as FactoryOptions;
  const dims = shapeArgs([shape, ...(rest as number[])]);
  const dtype = opts.dtype ?? 'float32';
  const n = dims.reduce((a, b) => a * b, 1);
  const dev = opts.device ?? 'cpu';
  const device = new Device(dev);
  if (device.type !== 'cpu' && device.type !== 'meta') {
    const addon = lt(`creating a tensor on ${device}`);
    checkDevice(device);
    const t = Tensor.fromNative(nat(() => addon.NativeTensor.zeros(dims, dtype, device.toString())));
    if (opts.requiresGrad) t.requiresGrad = true;
    return t;
  }
  return new Tensor({ storage: UntypedStorage.allocate(n * elementSize(dtype), dev), dtype, shape: dims, requiresGrad: opts.requiresGrad ?? false });
}

export function zeros(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest);
}

export function ones(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest).fill_(1);
}

export function full(shape: Dims, value: number, opts: FactoryOptions = {}): Tensor {
  return empty(shape, opts).fill_(value);
}

/** `torch.rand`: U(0, 1). */
export function rand(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest).uniform_(0, 1);
}

/** `torch.randn`: N(0, 1). */
export function randn(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest).normal_(0, 1);
}

export function arange(start: number, end?: number, step = 1, opts: FactoryOptions = {}): Tensor {
  const [a, b] = end === undefined ? [0, start] : [start, end];
  const n = Math.max(0, Math.ceil((b - a) / step));
  const vals = Array.from({ length: n }, (_, i) => a + i * step);
  const integral = Number.isInteger(a) && Number.isInteger(step);
  return tensor(vals, { dtype: opts.dtype ?? (integral ? 'int64' : 'float32'), requiresGrad: opts.requiresGrad });
}

export type Nested = number | boolean | bigint | Nested[];

/** `torch.tensor(data)`: from nested arrays or a typed array; dtype inferred like PyTorch. */
export function tensor(data: Nested | TypedArray, opts: FactoryOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const dtype = opts.dtype ?? typedArrayDType(data);
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return new Tensor({ storage: new UntypedStorage(bytes), dtype, shape: [data.length], requiresGrad: opts.requiresGrad });
  }
  const shape: number[] = [];
  let probe: Nested = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    probe = probe[0] as Nested;
  }
  const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean | bigint)[];
  if (flat.length !== shape.reduce((a, b) => a * b, 1)) throw tsError('E_INVALID_ARGUMENT', 'tensor(): ragged nested sequence');
  const inferred: DType = flat.every((v) => typeof v === 'boolean')
    ? 'bool'
    : flat.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))
      ? 'int64'
      : 'float32';
  const dtype = opts.dtype ?? inferred;
  const t = empty(shape, { dtype, requiresGrad: opts.requiresGrad });
  if (dtype === 'int64' || dtype === 'uint64') {
    const arr = t.typedArray() as BigInt64Array;
    flat.forEach((v, i) => (arr[i] = BigInt(typeof v === 'boolean' ? Number(v) : v)));
  } else {
    (t as unknown as { writeNumbers(v: ArrayLike<number>): void }).writeNumbers(flat.map((v) => Number(v)));
  }
  return t;
}

function typedArrayDType(a: TypedArray): DType {
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof BigUint64Array) return 'uint64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof Int16Array) return 'int16';
  if (a instanceof Uint16Array) return 'uint16';
  if (a instanceof Int8Array) return 'int8';
  return 'uint8';
}
