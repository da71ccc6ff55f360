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

export function uniform_(t: Tensor, a = 0, b = 1, generator: Generator = defaultGenerator): Tensor {
  return noGradIfLoaded(() => t.uniform_(a, b, generator));
}
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  return noGradIfLoaded(() => t.normal_(mean, std, generator));
}
export function zeros_(t: Tensor): Tensor {
  return noGradIfLoaded(() => t.fill_(0));
}
export function ones_(t: Tensor): Tensor {
  return noGradIfLoaded(() => t.fill_(1));
}
export function constant_(t: Tensor, v: number): Tensor {
  return noGradIfLoaded(() => t.fill_(v));
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: string;
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

export function kaimingNormal_(t: Tensor, opts: KaimingOptions = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  if (t.numel() === 0) return t;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', opts.a ?? 0);
  return noGradIfLoaded(() => t.normal_(0, gain / Math.sqrt(fan), opts.generator));
}

export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return noGradIfLoaded(() => t.uniform_(-a, a, generator));
}

export function xavierNormal_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  return noGradIfLoaded(() => t.normal_(0, gain * Math.sqrt(2 / (fanIn + fanOut)), generator));
}
