/**
 * Tensor factories: `empty`, `zeros`, `ones`, `full`, `rand`, `randn`, `arange`, `tensor`
 * (dtype inferred like PyTorch).
 */
import { type DType, type TypedArray, elementSize } from '../dtype';
import { torchsaveError } from '../errors';
import { lt } from '../libtorch/addon';
import { Device } from '../values';
import { checkDevice } from './device';
import { UntypedStorage } from './storage';
import { Tensor } from './tensor';

/** The keyword arguments of the tensor factories (`dtype=`, `device=`, `requires_grad=`). */
export interface FactoryOptions {
  /** Element type (default `float32`, or inferred from the data for {@link tensor}). */
  dtype?: DType;
  /** Where to allocate (default `cpu`); other than `cpu`/`meta` needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`). */
  device?: Device | string;
  /** `requires_grad` of the new tensor (default false). */
  requiresGrad?: boolean;
}

/** A shape: the size of each dim. */
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
    const t = Tensor.fromNative(addon.NativeTensor.zeros(dims, dtype, device.toString()));
    if (opts.requiresGrad) t.requiresGrad = true;
    return t;
  }
  return new Tensor({ storage: UntypedStorage.allocate(n * elementSize(dtype), dev), dtype, shape: dims, requiresGrad: opts.requiresGrad ?? false });
}

/** `torch.zeros`: a tensor of zeros; `zeros([2, 3])` or `zeros(2, 3)`, options last. */
export function zeros(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest);
}

/** `torch.ones`: a tensor of ones; `ones([2, 3])` or `ones(2, 3)`, options last. */
export function ones(shape: number | Dims, ...rest: (number | FactoryOptions)[]): Tensor {
  return empty(shape, ...rest).fill_(1);
}

/** `torch.full`: a tensor of `shape` with every element `value`. */
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

/** `torch.arange`: `start, start + step, ...` below `end` (`arange(n)`: `0..n-1`), on the CPU;
 * `int64` for integer `start`/`step`, else `float32`, unless `opts.dtype`. */
export function arange(start: number, end?: number, step = 1, opts: FactoryOptions = {}): Tensor {
  const [a, b] = end === undefined ? [0, start] : [start, end];
  const n = Math.max(0, Math.ceil((b - a) / step));
  const vals = Array.from({ length: n }, (_, i) => a + i * step);
  const integral = Number.isInteger(a) && Number.isInteger(step);
  return tensor(vals, { dtype: opts.dtype ?? (integral ? 'int64' : 'float32'), requiresGrad: opts.requiresGrad });
}

/** Nested arrays of numbers, booleans or bigints, as {@link tensor} takes them. */
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
  if (flat.length !== shape.reduce((a, b) => a * b, 1)) throw torchsaveError('E_INVALID_ARGUMENT', 'tensor(): ragged nested sequence');
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
