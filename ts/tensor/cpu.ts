/**
 * CPU element work for tensors without libtorch: numbers → a dtype's bytes, C-order bytes
 * written into a strided tensor, and dtype casts (float16/bfloat16 through `../dtype`).
 */
import { type DType, elementSize, floatToBf16, floatToHalf, isComplex, isFloatingPoint, typedArrayCtor } from '../dtype';
import { torchsaveError } from '../errors';
import { UntypedStorage } from './storage';
import { Tensor } from './tensor';

export function fromNumbers(values: ArrayLike<number>, dtype: DType, n: number): Uint8Array {
  const Ctor = typedArrayCtor(dtype);
  if (isComplex(dtype)) throw torchsaveError('E_UNSUPPORTED_DTYPE', `cannot fill ${dtype} from real numbers`);
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
export function writeStrided(t: Tensor, src: Uint8Array): void {
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

export function castTensor(t: Tensor, dtype: DType): Tensor {
  if (isComplex(dtype) || isComplex(t.dtype)) throw torchsaveError('E_UNSUPPORTED_DTYPE', `casting ${t.dtype} to ${dtype} is not supported on the CPU path`);
  if (t.quantizer) throw torchsaveError('E_UNSUPPORTED_DTYPE', 'casting a quantized tensor needs dequantization (libtorch addon)');
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
