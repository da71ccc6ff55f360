/**
 * Python values in TypeScript.
 *
 * | Python | TypeScript |
 * |---|---|
 * | dict | `Map` (insertion order, any key type) |
 * | collections.OrderedDict | {@link OrderedDict} (a `Map` that keeps `_metadata`) |
 * | list / tuple | `Array` / {@link PyTuple} |
 * | int | `number`, or `bigint` beyond 2^53 |
 * | float, bool, None, str | `number`, `boolean`, `null`, `string` |
 * | bytes / bytearray | `Uint8Array` / {@link PyByteArray} |
 * | complex | {@link PyComplex} |
 * | set / frozenset | `Set` / {@link PyFrozenSet} |
 * | torch.Size / torch.device / torch.dtype | {@link Size} / {@link Device} / {@link DTypeRef} |
 * | torch.Tensor / nn.Parameter | `Tensor` / `Parameter` |
 * | numpy ndarray / scalar | {@link NdArray} / {@link NpScalar} |
 * | any other object | {@link PyObject}: data only, never run |
 *
 * A Python float that happens to be integral (`2.0`) loads as the number `2`; the loader
 * remembers where such floats were so that a re-save writes a float again. To write a
 * float from scratch where the number is integral, wrap it: `new PyFloat(2)`.
 */
import { inspect } from 'node:util';
import { torchsaveError } from './errors';

/** A Python tuple: an array that re-saves as a tuple, not a list. */
export class PyTuple<T = unknown> extends Array<T> {
  /** Builds a tuple from items (`PyTuple.of(1, 2)` or `PyTuple.from(iterable)` work too). */
  static fromItems<T>(items: Iterable<T>): PyTuple<T> {
    const t = new PyTuple<T>();
    for (const x of items) t.push(x);
    return t;
  }
  /** What `console.log` shows: the items in Python's tuple syntax `(a, b)`. */
  [inspect.custom](_depth: number, options: { stylize?: unknown }, insp: typeof inspect): string {
    const inner = Array.from(this, (x) => insp(x, options as never));
    return `(${inner.join(', ')}${inner.length === 1 ? ',' : ''})`;
  }
}

/** `torch.Size`: a tuple of ints that prints like PyTorch's. */
export class Size extends PyTuple<number> {
  /** A `torch.Size` of these dim sizes. */
  static fromDims(dims: Iterable<number>): Size {
    const s = new Size();
    for (const d of dims) s.push(d);
    return s;
  }
  /** Number of elements. */
  numel(): number {
    return this.reduce((a, b) => a * b, 1);
  }
  override toString(): string {
    return `torch.Size([${this.join(', ')}])`;
  }
  /** What `console.log` shows: `torch.Size([2, 3])`. */
  override [inspect.custom](): string {
    return this.toString();
  }
}

/** `collections.OrderedDict`: a Map that also carries PyTorch's `_metadata` (module versions). */
export class OrderedDict<K = unknown, V = unknown> extends Map<K, V> {
  /** State-dict metadata: module prefix (no trailing dot) -> `{version: n, ...}`. */
  _metadata?: OrderedDict<string, Map<string, unknown>>;
  /** Other instance attributes restored by BUILD (rare), kept for re-saving. */
  pyState?: Map<string, unknown>;
}

/** A Python float, for writing an integral value as `2.0` rather than `2`. */
export class PyFloat {
  constructor(
    /** The number. */
    readonly value: number,
  ) {}
  /** The number, so arithmetic and comparisons work. */
  valueOf(): number {
    return this.value;
  }
  /** Python's `repr`: `2.0` for an integral value. */
  toString(): string {
    return Number.isInteger(this.value) ? `${this.value}.0` : String(this.value);
  }
}

/** A Python complex number. */
export class PyComplex {
  constructor(
    /** The real part. */
    readonly re: number,
    /** The imaginary part. */
    readonly im: number,
  ) {}
  /** Python's `repr`: `(1+2j)`. */
  toString(): string {
    return `(${this.re}${this.im < 0 || Object.is(this.im, -0) ? '-' : '+'}${Math.abs(this.im)}j)`;
  }
}

/** A Python `bytearray` (plain `Uint8Array` is `bytes`). */
export class PyByteArray extends Uint8Array {}

/** A Python `frozenset`. */
export class PyFrozenSet<T = unknown> extends Set<T> {}

/** `torch.device`. */
export class Device {
  /** `torch.device.type`: `cpu`, `cuda`, `mps`, `meta`, ... */
  readonly type: string;
  /** `torch.device.index`: the device number, or null when none was given. */
  readonly index: number | null;
  constructor(spec: string | Device, index?: number | null) {
    if (spec instanceof Device) {
      this.type = spec.type;
      this.index = spec.index;
      return;
    }
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(?::(\d+))?$/.exec(spec);
    if (!m) throw torchsaveError('E_INVALID_ARGUMENT', `Invalid device string: '${spec}'`);
    this.type = m[1]!;
    this.index = m[2] !== undefined ? Number(m[2]) : (index ?? null);
  }
  /** `str(device)`: `cuda:0`, or `cpu` when there is no index. */
  toString(): string {
    return this.index === null ? this.type : `${this.type}:${this.index}`;
  }
  /** Same type and index (`torch.device('cuda:0') == 'cuda:0'`). */
  equals(other: Device | string): boolean {
    return this.toString() === new Device(other).toString();
  }
  /** What `console.log` shows: `device(type='cuda', index=0)`. */
  [inspect.custom](): string {
    return this.index === null ? `device(type='${this.type}')` : `device(type='${this.type}', index=${this.index})`;
  }
}

/** A `torch.<dtype>` object stored as a value (e.g. inside a checkpoint dict). */
export class DTypeRef {
  constructor(
    /** The dtype name without `torch.` (`float32`). */
    readonly name: string,
  ) {}
  /** `str(dtype)`: `torch.float32`. */
  toString(): string {
    return `torch.${this.name}`;
  }
  /** What `console.log` shows: `torch.float32`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A sparse tensor layout such as `torch.sparse_coo`. */
export class Layout {
  constructor(
    /** The layout name without `torch.` (`sparse_coo`, `strided`). */
    readonly name: string,
  ) {}
  /** `str(layout)`: `torch.sparse_coo`. */
  toString(): string {
    return `torch.${this.name}`;
  }
}

/** A class or function referenced (not called) by the pickle, e.g. a qscheme. */
export class PyGlobal {
  constructor(
    /** The Python module (`torch`). */
    readonly module: string,
    /** The qualified name inside it (`per_tensor_affine`). */
    readonly name: string,
  ) {}
  /** `module.name`. */
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
  /** `module.name`. */
  toString(): string {
    return `<global ${this.fullName}>`;
  }
}

/** The pickle opcode family that built a {@link PyObject}: `REDUCE`, `NEWOBJ`, `NEWOBJ_EX` or `INST`/`OBJ`. */
export type PyObjectKind = 'reduce' | 'newobj' | 'newobj_ex' | 'inst';

/**
 * An object torchsave does not interpret (argparse.Namespace, a user class, an nn.Module
 * loaded without a class mapping, ...). It is data: nothing in it was or will be executed.
 * Re-saving writes the same global, arguments and state.
 */
export class PyObject {
  constructor(
    /** The Python module of the object's class (`argparse`). */
    readonly module: string,
    /** The class's qualified name (`Namespace`). */
    readonly name: string,
    /** Which pickle opcode built it, reused on re-save (see {@link PyObjectKind}). */
    readonly kind: PyObjectKind = 'newobj',
    /** The constructor or `__reduce__` arguments, as TS values. */
    public args: unknown[] = new PyTuple(),
    /** The `__setstate__` / `__dict__` state (BUILD), if any. */
    public state?: unknown,
    /** Keyword arguments (`NEWOBJ_EX` only). */
    public kwargs?: Map<string, unknown>,
    /** Items appended to the object (APPENDS), for list subclasses. */
    public listItems: unknown[] = [],
    /** Key/value pairs set on the object (SETITEMS), for dict subclasses. */
    public dictItems: [unknown, unknown][] = [],
  ) {}
  /** `module.name` of the class. */
  get fullName(): string {
    return `${this.module}.${this.name}`;
  }
  /** An attribute from the pickled `__dict__` state (`ns.get('lr')` for a Namespace). */
  get(attr: string): unknown {
    const st = this.state;
    if (st instanceof Map) return st.get(attr);
    if (Array.isArray(st) && st[0] instanceof Map) return (st[0] as Map<string, unknown>).get(attr);
    return undefined;
  }
  /** What `console.log` shows: the class name and its state. */
  [inspect.custom](depth: number, options: object, insp: typeof inspect): string {
    const st = this.state instanceof Map ? ' ' + insp(this.state, { ...options, depth: depth - 1 } as never) : '';
    return `PyObject<${this.fullName}>${st}`;
  }
}

/** A numpy array, as pickled by numpy (raw bytes, numpy dtype string, shape). */
export class NdArray {
  constructor(
    /** numpy dtype string with byte order, e.g. `<f4`, `|b1`, `<i8`. */
    readonly descr: string,
    /** The array's shape. */
    readonly shape: number[],
    /** True for column-major (Fortran-order) data. */
    readonly fortranOrder: boolean,
    /** The raw element bytes. */
    readonly data: Uint8Array,
    /** The module the pickle used (`numpy.core.multiarray` or `numpy._core.multiarray`). */
    readonly module = 'numpy.core.multiarray',
    /** For object arrays (`|O`): the items. */
    readonly items?: unknown,
  ) {}
  /** The values as a typed array (little-endian numeric dtypes; copies when unaligned). */
  toTypedArray(): ArrayLike<number | bigint> {
    return npTypedArray(this.descr, this.data);
  }
}

/** A numpy scalar (`np.float64(1.5)`, `np.int64(3)`): `value` is the number it holds. */
export class NpScalar {
  constructor(
    /** numpy dtype string with byte order (`<f8`, `<i8`, `|b1`). */
    readonly descr: string,
    /** The element's raw bytes. */
    readonly data: Uint8Array,
    /** The module the pickle used (`numpy.core.multiarray` or `numpy._core.multiarray`). */
    readonly module = 'numpy.core.multiarray',
  ) {}
  /** The scalar's value (`bool` for `b1`, bigint for 64-bit ints); a big-endian or non-numeric dtype throws `E_UNSUPPORTED_DTYPE`. */
  get value(): number | bigint | boolean {
    const arr = npTypedArray(this.descr, this.data);
    const v = arr[0];
    if (this.descr.endsWith('b1')) return v !== 0;
    return v as number | bigint;
  }
  /** The value as a number, so arithmetic works. */
  valueOf(): number {
    return Number(this.value);
  }
  /** What `console.log` shows: `np.float64(1.5)` style. */
  [inspect.custom](): string {
    return `np(${String(this.value)})`;
  }
}

function npTypedArray(descr: string, data: Uint8Array): ArrayLike<number | bigint> {
  const code = descr.replace(/^[<>|=]/, '');
  if (descr.startsWith('>') && code !== 'u1' && code !== 'i1' && code !== 'b1') {
    throw torchsaveError('E_UNSUPPORTED_DTYPE', `big-endian numpy dtype ${descr} is not supported for typed access`);
  }
  const copy = data.slice(); // aligned copy: pickled numpy data has no alignment guarantee
  const buf = copy.buffer;
  switch (code) {
    case 'f8':
      return new Float64Array(buf);
    case 'f4':
      return new Float32Array(buf);
    case 'i8':
      return new BigInt64Array(buf);
    case 'u8':
      return new BigUint64Array(buf);
    case 'i4':
      return new Int32Array(buf);
    case 'u4':
      return new Uint32Array(buf);
    case 'i2':
      return new Int16Array(buf);
    case 'u2':
      return new Uint16Array(buf);
    case 'i1':
      return new Int8Array(buf);
    case 'u1':
    case 'b1':
      return new Uint8Array(buf);
    default:
      throw torchsaveError('E_UNSUPPORTED_DTYPE', `numpy dtype ${descr} has no typed-array view`);
  }
}

// --- the seam between values and classes (nn.Module, optimizers, user classes) ---

/**
 * A JS object that pickles as a Python object implements this symbol and returns the
 * `PyObject` (global, args, state) to write. `nn.Module` uses it so that `torch.save(model)`
 * writes what `torch.save(model)` writes in Python.
 */
export const pyReduce: unique symbol = Symbol.for('torchsave.pyReduce');

/** A JS object that `torch.save` writes as a Python object (see {@link pyReduce}). */
export interface PyReducible {
  /** The global, arguments and state to pickle for this object. */
  [pyReduce](): PyObject;
}

export function isPyReducible(x: unknown): x is PyReducible {
  return typeof x === 'object' && x !== null && typeof (x as Record<symbol, unknown>)[pyReduce] === 'function';
}

/**
 * A TS class that can be rebuilt from a pickled Python object, for
 * `torch.load(path, { weightsOnly: false, classes: { '__main__.Net': Net } })`.
 * `obj` arrives with its args and state already converted to TS values (children first).
 */
export interface PyClass {
  /** Builds the TS value for a loaded `obj`. */
  fromPyObject(obj: PyObject): unknown;
}

const pyClassRegistry = new Map<string, PyClass>();

/** Registers a class for a Python global (`torch.nn.modules.linear.Linear`) for every load. */
export function registerPyClass(fullName: string, cls: PyClass): void {
  pyClassRegistry.set(fullName, cls);
}

export function lookupPyClass(fullName: string): PyClass | undefined {
  return pyClassRegistry.get(fullName);
}
