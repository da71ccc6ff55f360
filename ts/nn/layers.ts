/**
 * PyTorch's layers with their parameter names, shapes, default initialisation and pickled
 * attributes (names, order and Python types as torch 2.11's `__init__` leaves `__dict__`).
 * Every class here pickles under torch's real module path, so Python rebuilds it.
 */
import { torchsaveError } from '../errors';
import type { DType } from '../dtype';
import { Parameter, type Tensor, empty, ones, zeros } from '../tensor';
import * as F from './functional';
import type { Reduction } from './functional';
import * as init from './init';
import { Module, type PyAttrSpec, zeroLong } from './module';
import { PyTuple } from '../values';

/** The `dtype=` keyword of a layer's constructor. */
export interface FactoryOpts {
  /** Dtype of the parameters and buffers (default `float32`). */
  dtype?: DType;
}

function param(shape: number[], opts: FactoryOpts = {}): Parameter {
  return new Parameter(empty(shape, { dtype: opts.dtype ?? 'float32' }));
}

function ntuple(v: number | readonly number[], n: number, what: string): number[] {
  if (typeof v === 'number') return new Array<number>(n).fill(v);
  if (v.length !== n) throw torchsaveError('E_INVALID_ARGUMENT', `${what} must have ${n} elements, got ${v.length}`);
  return [...v];
}

const tupleStr = (a: readonly unknown[]): string => `(${a.join(', ')}${a.length === 1 ? ',' : ''})`;

// ---------------------------------------------------------------- linear

export class Identity extends Module {
  static override pyModule = 'torch.nn.modules.linear';
  static override pyName = 'Identity';
  constructor(..._args: unknown[]) {
    super();
  }
  override forward(input: Tensor): Tensor {
    return input;
  }
}

export class Linear extends Module {
  static override pyModule = 'torch.nn.modules.linear';
  static override pyName = 'Linear';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'in_features', js: 'inFeatures', kind: 'int' },
    { py: 'out_features', js: 'outFeatures', kind: 'int' },
  ];
  /** `in_features`: size of each input sample. */
  declare inFeatures: number;
  /** `out_features`: size of each output sample. */
  declare outFeatures: number;
  /** `[outFeatures, inFeatures]`, initialised Kaiming-uniform. */
  declare weight: Parameter;
  /** `[outFeatures]`, or null when built with `bias: false`. */
  declare bias: Parameter | null;
  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean } & FactoryOpts = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = param([outFeatures, inFeatures], opts);
    if (opts.bias ?? true) this.bias = param([outFeatures], opts);
    else this.registerParameter('bias', null);
    this.resetParameters();
  }
  /** `reset_parameters()`: re-draws `weight` (Kaiming uniform, a=√5) and `bias` (U(±1/√fan_in)) from the default generator. */
  resetParameters(): void {
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const [fanIn] = init.calculateFanInAndFanOut(this.weight);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      init.uniform_(this.bias, -bound, bound);
    }
  }
  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias ? 'True' : 'False'}`;
  }
  override forward(input: Tensor): Tensor {
    return F.linear(input, this.weight, this.bias);
  }
}

export class Bilinear extends Module {
  static override pyModule = 'torch.nn.modules.linear';
  static override pyName = 'Bilinear';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'in1_features', js: 'in1Features', kind: 'int' },
    { py: 'in2_features', js: 'in2Features', kind: 'int' },
    { py: 'out_features', js: 'outFeatures', kind: 'int' },
  ];
  /** `in1_features`: size of the first input's samples. */
  declare in1Features: number;
  /** `in2_features`: size of the second input's samples. */
  declare in2Features: number;
  /** `out_features`: size of each output sample. */
  declare outFeatures: number;
  /** `[outFeatures, in1Features, in2Features]`. */
  declare weight: Parameter;
  /** `[outFeatures]`, or null when built with `bias: false`. */
  declare bias: Parameter | null;
  constructor(in1Features: number, in2Features: number, outFeatures: number, opts: { bias?: boolean } & FactoryOpts = {}) {
    super();
    this.in1Features = in1Features;
    this.in2Features = in2Features;
    this.outFeatures = outFeatures;
    this.weight = param([outFeatures, in1Features, in2Features], opts);
    if (opts.bias ?? true) this.bias = param([outFeatures], opts);
    else this.registerParameter('bias', null);
    const bound = 1 / Math.sqrt(in1Features);
    init.uniform_(this.weight, -bound, bound);
    if (this.bias) init.uniform_(this.bias, -bound, bound);
  }
  override forward(input1: Tensor, input2: Tensor): Tensor {
    return F.bilinear(input1, input2, this.weight, this.bias);
  }
}

// ---------------------------------------------------------------- convolution

/** The keyword arguments of `nn.Conv1d/2d/3d` (PyTorch's names and defaults). */
export interface ConvOptions extends FactoryOpts {
  /** Step of the kernel (default 1). */
  stride?: number | number[];
  /** Padding on each side (default 0), or `same` / `valid`. */
  padding?: number | number[] | 'same' | 'valid';
  /** Spacing between kernel taps (default 1). */
  dilation?: number | number[];
  /** Channel groups; both channel counts must divide by it (default 1). */
  groups?: number;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
  /** How padding is filled: `zeros` (default), `reflect`, `replicate` or `circular`. */
  paddingMode?: 'zeros' | 'reflect' | 'replicate' | 'circular';
}

/** The keyword arguments of `nn.ConvTranspose2d`. */
export interface ConvTransposeOptions extends Omit<ConvOptions, 'padding'> {
  /** `dilation * (k - 1) - padding` padding of the input on each side (default 0). */
  padding?: number | number[];
  /** Extra size on one side of the output (default 0). */
  outputPadding?: number | number[];
}

/** `_ConvNd`: the attributes and parameters shared by every convolution. */
export abstract class ConvNd extends Module {
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'in_channels', js: 'inChannels', kind: 'int' },
    { py: 'out_channels', js: 'outChannels', kind: 'int' },
    { py: 'kernel_size', js: 'kernelSize', kind: 'tuple' },
    { py: 'stride', js: 'stride', kind: 'tuple' },
    { py: 'padding', js: 'padding', kind: 'intOrTuple' },
    { py: 'dilation', js: 'dilation', kind: 'tuple' },
    { py: 'transposed', js: 'transposed', kind: 'bool' },
    { py: 'output_padding', js: 'outputPadding', kind: 'tuple' },
    { py: 'groups', js: 'groups', kind: 'int' },
    { py: 'padding_mode', js: 'paddingMode', kind: 'str' },
    { py: '_reversed_padding_repeated_twice', kind: 'raw', get: (m) => (m as ConvNd).reversedPaddingRepeatedTwice() },
  ];
  /** `in_channels`: channels of the input. */
  declare inChannels: number;
  /** `out_channels`: channels of the output. */
  declare outChannels: number;
  /** `kernel_size`, one entry per spatial dim. */
  declare kernelSize: number[];
  /** `stride`, one entry per spatial dim. */
  declare stride: number[];
  /** `padding` per spatial dim, or `same` / `valid`. */
  declare padding: number[] | 'same' | 'valid';
  /** `dilation`, one entry per spatial dim. */
  declare dilation: number[];
  /** True for the transposed convolutions. */
  declare transposed: boolean;
  /** `output_padding` (transposed convolutions; zeros otherwise). */
  declare outputPadding: number[];
  /** `groups`: channel groups convolved separately. */
  declare groups: number;
  /** `padding_mode`: `zeros`, `reflect`, `replicate` or `circular`. */
  declare paddingMode: string;
  /** `[out, in/groups, *kernelSize]` (transposed: `[in, out/groups, *kernelSize]`). */
  declare weight: Parameter;
  /** `[outChannels]`, or null when built with `bias: false`. */
  declare bias: Parameter | null;

  /** For subclasses: checks and stores the attributes, allocates and initialises the parameters; bad groups, channel counts or padding throw `E_INVALID_ARGUMENT`. */
  protected setupConv(
    n: number,
    inChannels: number,
    outChannels: number,
    kernelSize: number | number[],
    transposed: boolean,
    opts: ConvOptions & { outputPadding?: number | number[] },
  ): void {
    const groups = opts.groups ?? 1;
    if (groups <= 0) throw torchsaveError('E_INVALID_ARGUMENT', 'groups must be a positive integer');
    if (inChannels % groups !== 0) throw torchsaveError('E_INVALID_ARGUMENT', 'in_channels must be divisible by groups');
    if (outChannels % groups !== 0) throw torchsaveError('E_INVALID_ARGUMENT', 'out_channels must be divisible by groups');
    const stride = ntuple(opts.stride ?? 1, n, 'stride');
    const padding = opts.padding ?? 0;
    if (typeof padding === 'string') {
      if (padding !== 'same' && padding !== 'valid') {
        throw torchsaveError('E_INVALID_ARGUMENT', `Invalid padding string '${padding}', should be one of ['valid', 'same']`);
      }
      if (padding === 'same' && stride.some((s) => s !== 1)) {
        throw torchsaveError('E_INVALID_ARGUMENT', "padding='same' is not supported for strided convolutions");
      }
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = ntuple(kernelSize, n, 'kernel_size');
    this.stride = stride;
    this.padding = typeof padding === 'string' ? padding : ntuple(padding, n, 'padding');
    this.dilation = ntuple(opts.dilation ?? 1, n, 'dilation');
    this.transposed = transposed;
    this.outputPadding = ntuple(opts.outputPadding ?? 0, n, 'output_padding');
    this.groups = groups;
    this.paddingMode = opts.paddingMode ?? 'zeros';
    const wShape = transposed
      ? [inChannels, outChannels / groups, ...this.kernelSize]
      : [outChannels, inChannels / groups, ...this.kernelSize];
    this.weight = param(wShape, opts);
    if (opts.bias ?? true) this.bias = param([outChannels], opts);
    else this.registerParameter('bias', null);
    this.resetParameters();
  }

  /** Python keeps a tuple for numeric padding and a list for 'same'/'valid'. */
  reversedPaddingRepeatedTwice(): unknown {
    const n = this.kernelSize.length;
    if (typeof this.padding === 'string') {
      const out = new Array<number>(2 * n).fill(0);
      if (this.padding === 'same') {
        for (let d = 0; d < n; d++) {
          const i = n - 1 - d;
          const total = this.dilation[d]! * (this.kernelSize[d]! - 1);
          const left = Math.floor(total / 2);
          out[2 * i] = left;
          out[2 * i + 1] = total - left;
        }
      }
      return out;
    }
    const out = new PyTuple<number>();
    for (let d = n - 1; d >= 0; d--) out.push(this.padding[d]!, this.padding[d]!);
    return out;
  }

  /** `reset_parameters()`: re-draws `weight` (Kaiming uniform, a=√5) and `bias` (U(±1/√fan_in)). */
  resetParameters(): void {
    init.kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const [fanIn] = init.calculateFanInAndFanOut(this.weight);
      if (fanIn !== 0) {
        const bound = 1 / Math.sqrt(fanIn);
        init.uniform_(this.bias, -bound, bound);
      }
    }
  }

  override extraRepr(): string {
    let s = `${this.inChannels}, ${this.outChannels}, kernel_size=${tupleStr(this.kernelSize)}, stride=${tupleStr(this.stride)}`;
    const p = this.padding;
    if (typeof p === 'string') s += `, padding=${p}`;
    else if (p.some((x) => x !== 0)) s += `, padding=${tupleStr(p)}`;
    if (this.dilation.some((x) => x !== 1)) s += `, dilation=${tupleStr(this.dilation)}`;
    if (this.outputPadding.some((x) => x !== 0)) s += `, output_padding=${tupleStr(this.outputPadding)}`;
    if (this.groups !== 1) s += `, groups=${this.groups}`;
    if (!this.bias) s += ', bias=False';
    if (this.paddingMode !== 'zeros') s += `, padding_mode=${this.paddingMode}`;
    return s;
  }
  override forward(input: Tensor): Tensor {
    const n = this.kernelSize.length;
    if (this.transposed) {
      if (this.paddingMode !== 'zeros') throw torchsaveError('E_INVALID_ARGUMENT', `Only "zeros" padding mode is supported for ConvTranspose${n}d`);
      const args = { stride: this.stride, padding: this.padding as number[], outputPadding: this.outputPadding, groups: this.groups, dilation: this.dilation };
      return n === 1
        ? F.convTranspose1d(input, this.weight, this.bias, args)
        : n === 2
          ? F.convTranspose2d(input, this.weight, this.bias, args)
          : F.convTranspose3d(input, this.weight, this.bias, args);
    }
    if (this.paddingMode !== 'zeros') {
      // _ConvNd._conv_forward: pad with the mode first, then convolve without padding.
      const pads = [...(this.reversedPaddingRepeatedTwice() as Iterable<number>)];
      const padded = F.pad(input, pads, this.paddingMode as F.PadMode);
      const a0 = { stride: this.stride, padding: 0, dilation: this.dilation, groups: this.groups };
      return n === 1 ? F.conv1d(padded, this.weight, this.bias, a0) : n === 2 ? F.conv2d(padded, this.weight, this.bias, a0) : F.conv3d(padded, this.weight, this.bias, a0);
    }
    const args = { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
    return n === 1 ? F.conv1d(input, this.weight, this.bias, args) : n === 2 ? F.conv2d(input, this.weight, this.bias, args) : F.conv3d(input, this.weight, this.bias, args);
  }
}

export class Conv1d extends ConvNd {
  static override pyModule = 'torch.nn.modules.conv';
  static override pyName = 'Conv1d';
  constructor(inChannels: number, outChannels: number, kernelSize: number | number[], opts: ConvOptions = {}) {
    super();
    this.setupConv(1, inChannels, outChannels, kernelSize, false, opts);
  }
}
export class Conv2d extends ConvNd {
  static override pyModule = 'torch.nn.modules.conv';
  static override pyName = 'Conv2d';
  constructor(inChannels: number, outChannels: number, kernelSize: number | number[], opts: ConvOptions = {}) {
    super();
    this.setupConv(2, inChannels, outChannels, kernelSize, false, opts);
  }
}
export class Conv3d extends ConvNd {
  static override pyModule = 'torch.nn.modules.conv';
  static override pyName = 'Conv3d';
  constructor(inChannels: number, outChannels: number, kernelSize: number | number[], opts: ConvOptions = {}) {
    super();
    this.setupConv(3, inChannels, outChannels, kernelSize, false, opts);
  }
}
export class ConvTranspose2d extends ConvNd {
  static override pyModule = 'torch.nn.modules.conv';
  static override pyName = 'ConvTranspose2d';
  constructor(inChannels: number, outChannels: number, kernelSize: number | number[], opts: ConvTransposeOptions = {}) {
    super();
    this.setupConv(2, inChannels, outChannels, kernelSize, true, opts);
  }
}

// ---------------------------------------------------------------- pooling

export class MaxPool2d extends Module {
  static override pyModule = 'torch.nn.modules.pooling';
  static override pyName = 'MaxPool2d';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'kernel_size', js: 'kernelSize', kind: 'intOrTuple' },
    { py: 'stride', js: 'stride', kind: 'intOrTuple' },
    { py: 'padding', js: 'padding', kind: 'intOrTuple' },
    { py: 'dilation', js: 'dilation', kind: 'intOrTuple' },
    { py: 'return_indices', js: 'returnIndices', kind: 'bool' },
    { py: 'ceil_mode', js: 'ceilMode', kind: 'bool' },
  ];
  /** `kernel_size`: the window. */
  declare kernelSize: number | number[];
  /** `stride` of the window (defaults to the kernel size). */
  declare stride: number | number[];
  /** `padding`: implicit -inf padding on each side. */
  declare padding: number | number[];
  /** `dilation`: spacing between window taps. */
  declare dilation: number | number[];
  /** `return_indices`: when true, `forward` throws `E_INVALID_ARGUMENT` and `forwardWithIndices` gives `[output, indices]`. */
  declare returnIndices: boolean;
  /** `ceil_mode`: round the output size up. */
  declare ceilMode: boolean;
  constructor(
    kernelSize: number | number[],
    stride?: number | number[] | null,
    opts: { padding?: number | number[]; dilation?: number | number[]; returnIndices?: boolean; ceilMode?: boolean } = {},
  ) {
    super();
    this.kernelSize = kernelSize;
    this.stride = stride ?? kernelSize;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.returnIndices = opts.returnIndices ?? false;
    this.ceilMode = opts.ceilMode ?? false;
  }
  override extraRepr(): string {
    const f = (v: number | number[]): string => (Array.isArray(v) ? tupleStr(v) : String(v));
    return `kernel_size=${f(this.kernelSize)}, stride=${f(this.stride)}, padding=${f(this.padding)}, dilation=${f(this.dilation)}, ceil_mode=${this.ceilMode ? 'True' : 'False'}`;
  }
  override forward(input: Tensor): Tensor {
    if (this.returnIndices) {
      // Typed JS cannot return Python's tuple from the same method: it has its own.
      throw torchsaveError('E_INVALID_ARGUMENT', 'MaxPool2d(returnIndices: true): call forwardWithIndices(input) for [output, indices]');
    }
    return F.maxPool2d(input, this.kernelSize, { stride: this.stride, padding: this.padding, dilation: this.dilation, ceilMode: this.ceilMode });
  }
  /** PyTorch's `return_indices=True` result: `[output, indices]`. */
  forwardWithIndices(input: Tensor): [Tensor, Tensor] {
    return F.maxPool2dWithIndices(input, this.kernelSize, { stride: this.stride, padding: this.padding, dilation: this.dilation, ceilMode: this.ceilMode });
  }
}

export class AvgPool2d extends Module {
  static override pyModule = 'torch.nn.modules.pooling';
  static override pyName = 'AvgPool2d';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'kernel_size', js: 'kernelSize', kind: 'intOrTuple' },
    { py: 'stride', js: 'stride', kind: 'intOrTuple' },
    { py: 'padding', js: 'padding', kind: 'intOrTuple' },
    { py: 'ceil_mode', js: 'ceilMode', kind: 'bool' },
    { py: 'count_include_pad', js: 'countIncludePad', kind: 'bool' },
    { py: 'divisor_override', js: 'divisorOverride', kind: 'raw' },
  ];
  /** `kernel_size`: the window. */
  declare kernelSize: number | number[];
  /** `stride` of the window (defaults to the kernel size). */
  declare stride: number | number[];
  /** `padding`: implicit zero padding on each side. */
  declare padding: number | number[];
  /** `ceil_mode`: round the output size up. */
  declare ceilMode: boolean;
  /** `count_include_pad`: count padding zeros in the divisor. */
  declare countIncludePad: boolean;
  /** `divisor_override`: divide by this instead of the window size, or null. */
  declare divisorOverride: number | null;
  constructor(
    kernelSize: number | number[],
    stride?: number | number[] | null,
    opts: { padding?: number | number[]; ceilMode?: boolean; countIncludePad?: boolean; divisorOverride?: number | null } = {},
  ) {
    super();
    this.kernelSize = kernelSize;
    this.stride = stride ?? kernelSize;
    this.padding = opts.padding ?? 0;
    this.ceilMode = opts.ceilMode ?? false;
    this.countIncludePad = opts.countIncludePad ?? true;
    this.divisorOverride = opts.divisorOverride ?? null;
  }
  override forward(input: Tensor): Tensor {
    return F.avgPool2d(input, this.kernelSize, {
      stride: this.stride,
      padding: this.padding,
      ceilMode: this.ceilMode,
      countIncludePad: this.countIncludePad,
      divisorOverride: this.divisorOverride,
    });
  }
}

export class AdaptiveAvgPool2d extends Module {
  static override pyModule = 'torch.nn.modules.pooling';
  static override pyName = 'AdaptiveAvgPool2d';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'output_size', js: 'outputSize', kind: 'intOrTuple' }];
  /** `output_size`: the target `[H, W]` (or one number for both); a null entry keeps the input's size. */
  declare outputSize: number | (number | null)[];
  constructor(outputSize: number | (number | null)[]) {
    super();
    this.outputSize = outputSize;
  }
  override forward(input: Tensor): Tensor {
    return F.adaptiveAvgPool2d(input, this.outputSize);
  }
}

// ---------------------------------------------------------------- normalisation

/** The keyword arguments of `nn.BatchNorm1d/2d/3d`. */
export interface BatchNormOptions extends FactoryOpts {
  /** Added to the variance for stability (default 1e-5). */
  eps?: number;
  /** Running-stats update factor (default 0.1); null: cumulative average. */
  momentum?: number | null;
  /** Learnable `weight` and `bias` (default true). */
  affine?: boolean;
  /** Keep `running_mean` / `running_var` buffers (default true). */
  trackRunningStats?: boolean;
}

/** `_NormBase` / `_BatchNorm`: running stats buffers, `_version` 2 and its migration. */
export abstract class BatchNormBase extends Module {
  static override _version = 2;
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'num_features', js: 'numFeatures', kind: 'int' },
    { py: 'eps', js: 'eps', kind: 'float' },
    { py: 'momentum', js: 'momentum', kind: 'floatOrNone' },
    { py: 'affine', js: 'affine', kind: 'bool' },
    { py: 'track_running_stats', js: 'trackRunningStats', kind: 'bool' },
  ];
  /** `num_features`: channels (`C` of `[N, C, ...]`). */
  declare numFeatures: number;
  /** `eps`: added to the variance for stability. */
  declare eps: number;
  /** `momentum`: running-stats update factor; null for a cumulative average. */
  declare momentum: number | null;
  /** `affine`: whether `weight` and `bias` exist. */
  declare affine: boolean;
  /** `track_running_stats`: whether the running buffers exist. */
  declare trackRunningStats: boolean;
  /** `[numFeatures]` scale (ones at first), or null without `affine`. */
  declare weight: Parameter | null;
  /** `[numFeatures]` shift (zeros at first), or null without `affine`. */
  declare bias: Parameter | null;
  /** Buffer `running_mean` `[numFeatures]`, or null without `trackRunningStats`. */
  declare running_mean: Tensor | null;
  /** Buffer `running_var` `[numFeatures]`, or null without `trackRunningStats`. */
  declare running_var: Tensor | null;
  /** Buffer `num_batches_tracked` (an int64 scalar), or null without `trackRunningStats`. */
  declare num_batches_tracked: Tensor | null;

  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super();
    this.numFeatures = numFeatures;
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    this.affine = opts.affine ?? true;
    this.trackRunningStats = opts.trackRunningStats ?? true;
    const dtype = opts.dtype ?? 'float32';
    if (this.affine) {
      this.weight = new Parameter(ones([numFeatures], { dtype }));
      this.bias = new Parameter(zeros([numFeatures], { dtype }));
    } else {
      this.registerParameter('weight', null);
      this.registerParameter('bias', null);
    }
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures], { dtype }));
      this.registerBuffer('running_var', ones([numFeatures], { dtype }));
      this.registerBuffer('num_batches_tracked', zeroLong());
    } else {
      this.registerBuffer('running_mean', null);
      this.registerBuffer('running_var', null);
      this.registerBuffer('num_batches_tracked', null);
    }
  }

  protected override _loadFromStateDict(
    stateDict: Map<string, unknown>,
    prefix: string,
    localMetadata: Map<string, unknown>,
    strict: boolean,
    missingKeys: string[],
    unexpectedKeys: string[],
    errorMsgs: string[],
  ): void {
    const version = localMetadata.get('version');
    // Version 2 (torch 0.4.1) added num_batches_tracked; older files get the current value or 0.
    if ((version === undefined || version === null || Number(version) < 2) && this.trackRunningStats) {
      const key = prefix + 'num_batches_tracked';
      if (!stateDict.has(key)) stateDict.set(key, this.num_batches_tracked ?? zeroLong());
    }
    super._loadFromStateDict(stateDict, prefix, localMetadata, strict, missingKeys, unexpectedKeys, errorMsgs);
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${this.eps}, momentum=${this.momentum ?? 'None'}, affine=${this.affine ? 'True' : 'False'}, track_running_stats=${this.trackRunningStats ? 'True' : 'False'}`;
  }
  /** `_BatchNorm.forward` (torch 2.11): running stats update in training, used in eval. */
  override forward(input: Tensor): Tensor {
    let factor = this.momentum ?? 0;
    if (this.training && this.trackRunningStats && this.num_batches_tracked) {
      this.num_batches_tracked.add_(1);
      factor = this.momentum === null ? 1 / Number(this.num_batches_tracked.item()) : this.momentum;
    }
    const bnTraining = this.training ? true : this.running_mean === null && this.running_var === null;
    const useStats = !this.training || this.trackRunningStats;
    return F.batchNorm(input, useStats ? this.running_mean : null, useStats ? this.running_var : null, {
      weight: this.weight,
      bias: this.bias,
      training: bnTraining,
      momentum: factor,
      eps: this.eps,
    });
  }
}

export class BatchNorm1d extends BatchNormBase {
  static override pyModule = 'torch.nn.modules.batchnorm';
  static override pyName = 'BatchNorm1d';
}
export class BatchNorm2d extends BatchNormBase {
  static override pyModule = 'torch.nn.modules.batchnorm';
  static override pyName = 'BatchNorm2d';
}
export class BatchNorm3d extends BatchNormBase {
  static override pyModule = 'torch.nn.modules.batchnorm';
  static override pyName = 'BatchNorm3d';
}

export class LayerNorm extends Module {
  static override pyModule = 'torch.nn.modules.normalization';
  static override pyName = 'LayerNorm';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'normalized_shape', js: 'normalizedShape', kind: 'tuple' },
    { py: 'eps', js: 'eps', kind: 'float' },
    { py: 'elementwise_affine', js: 'elementwiseAffine', kind: 'bool' },
  ];
  /** `normalized_shape`: the trailing dims normalised over. */
  declare normalizedShape: number[];
  /** `eps`: added to the variance for stability. */
  declare eps: number;
  /** `elementwise_affine`: whether `weight` and `bias` exist. */
  declare elementwiseAffine: boolean;
  /** Scale of shape `normalizedShape` (ones at first), or null. */
  declare weight: Parameter | null;
  /** Shift of shape `normalizedShape` (zeros at first), or null. */
  declare bias: Parameter | null;
  constructor(normalizedShape: number | number[], opts: { eps?: number; elementwiseAffine?: boolean; bias?: boolean } & FactoryOpts = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    this.elementwiseAffine = opts.elementwiseAffine ?? true;
    const dtype = opts.dtype ?? 'float32';
    if (this.elementwiseAffine) {
      this.weight = new Parameter(ones(this.normalizedShape, { dtype }));
      if (opts.bias ?? true) this.bias = new Parameter(zeros(this.normalizedShape, { dtype }));
      else this.registerParameter('bias', null);
    } else {
      this.registerParameter('weight', null);
      this.registerParameter('bias', null);
    }
  }
  override forward(input: Tensor): Tensor {
    return F.layerNorm(input, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class GroupNorm extends Module {
  static override pyModule = 'torch.nn.modules.normalization';
  static override pyName = 'GroupNorm';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'num_groups', js: 'numGroups', kind: 'int' },
    { py: 'num_channels', js: 'numChannels', kind: 'int' },
    { py: 'eps', js: 'eps', kind: 'float' },
    { py: 'affine', js: 'affine', kind: 'bool' },
  ];
  /** `num_groups`: groups the channels are split into. */
  declare numGroups: number;
  /** `num_channels`: channels of the input. */
  declare numChannels: number;
  /** `eps`: added to the variance for stability. */
  declare eps: number;
  /** `affine`: whether `weight` and `bias` exist. */
  declare affine: boolean;
  /** `[numChannels]` scale (ones at first), or null. */
  declare weight: Parameter | null;
  /** `[numChannels]` shift (zeros at first), or null. */
  declare bias: Parameter | null;
  constructor(numGroups: number, numChannels: number, opts: { eps?: number; affine?: boolean } & FactoryOpts = {}) {
    super();
    if (numChannels % numGroups !== 0) throw torchsaveError('E_INVALID_ARGUMENT', 'num_channels must be divisible by num_groups');
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = opts.eps ?? 1e-5;
    this.affine = opts.affine ?? true;
    const dtype = opts.dtype ?? 'float32';
    if (this.affine) {
      this.weight = new Parameter(ones([numChannels], { dtype }));
      this.bias = new Parameter(zeros([numChannels], { dtype }));
    } else {
      this.registerParameter('weight', null);
      this.registerParameter('bias', null);
    }
  }
  override forward(input: Tensor): Tensor {
    return F.groupNorm(input, this.numGroups, this.weight, this.bias, this.eps);
  }
}

// ---------------------------------------------------------------- embedding

export class Embedding extends Module {
  static override pyModule = 'torch.nn.modules.sparse';
  static override pyName = 'Embedding';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'num_embeddings', js: 'numEmbeddings', kind: 'int' },
    { py: 'embedding_dim', js: 'embeddingDim', kind: 'int' },
    { py: 'padding_idx', js: 'paddingIdx', kind: 'raw' },
    { py: 'max_norm', js: 'maxNorm', kind: 'floatOrNone' },
    { py: 'norm_type', js: 'normType', kind: 'float' },
    { py: 'scale_grad_by_freq', js: 'scaleGradByFreq', kind: 'bool' },
    { py: 'sparse', js: 'sparse', kind: 'bool' },
  ];
  /** `num_embeddings`: rows of the table. */
  declare numEmbeddings: number;
  /** `embedding_dim`: size of each row. */
  declare embeddingDim: number;
  /** `padding_idx`: the row that gets no gradient (zeros at first), or null. */
  declare paddingIdx: number | null;
  /** `max_norm`: PyTorch renormalises rows above it; kept for re-saving, and `forward` with it set throws `E_INVALID_ARGUMENT`. Null when unset. */
  declare maxNorm: number | null;
  /** `norm_type`: the p of `max_norm`'s p-norm (default 2). */
  declare normType: number;
  /** `scale_grad_by_freq`: scale gradients by the inverse word frequency in the batch. */
  declare scaleGradByFreq: boolean;
  /** `sparse`: sparse gradients for the weight. */
  declare sparse: boolean;
  /** `[numEmbeddings, embeddingDim]`, N(0, 1) at first. */
  declare weight: Parameter;
  constructor(
    numEmbeddings: number,
    embeddingDim: number,
    opts: { paddingIdx?: number | null; maxNorm?: number | null; normType?: number; scaleGradByFreq?: boolean; sparse?: boolean } & FactoryOpts = {},
  ) {
    super();
    let pad = opts.paddingIdx ?? null;
    if (pad !== null) {
      if (pad >= numEmbeddings || pad < -numEmbeddings) throw torchsaveError('E_INVALID_ARGUMENT', 'Padding_idx must be within num_embeddings');
      if (pad < 0) pad += numEmbeddings;
    }
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.paddingIdx = pad;
    this.maxNorm = opts.maxNorm ?? null;
    this.normType = opts.normType ?? 2;
    this.scaleGradByFreq = opts.scaleGradByFreq ?? false;
    this.sparse = opts.sparse ?? false;
    this.weight = param([numEmbeddings, embeddingDim], opts);
    init.normal_(this.weight);
    if (pad !== null) {
      const a = this.weight.typedArray();
      if (a instanceof Float32Array || a instanceof Float64Array) {
        a.fill(0, pad * embeddingDim, (pad + 1) * embeddingDim);
      }
    }
  }
  override forward(input: Tensor): Tensor {
    if (this.maxNorm !== null) throw torchsaveError('E_INVALID_ARGUMENT', 'Embedding(max_norm=...) forward is not supported');
    return F.embedding(input, this.weight, { paddingIdx: this.paddingIdx, scaleGradByFreq: this.scaleGradByFreq, sparse: this.sparse });
  }
}

// ---------------------------------------------------------------- dropout, activations, shape

export class Dropout extends Module {
  static override pyModule = 'torch.nn.modules.dropout';
  static override pyName = 'Dropout';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'p', js: 'p', kind: 'float' },
    { py: 'inplace', js: 'inplace', kind: 'bool' },
  ];
  /** `p`: probability of zeroing an element in training mode. */
  declare p: number;
  /** `inplace`: PyTorch's in-place flag, kept for re-saving. */
  declare inplace: boolean;
  constructor(p = 0.5, inplace = false) {
    super();
    if (p < 0 || p > 1) throw torchsaveError('E_INVALID_ARGUMENT', `dropout probability has to be between 0 and 1, but got ${p}`);
    this.p = p;
    this.inplace = inplace;
  }
  override extraRepr(): string {
    return `p=${Number.isInteger(this.p) ? this.p.toFixed(1) : this.p}, inplace=${this.inplace ? 'True' : 'False'}`;
  }
  override forward(input: Tensor): Tensor {
    return F.dropout(input, this.p, this.training);
  }
}

export class ReLU extends Module {
  static override pyModule = 'torch.nn.modules.activation';
  static override pyName = 'ReLU';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'inplace', js: 'inplace', kind: 'bool' }];
  /** `inplace`: PyTorch's in-place flag, kept for re-saving. */
  declare inplace: boolean;
  constructor(inplace = false) {
    super();
    this.inplace = inplace;
  }
  override forward(input: Tensor): Tensor {
    return F.relu(input);
  }
}

export class GELU extends Module {
  static override pyModule = 'torch.nn.modules.activation';
  static override pyName = 'GELU';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'approximate', js: 'approximate', kind: 'str' }];
  /** `approximate`: `none` (exact) or `tanh`. */
  declare approximate: 'none' | 'tanh';
  constructor(approximate: 'none' | 'tanh' = 'none') {
    super();
    this.approximate = approximate;
  }
  override forward(input: Tensor): Tensor {
    return F.gelu(input, this.approximate);
  }
}

export class Sigmoid extends Module {
  static override pyModule = 'torch.nn.modules.activation';
  static override pyName = 'Sigmoid';
  override forward(input: Tensor): Tensor {
    return F.sigmoid(input);
  }
}

export class Tanh extends Module {
  static override pyModule = 'torch.nn.modules.activation';
  static override pyName = 'Tanh';
  override forward(input: Tensor): Tensor {
    return F.tanh(input);
  }
}

export class Softmax extends Module {
  static override pyModule = 'torch.nn.modules.activation';
  static override pyName = 'Softmax';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'dim', js: 'dim', kind: 'raw' }];
  /** `dim`: the dim that sums to 1. */
  declare dim: number | null;
  constructor(dim: number | null = null) {
    super();
    this.dim = dim;
  }
  override forward(input: Tensor): Tensor {
    // torch's _get_softmax_dim for the legacy dim=None
    const dim = this.dim ?? (input.dim() === 0 || input.dim() === 1 || input.dim() === 3 ? 0 : 1);
    return F.softmax(input, dim);
  }
}

export class Flatten extends Module {
  static override pyModule = 'torch.nn.modules.flatten';
  static override pyName = 'Flatten';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'start_dim', js: 'startDim', kind: 'int' },
    { py: 'end_dim', js: 'endDim', kind: 'int' },
  ];
  /** `start_dim`: first dim merged (default 1, keeping the batch). */
  declare startDim: number;
  /** `end_dim`: last dim merged (default -1). */
  declare endDim: number;
  constructor(startDim = 1, endDim = -1) {
    super();
    this.startDim = startDim;
    this.endDim = endDim;
  }
  override forward(input: Tensor): Tensor {
    return F.flatten(input, this.startDim, this.endDim);
  }
}

// ---------------------------------------------------------------- losses


/** `nn.CrossEntropyLoss`. */
export class CrossEntropyLoss extends Module {
  static override pyModule = 'torch.nn.modules.loss';
  static override pyName = 'CrossEntropyLoss';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'reduction', js: 'reduction', kind: 'str' },
    { py: 'ignore_index', js: 'ignoreIndex', kind: 'int' },
    { py: 'label_smoothing', js: 'labelSmoothing', kind: 'float' },
  ];
  /** `reduction`: `mean` (default), `sum` or `none`. */
  declare reduction: Reduction;
  /** `ignore_index`: targets with this class count for nothing (default -100). */
  declare ignoreIndex: number;
  /** `label_smoothing`: mass moved uniformly to every class (default 0). */
  declare labelSmoothing: number;
  /** Per-class weights `[C]`, or null. */
  declare weight: Tensor | null;
  constructor(opts: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction; labelSmoothing?: number } = {}) {
    super();
    this.registerBuffer('weight', opts.weight ?? null);
    this.reduction = opts.reduction ?? 'mean';
    this.ignoreIndex = opts.ignoreIndex ?? -100;
    this.labelSmoothing = opts.labelSmoothing ?? 0;
  }
  override forward(input: Tensor, target: Tensor): Tensor {
    return F.crossEntropy(input, target, { weight: this.weight, ignoreIndex: this.ignoreIndex, reduction: this.reduction, labelSmoothing: this.labelSmoothing });
  }
}

/** `nn.NLLLoss`. */
export class NLLLoss extends Module {
  static override pyModule = 'torch.nn.modules.loss';
  static override pyName = 'NLLLoss';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'reduction', js: 'reduction', kind: 'str' },
    { py: 'ignore_index', js: 'ignoreIndex', kind: 'int' },
  ];
  /** `reduction`: `mean` (default), `sum` or `none`. */
  declare reduction: Reduction;
  /** `ignore_index`: targets with this class count for nothing (default -100). */
  declare ignoreIndex: number;
  /** Per-class weights `[C]`, or null. */
  declare weight: Tensor | null;
  constructor(opts: { weight?: Tensor | null; ignoreIndex?: number; reduction?: Reduction } = {}) {
    super();
    this.registerBuffer('weight', opts.weight ?? null);
    this.reduction = opts.reduction ?? 'mean';
    this.ignoreIndex = opts.ignoreIndex ?? -100;
  }
  override forward(input: Tensor, target: Tensor): Tensor {
    return F.nllLoss(input, target, { weight: this.weight, ignoreIndex: this.ignoreIndex, reduction: this.reduction });
  }
}

/** `nn.MSELoss`. */
export class MSELoss extends Module {
  static override pyModule = 'torch.nn.modules.loss';
  static override pyName = 'MSELoss';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'reduction', js: 'reduction', kind: 'str' }];
  /** `reduction`: `mean` (default), `sum` or `none`. */
  declare reduction: Reduction;
  constructor(opts: { reduction?: Reduction } = {}) {
    super();
    this.reduction = opts.reduction ?? 'mean';
  }
  override forward(input: Tensor, target: Tensor): Tensor {
    return F.mseLoss(input, target, { reduction: this.reduction });
  }
}
