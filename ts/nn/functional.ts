/**
 * `torch.nn.functional`: libtorch's own kernels through the libtorch addon, with PyTorch's
 * argument names and defaults, so outputs match PyTorch's on the same device.
 */
import { torchsaveError } from '../errors';
import { Tensor } from '../tensor';
import { lt, type NativeTensor } from '../libtorch/addon';

/** A size, stride or padding given once for every dimension or per dimension (`2` or `[2, 3]`). */
export type IntOrList = number | readonly number[];

function nt(t: Tensor): NativeTensor {
  return t.native();
}
function opt(t: Tensor | null | undefined): NativeTensor | undefined {
  return t ? t.native() : undefined;
}
function wrap(f: () => NativeTensor): Tensor {
  return Tensor.fromNative(f());
}
function expand(v: IntOrList, n: number): number[] {
  return typeof v === 'number' ? new Array<number>(n).fill(v) : [...v];
}

export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const [x, w, b] = [nt(input), nt(weight), opt(bias)];
  return wrap(() => x.linear(w, b));
}

export function bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const [x, y, w, b] = [nt(input1), nt(input2), nt(weight), opt(bias)];
  return wrap(() => x.bilinear(y, w, b));
}

export interface ConvArgs {
  stride?: IntOrList;
  padding?: IntOrList | 'same' | 'valid';
  dilation?: IntOrList;
  groups?: number;
}

/** conv1d/2d/3d share this: the weight's rank says which. */
function convNd(n: number, input: Tensor, weight: Tensor, bias: Tensor | null | undefined, a: ConvArgs): Tensor {
  if (weight.dim() !== n + 2) throw torchsaveError('E_INVALID_ARGUMENT', `conv${n}d expects a ${n + 2}-d weight, got ${weight.dim()}-d`);
  const stride = expand(a.stride ?? 1, n);
  const dilation = expand(a.dilation ?? 1, n);
  let padding: number[];
  let x = input;
  if (a.padding === 'valid') padding = new Array<number>(n).fill(0);
  else if (a.padding === 'same') {
    // PyTorch pads symmetrically and puts an odd extra element on the right (F.pad first).
    const k = weight.size().slice(2);
    const total = k.map((kk, i) => dilation[i]! * (kk - 1));
    padding = total.map((t) => Math.floor(t / 2));
    const extra = total.map((t, i) => t - 2 * padding[i]!);
    if (extra.some((e) => e !== 0)) {
      const pads: number[] = [];
      for (let d = n - 1; d >= 0; d--) pads.push(0, extra[d]!);
      x = pad(x, pads);
    }
  } else padding = expand(a.padding ?? 0, n);
  const [xi, w, b] = [nt(x), nt(weight), opt(bias)];
  return wrap(() => xi.conv(w, b, stride, padding, dilation, a.groups ?? 1));
}

export function conv1d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(1, input, weight, bias, args);
}
export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(2, input, weight, bias, args);
}
export function conv3d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(3, input, weight, bias, args);
}

export interface ConvTransposeArgs {
  stride?: IntOrList;
  padding?: IntOrList;
  outputPadding?: IntOrList;
  groups?: number;
  dilation?: IntOrList;
}

function convTransposeNd(n: number, input: Tensor, weight: Tensor, bias: Tensor | null | undefined, a: ConvTransposeArgs): Tensor {
  const [x, w, b] = [nt(input), nt(weight), opt(bias)];
  return wrap(() => x.convTranspose(w, b, expand(a.stride ?? 1, n), expand(a.padding ?? 0, n), expand(a.outputPadding ?? 0, n), a.groups ?? 1, expand(a.dilation ?? 1, n)));
}
export function convTranspose1d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(1, input, weight, bias, args);
}
export function convTranspose2d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(2, input, weight, bias, args);
}
export function convTranspose3d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(3, input, weight, bias, args);
}

export type PadMode = 'constant' | 'reflect' | 'replicate' | 'circular';

/** `F.pad(input, pad, mode='constant', value=0)`: pads the last dims, (left, right) pairs from the last. */
export function pad(input: Tensor, pads: readonly number[], mode: PadMode = 'constant', value = 0): Tensor {
  const x = nt(input);
  return wrap(() => x.pad([...pads], mode, mode === 'constant' ? value : undefined));
}

export interface PoolArgs {
  stride?: IntOrList | null;
  padding?: IntOrList;
  dilation?: IntOrList;
  ceilMode?: boolean;
}

/** `F.max_pool2d(..., return_indices=True)`: `[output, indices]`. */
export function maxPool2dWithIndices(input: Tensor, kernelSize: IntOrList, a: PoolArgs = {}): [Tensor, Tensor] {
  const k = expand(kernelSize, 2);
  const stride = a.stride === undefined || a.stride === null ? k : expand(a.stride, 2);
  const x = nt(input);
  const [v, i] = x.maxPool2dWithIndices(k, stride, expand(a.padding ?? 0, 2), expand(a.dilation ?? 1, 2), a.ceilMode ?? false);
  return [Tensor.fromNative(v!), Tensor.fromNative(i!)];
}

function maxPoolNd(n: number, input: Tensor, kernelSize: IntOrList, a: PoolArgs): Tensor {
  const k = expand(kernelSize, n);
  const stride = a.stride === undefined || a.stride === null ? k : expand(a.stride, n);
  const x = nt(input);
  return wrap(() => x.maxPool(k, stride, expand(a.padding ?? 0, n), expand(a.dilation ?? 1, n), a.ceilMode ?? false));
}
export function maxPool1d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(1, input, kernelSize, args);
}
export function maxPool2d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(2, input, kernelSize, args);
}
export function maxPool3d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(3, input, kernelSize, args);
}

export interface AvgPoolArgs {
  stride?: IntOrList | null;
  padding?: IntOrList;
  ceilMode?: boolean;
  countIncludePad?: boolean;
  divisorOverride?: number | null;
}
function avgPoolNd(n: number, input: Tensor, kernelSize: IntOrList, a: AvgPoolArgs): Tensor {
  const k = expand(kernelSize, n);
  const stride = a.stride === undefined || a.stride === null ? k : expand(a.stride, n);
  const x = nt(input);
  return wrap(() => x.avgPool(k, stride, expand(a.padding ?? 0, n), a.ceilMode ?? false, a.countIncludePad ?? true, a.divisorOverride ?? undefined));
}
export function avgPool1d(input: Tensor, kernelSize: IntOrList, args: AvgPoolArgs = {}): Tensor {
  return avgPoolNd(1, input, kernelSize, args);
}
export function avgPool2d(input: Tensor, kernelSize: IntOrList, args: AvgPoolArgs = {}): Tensor {
  return avgPoolNd(2, input, kernelSize, args);
}

/** `F.adaptive_avg_pool2d`; a `null` entry keeps that input size. */
export function adaptiveAvgPool2d(input: Tensor, outputSize: number | readonly (number | null)[]): Tensor {
  const sz = input.size();
  const o = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize.map((v, i) => v ?? sz[sz.length - 2 + i]!);
  const x = nt(input);
  return wrap(() => x.adaptiveAvgPool(o));
}
export function adaptiveAvgPool1d(input: Tensor, outputSize: number): Tensor {
  const x = nt(input);
  return wrap(() => x.adaptiveAvgPool([outputSize]));
}

export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  a: { weight?: Tensor | null; bias?: Tensor | null; training?: boolean; momentum?: number; eps?: number } = {},
): Tensor {
  const [x, rm, rv, w, b] = [nt(input), opt(runningMean), opt(runningVar), opt(a.weight), opt(a.bias)];
  return wrap(() => x.batchNorm(rm, rv, w, b, a.training ?? false, a.momentum ?? 0.1, a.eps ?? 1e-5));
}

export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [x, w, b] = [nt(input), opt(weight), opt(bias)];
  return wrap(() => x.layerNorm([...normalizedShape], w, b, eps));
}

export function groupNorm(input: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [x, w, b] = [nt(input), opt(weight), opt(bias)];
  return wrap(() => x.groupNorm(numGroups, w, b, eps));
}

export function embedding(input: Tensor, weight: Tensor, a: { paddingIdx?: number | null; scaleGradByFreq?: boolean; sparse?: boolean } = {}): Tensor {
  const [x, w] = [nt(input), nt(weight)];
  return wrap(() => x.embedding(w, a.paddingIdx ?? -1, a.scaleGradByFreq ?? false, a.sparse ?? false));
}

/** `F.dropout(input, p=0.5, training=True)`: identity when not training (libtorch's RNG otherwise). */
export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw torchsaveError('E_INVALID_ARGUMENT', `dropout probability has to be between 0 and 1, but got ${p}`);
  const x = nt(input);
  return wrap(() => x.dropout(p, training));
}

export function relu(input: Tensor): Tensor {
  return input.relu();
}
export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  const x = nt(input);
  return wrap(() => x.gelu(approximate));
}
export function silu(input: Tensor): Tensor {
  const x = nt(input);
  return wrap(() => x.silu());
}
export function leakyRelu(input: Tensor, negativeSlope = 0.01): Tensor {
  const x = nt(input);
  return wrap(() => x.leakyRelu(negativeSlope));
}
export function sigmoid(input: Tensor): Tensor {
  return input.sigmoid();
}
export function tanh(input: Tensor): Tensor {
  return input.tanh();
}
export function softmax(input: Tensor, dim: number): Tensor {
  return input.softmax(dim);
}
export function logSoftmax(input: Tensor, dim: number): Tensor {
  return input.logSoftmax(dim);
}
export function flatten(input: Tensor, startDim = 0, endDim = -1): Tensor {
  return input.flatten(startDim, endDim);
}

/** How a loss reduces over the batch, as PyTorch's `reduction=`. */
export type Reduction = 'mean' | 'sum' | 'none';

export function crossEntropy(
  input: Tensor,
  target: Tensor,
  a: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  const [x, t, w] = [nt(input), nt(target), opt(a.weight)];
  return wrap(() => x.crossEntropy(t, w, a.reduction ?? 'mean', a.ignoreIndex ?? -100, a.labelSmoothing ?? 0));
}
export function nllLoss(input: Tensor, target: Tensor, a: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction } = {}): Tensor {
  const [x, t, w] = [nt(input), nt(target), opt(a.weight)];
  return wrap(() => x.nllLoss(t, w, a.reduction ?? 'mean', a.ignoreIndex ?? -100));
}
export function mseLoss(input: Tensor, target: Tensor, a: { reduction?: Reduction } = {}): Tensor {
  const [x, t] = [nt(input), nt(target)];
  return wrap(() => x.mseLoss(t, a.reduction ?? 'mean'));
}
export function l1Loss(input: Tensor, target: Tensor, a: { reduction?: Reduction } = {}): Tensor {
  const [x, t] = [nt(input), nt(target)];
  return wrap(() => x.l1Loss(t, a.reduction ?? 'mean'));
}
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  a: { weight?: Tensor | null; posWeight?: Tensor | null; reduction?: Reduction } = {},
): Tensor {
  const [x, t, w, pw] = [nt(input), nt(target), opt(a.weight), opt(a.posWeight)];
  return wrap(() => x.binaryCrossEntropyWithLogits(t, w, pw, a.reduction ?? 'mean'));
}

/** `torch.cat(tensors, dim)`. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  const addon = lt('torch.cat');
  const ns = tensors.map(nt);
  return wrap(() => addon.NativeTensor.cat(ns, dim));
}
/** `torch.stack(tensors, dim)`. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  const addon = lt('torch.stack');
  const ns = tensors.map(nt);
  return wrap(() => addon.NativeTensor.stack(ns, dim));
}
