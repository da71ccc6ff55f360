/**
 * PyTorch dtypes: names, sizes, and the typed arrays that hold them in JS.
 *
 * Names are PyTorch's (`str(torch.float32)` minus `torch.`). Dtypes without a JS typed array
 * are held as their raw bits: float16/bfloat16 in `Uint16Array` (readable as float32 through
 * `Tensor.toFloat32Array()`), bool in `Uint8Array`, complex as interleaved float pairs,
 * float8/quantized/bits as raw integer arrays.
 */

export const DTYPES = [
  'float64',
  'float32',
  'float16',
  'bfloat16',
  'complex32',
  'complex64',
  'complex128',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
  'qint8',
  'quint8',
  'qint32',
  'quint4x2',
  'quint2x4',
  'float8_e5m2',
  'float8_e4m3fn',
  'float8_e5m2fnuz',
  'float8_e4m3fnuz',
  'float8_e8m0fnu',
  'float4_e2m1fn_x2',
  'bits8',
  'bits16',
  'bits1x8',
  'bits2x4',
  'bits4x2',
] as const;

export type DType = (typeof DTYPES)[number];

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
    throw Object.assign(new Error(`unknown dtype '${name}'`), { code: 'E_UNSUPPORTED_DTYPE' });
  }
  return d;
}

export function elementSize(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
    case 'uint64':
    case 'complex64':
      return 8;
    case 'complex128':
      return 16;
    case 'float32':
    case 'int32':
    case 'uint32':
    case 'qint32':
    case 'complex32':
      return 4;
    case 'float16':
    case 'bfloat16':
    case 'int16':
    case 'uint16':
    case 'bits16':
      return 2;
    default:
      return 1;
  }
}

export function isFloatingPoint(dtype: DType): boolean {
  return (
    dtype === 'float64' ||
    dtype === 'float32' ||
    dtype === 'float16' ||
    dtype === 'bfloat16' ||
    dtype.startsWith('float8_')
  );
}

export function isComplex(dtype: DType): boolean {
  return dtype === 'complex32' || dtype === 'complex64' || dtype === 'complex128';
}

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

// --- half-precision conversions (exact, round-to-nearest-even on the way down) ---

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
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
  e = half >>> 10;
  return sign | half;
}

export function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0]!;
}

export function floatToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}
