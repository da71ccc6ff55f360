/**
 * PyTorch dtypes: names, sizes, and the typed arrays that hold them in JS.
 *
 * Names are PyTorch's (`str(torch.float32)` minus `torch.`). Dtypes without a JS typed array
 * are held as their raw bits: float16/bfloat16 in `Uint16Array` (readable as float32 through
 * `Tensor.toFloat32Array()`), bool in `Uint8Array`, complex as interleaved float pairs,
 * float8/quantized/bits as raw integer arrays.
 */

import { torchsaveError } from './errors';
import { DTYPE_TABLE, type DTypeInfo, type DTypeName } from './generated/contract';

/** Every dtype the core knows, in its table's order (crate/core/src/dtype.rs `dtypes!`). */
export const DTYPES: readonly DType[] = DTYPE_TABLE.map((d) => d.name);

/** A dtype by PyTorch's name (`'float32'`, `'int64'`, ...): every row of the core's table. */
export type DType = DTypeName;

const INFO = new Map<string, DTypeInfo>(DTYPE_TABLE.map((d) => [d.name, d]));


/** PyTorch's aliases (`torch.float`, `torch.long`, ...). */
const ALIASES: Record<string, DType> = {
  float: 'float32',
  double: 'float64',
  half: 'float16',
  cfloat: 'complex64',
  cdouble: 'complex128',
  chalf: 'complex32',
  short: 'int16',
  int: 'int32',
  long: 'int64',
};

export function parseDType(name: string): DType {
  const n = name.startsWith('torch.') ? name.slice(6) : name;
  const d = (ALIASES[n] ?? n) as DType;
  if (!(DTYPES as readonly string[]).includes(d)) {
    throw torchsaveError('E_UNSUPPORTED_DTYPE', `unknown dtype '${name}'`);
  }
  return d;
}

export function elementSize(dtype: DType): number {
  return INFO.get(dtype)?.itemsize ?? 1;
}

export function isFloatingPoint(dtype: DType): boolean {
  return INFO.get(dtype)?.isFloatingPoint ?? false;
}

export function isComplex(dtype: DType): boolean {
  return INFO.get(dtype)?.isComplex ?? false;
}

/** The JS typed arrays that hold tensor elements (complex dtypes use two entries per element). */
export type TypedArray =
  | Float64Array
  | Float32Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

type TypedArrayCtor = {
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TypedArray;
  new (length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

/** The typed array that holds one dtype's elements (complex: two entries per element). */
export function typedArrayCtor(dtype: DType): TypedArrayCtor {
  switch (dtype) {
    case 'float64':
    case 'complex128':
      return Float64Array as unknown as TypedArrayCtor;
    case 'float32':
    case 'complex64':
      return Float32Array as unknown as TypedArrayCtor;
    case 'int64':
      return BigInt64Array as unknown as TypedArrayCtor;
    case 'uint64':
      return BigUint64Array as unknown as TypedArrayCtor;
    case 'int32':
    case 'qint32':
      return Int32Array as unknown as TypedArrayCtor;
    case 'uint32':
      return Uint32Array as unknown as TypedArrayCtor;
    case 'int16':
      return Int16Array as unknown as TypedArrayCtor;
    case 'float16':
    case 'bfloat16':
    case 'uint16':
    case 'bits16':
    case 'complex32':
      return Uint16Array as unknown as TypedArrayCtor;
    case 'int8':
    case 'qint8':
      return Int8Array as unknown as TypedArrayCtor;
    default:
      return Uint8Array as unknown as TypedArrayCtor;
  }
}

// --- half-precision conversions ---
// Bit for bit what torch 2.11's CPU kernels write (x86-64, vectorised body): round to nearest
// even, float64 through float32 first (as c10 does), and NaNs as the F16C instructions write
// them (sign and top payload kept, quiet bit set) except float32 -> bfloat16, where torch's
// kernel writes 0xFFFF for every NaN. __test__/casts.test.ts checks every function against
// torch and against the core's casts (crate/core `cast_buffer`).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float16 bits -> the float32 torch widens them to (NaN payloads kept), as a JS number. */
export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) {
    u32[0] = sign | 0x7f800000 | (m ? 0x400000 | (m << 13) : 0);
    return f32[0]!;
  }
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** A number (rounded to float32 first) -> float16 bits, round to nearest even. */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** bfloat16 bits -> float32 (the top half of one), as a JS number. */
export function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

/** A number (rounded to float32 first) -> bfloat16 bits, round to nearest even; NaN -> 0xFFFF. */
export function floatToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return 0xffff;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}
