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

/** `F.linear`: `input @ weight.T + bias` over the last dim. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const [x, w, b] = [nt(input), nt(weight), opt(bias)];
  return wrap(() => x.linear(w, b));
}

/** `F.bilinear`: `x1^T A x2 + b` for each output feature (`weight` is `[out, in1, in2]`). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const [x, y, w, b] = [nt(input1), nt(input2), nt(weight), opt(bias)];
  return wrap(() => x.bilinear(y, w, b));
}

/** The keyword arguments of `F.conv1d/2d/3d` (PyTorch's names and defaults). */
export interface ConvArgs {
  /** Step of the kernel (default 1). */
  stride?: IntOrList;
  /** Zero padding on each side (default 0), or `same` (output size = input size, stride 1) / `valid` (none). */
  padding?: IntOrList | 'same' | 'valid';
  /** Spacing between kernel taps (default 1). */
  dilation?: IntOrList;
  /** Channel groups, each convolved separately (default 1). */
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

/** `F.conv1d`: 1-D convolution, `weight` `[out, in/groups, k]`; a weight of another rank throws `E_INVALID_ARGUMENT`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function conv1d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(1, input, weight, bias, args);
}
/** `F.conv2d`: 2-D convolution, `weight` `[out, in/groups, kH, kW]`; a weight of another rank throws `E_INVALID_ARGUMENT`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(2, input, weight, bias, args);
}
/** `F.conv3d`: 3-D convolution, `weight` `[out, in/groups, kD, kH, kW]`; a weight of another rank throws `E_INVALID_ARGUMENT`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function conv3d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvArgs = {}): Tensor {
  return convNd(3, input, weight, bias, args);
}

/** The keyword arguments of `F.conv_transpose1d/2d/3d`. */
export interface ConvTransposeArgs {
  /** Step of the kernel (default 1). */
  stride?: IntOrList;
  /** `dilation * (k - 1) - padding` zero padding on each side of the input (default 0). */
  padding?: IntOrList;
  /** Extra size added to one side of the output (default 0), to pick among output sizes. */
  outputPadding?: IntOrList;
  /** Channel groups (default 1). */
  groups?: number;
  /** Spacing between kernel taps (default 1). */
  dilation?: IntOrList;
}

function convTransposeNd(n: number, input: Tensor, weight: Tensor, bias: Tensor | null | undefined, a: ConvTransposeArgs): Tensor {
  const [x, w, b] = [nt(input), nt(weight), opt(bias)];
  return wrap(() => x.convTranspose(w, b, expand(a.stride ?? 1, n), expand(a.padding ?? 0, n), expand(a.outputPadding ?? 0, n), a.groups ?? 1, expand(a.dilation ?? 1, n)));
}
/** `F.conv_transpose1d`: 1-D transposed convolution, `weight` `[in, out/groups, k]`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function convTranspose1d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(1, input, weight, bias, args);
}
/** `F.conv_transpose2d`: 2-D transposed convolution, `weight` `[in, out/groups, kH, kW]`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function convTranspose2d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(2, input, weight, bias, args);
}
/** `F.conv_transpose3d`: 3-D transposed convolution, `weight` `[in, out/groups, kD, kH, kW]`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function convTranspose3d(input: Tensor, weight: Tensor, bias?: Tensor | null, args: ConvTransposeArgs = {}): Tensor {
  return convTransposeNd(3, input, weight, bias, args);
}

/** How {@link pad} fills: a constant `value`, mirrored (`reflect`), edge copies (`replicate`) or wrap-around (`circular`). */
export type PadMode = 'constant' | 'reflect' | 'replicate' | 'circular';

/** `F.pad(input, pad, mode='constant', value=0)`: pads the last dims, (left, right) pairs from the last. */
export function pad(input: Tensor, pads: readonly number[], mode: PadMode = 'constant', value = 0): Tensor {
  const x = nt(input);
  return wrap(() => x.pad([...pads], mode, mode === 'constant' ? value : undefined));
}

/** The keyword arguments of `F.max_pool1d/2d/3d`. */
export interface PoolArgs {
  /** Step of the window (default, or null: the kernel size). */
  stride?: IntOrList | null;
  /** Implicit -inf padding on each side (default 0). */
  padding?: IntOrList;
  /** Spacing between window taps (default 1). */
  dilation?: IntOrList;
  /** Round the output size up instead of down (default false). */
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
/** `F.max_pool1d`: maximum over windows of `kernelSize` (stride defaults to the kernel size). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function maxPool1d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(1, input, kernelSize, args);
}
/** `F.max_pool2d`: maximum over windows of `kernelSize` (stride defaults to the kernel size). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function maxPool2d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(2, input, kernelSize, args);
}
/** `F.max_pool3d`: maximum over windows of `kernelSize` (stride defaults to the kernel size). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function maxPool3d(input: Tensor, kernelSize: IntOrList, args: PoolArgs = {}): Tensor {
  return maxPoolNd(3, input, kernelSize, args);
}

/** The keyword arguments of `F.avg_pool1d/2d`. */
export interface AvgPoolArgs {
  /** Step of the window (default, or null: the kernel size). */
  stride?: IntOrList | null;
  /** Implicit zero padding on each side (default 0). */
  padding?: IntOrList;
  /** Round the output size up instead of down (default false). */
  ceilMode?: boolean;
  /** Count the padding zeros in the mean's divisor (default true). */
  countIncludePad?: boolean;
  /** Divide by this instead of the window size. */
  divisorOverride?: number | null;
}
function avgPoolNd(n: number, input: Tensor, kernelSize: IntOrList, a: AvgPoolArgs): Tensor {
  const k = expand(kernelSize, n);
  const stride = a.stride === undefined || a.stride === null ? k : expand(a.stride, n);
  const x = nt(input);
  return wrap(() => x.avgPool(k, stride, expand(a.padding ?? 0, n), a.ceilMode ?? false, a.countIncludePad ?? true, a.divisorOverride ?? undefined));
}
/** `F.avg_pool1d`: mean over windows of `kernelSize` (stride defaults to the kernel size). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function avgPool1d(input: Tensor, kernelSize: IntOrList, args: AvgPoolArgs = {}): Tensor {
  return avgPoolNd(1, input, kernelSize, args);
}
/** `F.avg_pool2d`: mean over windows of `kernelSize` (stride defaults to the kernel size). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
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
/** `F.adaptive_avg_pool1d`: mean pooling to `outputSize` entries whatever the input length. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function adaptiveAvgPool1d(input: Tensor, outputSize: number): Tensor {
  const x = nt(input);
  return wrap(() => x.adaptiveAvgPool([outputSize]));
}

/** `F.batch_norm`: normalises over the batch with running stats (`training` false, the default) or batch stats (`training` true, updating the running ones by `momentum`). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  a: { weight?: Tensor | null; bias?: Tensor | null; training?: boolean; momentum?: number; eps?: number } = {},
): Tensor {
  const [x, rm, rv, w, b] = [nt(input), opt(runningMean), opt(runningVar), opt(a.weight), opt(a.bias)];
  return wrap(() => x.batchNorm(rm, rv, w, b, a.training ?? false, a.momentum ?? 0.1, a.eps ?? 1e-5));
}

/** `F.layer_norm`: normalises over the trailing `normalizedShape` dims, then scales by `weight` and shifts by `bias`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [x, w, b] = [nt(input), opt(weight), opt(bias)];
  return wrap(() => x.layerNorm([...normalizedShape], w, b, eps));
}

/** `F.group_norm`: normalises each of `numGroups` channel groups, then per-channel `weight`/`bias`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function groupNorm(input: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [x, w, b] = [nt(input), opt(weight), opt(bias)];
  return wrap(() => x.groupNorm(numGroups, w, b, eps));
}

/** `F.embedding`: rows of `weight` picked by the integer `input`; `paddingIdx` rows get no gradient. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
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

/** `F.relu`: elementwise `max(x, 0)`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function relu(input: Tensor): Tensor {
  return input.relu();
}
/** `F.gelu`: `x * Φ(x)`, exact (`none`) or the `tanh` approximation. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  const x = nt(input);
  return wrap(() => x.gelu(approximate));
}
/** `F.silu`: elementwise `x * sigmoid(x)` (swish). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function silu(input: Tensor): Tensor {
  const x = nt(input);
  return wrap(() => x.silu());
}
/** `F.leaky_relu`: `x` for positives, `negativeSlope * x` otherwise. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function leakyRelu(input: Tensor, negativeSlope = 0.01): Tensor {
  const x = nt(input);
  return wrap(() => x.leakyRelu(negativeSlope));
}
/** `F.sigmoid`: elementwise `1 / (1 + exp(-x))`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function sigmoid(input: Tensor): Tensor {
  return input.sigmoid();
}
/** `F.tanh`: elementwise hyperbolic tangent. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function tanh(input: Tensor): Tensor {
  return input.tanh();
}
/** `F.softmax`: `exp(x) / sum(exp(x))` along `dim`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function softmax(input: Tensor, dim: number): Tensor {
  return input.softmax(dim);
}
/** `F.log_softmax`: `log(softmax(x))` along `dim`, computed stably. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function logSoftmax(input: Tensor, dim: number): Tensor {
  return input.logSoftmax(dim);
}
/** `torch.flatten`: merges dims `startDim..endDim` (default all) into one. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function flatten(input: Tensor, startDim = 0, endDim = -1): Tensor {
  return input.flatten(startDim, endDim);
}

/** How a loss reduces over the batch, as PyTorch's `reduction=`. */
export type Reduction = 'mean' | 'sum' | 'none';

/** `F.cross_entropy`: log-softmax plus NLL of class-index (or probability) targets; `ignoreIndex` (default -100) targets count for nothing. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function crossEntropy(
  input: Tensor,
  target: Tensor,
  a: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  const [x, t, w] = [nt(input), nt(target), opt(a.weight)];
  return wrap(() => x.crossEntropy(t, w, a.reduction ?? 'mean', a.ignoreIndex ?? -100, a.labelSmoothing ?? 0));
}
/** `F.nll_loss`: negative log-likelihood of log-probabilities `input` at class indices `target`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function nllLoss(input: Tensor, target: Tensor, a: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction } = {}): Tensor {
  const [x, t, w] = [nt(input), nt(target), opt(a.weight)];
  return wrap(() => x.nllLoss(t, w, a.reduction ?? 'mean', a.ignoreIndex ?? -100));
}
/** `F.mse_loss`: squared error, reduced by `reduction` (default `mean`). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function mseLoss(input: Tensor, target: Tensor, a: { reduction?: Reduction } = {}): Tensor {
  const [x, t] = [nt(input), nt(target)];
  return wrap(() => x.mseLoss(t, a.reduction ?? 'mean'));
}
/** `F.l1_loss`: absolute error, reduced by `reduction` (default `mean`). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
export function l1Loss(input: Tensor, target: Tensor, a: { reduction?: Reduction } = {}): Tensor {
  const [x, t] = [nt(input), nt(target)];
  return wrap(() => x.l1Loss(t, a.reduction ?? 'mean'));
}
/** `F.binary_cross_entropy_with_logits`: sigmoid plus binary cross-entropy, computed stably; `posWeight` weighs positives. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
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
