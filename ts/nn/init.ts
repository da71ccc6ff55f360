/**
 * `torch.nn.init`: the initialisers PyTorch's layers use, with the same distributions
 * (the numbers differ: PyTorch's generator is not reproduced, see `Generator` in ts/tensor).
 * Like PyTorch's, they write under `no_grad`: a parameter already on libtorch requires grad,
 * and libtorch refuses in-place writes to such a leaf while autograd records.
 */
import { torchsaveError } from '../errors';
import { noGradIfLoaded } from '../autograd';
import { type Generator, Tensor, defaultGenerator } from '../tensor';

/** `_calculate_fan_in_and_fan_out`: fan_in = size(1)·receptive, fan_out = size(0)·receptive. */
export function calculateFanInAndFanOut(t: Tensor): [number, number] {
  const dims = t.size();
  if (dims.length < 2) {
    throw torchsaveError('E_INVALID_ARGUMENT', 'Fan in and fan out can not be computed for tensor with fewer than 2 dimensions');
  }
  let receptive = 1;
  for (let i = 2; i < dims.length; i++) receptive *= dims[i]!;
  return [dims[1]! * receptive, dims[0]! * receptive];
}

/** `nn.init.calculate_gain`: the recommended gain for `nonlinearity` (`relu`, `tanh`, `leaky_relu` with slope `param`, ...); an unknown one throws `E_INVALID_ARGUMENT`. */
export function calculateGain(nonlinearity: string, param?: number): number {
  switch (nonlinearity) {
    case 'linear':
    case 'conv1d':
    case 'conv2d':
    case 'conv3d':
    case 'conv_transpose1d':
    case 'conv_transpose2d':
    case 'conv_transpose3d':
    case 'sigmoid':
      return 1;
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.sqrt(2);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2 / (1 + slope * slope));
    }
    case 'selu':
      return 3 / 4;
    default:
      throw torchsaveError('E_INVALID_ARGUMENT', `Unsupported nonlinearity ${nonlinearity}`);
  }
}

/** `nn.init.uniform_`: fills `t` in place from U(a, b) and returns it; works without libtorch. */
export function uniform_(t: Tensor, a = 0, b = 1, generator: Generator = defaultGenerator): Tensor {
  return noGradIfLoaded(() => t.uniform_(a, b, generator));
}
/** `nn.init.normal_`: fills `t` in place from N(mean, std²) and returns it. */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  return noGradIfLoaded(() => t.normal_(mean, std, generator));
}
/** `nn.init.zeros_`: fills `t` with 0 in place and returns it. */
export function zeros_(t: Tensor): Tensor {
  return noGradIfLoaded(() => t.fill_(0));
}
/** `nn.init.ones_`: fills `t` with 1 in place and returns it. */
export function ones_(t: Tensor): Tensor {
  return noGradIfLoaded(() => t.fill_(1));
}
/** `nn.init.constant_`: fills `t` with `v` in place and returns it. */
export function constant_(t: Tensor, v: number): Tensor {
  return noGradIfLoaded(() => t.fill_(v));
}

/** The keyword arguments of `nn.init.kaiming_uniform_` / `kaiming_normal_`. */
export interface KaimingOptions {
  /** Negative slope of the following leaky ReLU (default 0). */
  a?: number;
  /** Keep the variance of the forward (`fan_in`, default) or backward (`fan_out`) pass. */
  mode?: 'fan_in' | 'fan_out';
  /** The nonlinearity for {@link calculateGain} (default `leaky_relu`). */
  nonlinearity?: string;
  /** Random source (default: the global generator of `manualSeed`). */
  generator?: Generator;
}

/** `kaiming_uniform_`: U(-b, b) with b = gain·√(3/fan). With a=√5 this is U(±1/√fan_in). */
export function kaimingUniform_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  if (t.numel() === 0) return t;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  const bound = Math.sqrt(3) * (gain / Math.sqrt(fan));
  return noGradIfLoaded(() => t.uniform_(-bound, bound, opts.generator));
}

/** `nn.init.kaiming_normal_`: fills `t` in place from N(0, std²) with `std = gain / √fan` (He et al.) and returns it. */
export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  if (t.numel() === 0) return t;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return noGradIfLoaded(() => t.normal_(0, gain / Math.sqrt(fan), opts.generator));
}

/** `nn.init.xavier_uniform_`: fills `t` in place from U(-b, b), `b = gain·√(6 / (fan_in + fan_out))` (Glorot), and returns it. */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return noGradIfLoaded(() => t.uniform_(-a, a, generator));
}

/** `nn.init.xavier_normal_`: fills `t` in place from N(0, std²), `std = gain·√(2 / (fan_in + fan_out))`, and returns it. */
export function xavierNormal_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  return noGradIfLoaded(() => t.normal_(0, gain * Math.sqrt(2 / (fanIn + fanOut)), generator));
}
