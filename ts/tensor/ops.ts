/**
 * The compute methods of {@link Tensor}: libtorch's ops (they need the libtorch addon), with
 * autograd recorded. They are declared on `Tensor` (interface merging below) and defined on
 * its prototype, non-enumerable like class methods, when `./index` loads this file after
 * `./tensor`. Values, views, casts and device moves stay in `./tensor`.
 */
import type { DType } from '../dtype';
import { type NativeTensor } from '../libtorch/addon';
import { torchsaveError } from '../errors';
import { Tensor } from './tensor';

declare module './tensor' {
  interface Tensor {
    /** `torch.Tensor.add`: elementwise `self + alpha * other`, broadcasting (`alpha` defaults to 1). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    add(other: Tensor | number, alpha?: number): Tensor;
    /** `torch.Tensor.sub`: elementwise `self - alpha * other`, broadcasting (`alpha` defaults to 1). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sub(other: Tensor | number, alpha?: number): Tensor;
    /** `torch.Tensor.mul`: elementwise product, broadcasting. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    mul(other: Tensor | number): Tensor;
    /** `torch.Tensor.div`: elementwise true division (integer inputs give a float result), broadcasting. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    div(other: Tensor | number): Tensor;
    /** `torch.Tensor.pow`: elementwise `self ** exponent`, broadcasting. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    pow(exponent: Tensor | number): Tensor;
    /** `torch.Tensor.matmul` (`@`): matrix product, batched and broadcast over leading dims; a number throws `E_INVALID_ARGUMENT`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    matmul(other: Tensor): Tensor;
    /** `torch.Tensor.maximum`: elementwise maximum of two tensors, broadcasting. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    maximum(other: Tensor): Tensor;
    /** `torch.Tensor.minimum`: elementwise minimum of two tensors, broadcasting. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    minimum(other: Tensor): Tensor;
    /** `torch.Tensor.eq` (`==`): elementwise equality, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    eq(other: Tensor | number): Tensor;
    /** `torch.Tensor.ne` (`!=`): elementwise inequality, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    ne(other: Tensor | number): Tensor;
    /** `torch.Tensor.lt` (`<`): elementwise less-than, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    lt(other: Tensor | number): Tensor;
    /** `torch.Tensor.le` (`<=`): elementwise less-or-equal, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    le(other: Tensor | number): Tensor;
    /** `torch.Tensor.gt` (`>`): elementwise greater-than, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    gt(other: Tensor | number): Tensor;
    /** `torch.Tensor.ge` (`>=`): elementwise greater-or-equal, a `bool` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    ge(other: Tensor | number): Tensor;
    /** `torch.Tensor.neg`: elementwise `-self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    neg(): Tensor;
    /** `torch.Tensor.abs`: elementwise absolute value. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    abs(): Tensor;
    /** `torch.Tensor.exp`: elementwise `e ** self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    exp(): Tensor;
    /** `torch.Tensor.log`: elementwise natural logarithm. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    log(): Tensor;
    /** `torch.Tensor.sqrt`: elementwise square root. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sqrt(): Tensor;
    /** `torch.Tensor.rsqrt`: elementwise `1 / sqrt(self)`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    rsqrt(): Tensor;
    /** `torch.Tensor.sin`: elementwise sine (radians). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sin(): Tensor;
    /** `torch.Tensor.cos`: elementwise cosine (radians). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    cos(): Tensor;
    /** `torch.Tensor.sign`: elementwise -1, 0 or 1. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sign(): Tensor;
    /** `torch.Tensor.square`: elementwise `self * self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    square(): Tensor;
    /** `torch.Tensor.relu`: elementwise `max(self, 0)`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    relu(): Tensor;
    /** `torch.Tensor.sigmoid`: elementwise `1 / (1 + exp(-self))`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sigmoid(): Tensor;
    /** `torch.Tensor.tanh`: elementwise hyperbolic tangent. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    tanh(): Tensor;
    /** `torch.Tensor.clamp`: limits every element to `[min, max]`; `null` leaves that side open (both `null`: a copy). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    clamp(min: number | null, max?: number | null): Tensor;
    /** `torch.Tensor.sum`: sum of all elements, or over `dim` (a number or a list); `keepdim` keeps reduced dims as size 1, `opts.dtype` casts first. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sum(dim?: number | number[] | null, keepdim?: boolean, opts?: { dtype?: DType }): Tensor;
    /** `torch.Tensor.mean`: mean of all elements, or over `dim` (a number or a list); `keepdim` keeps reduced dims as size 1, `opts.dtype` casts first. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    mean(dim?: number | number[] | null, keepdim?: boolean, opts?: { dtype?: DType }): Tensor;
    /** `torch.Tensor.max()`: the largest element, as a 0-dim tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    max(): Tensor;
    /** `torch.Tensor.max(dim)`: largest entries along `dim` and where they are, as PyTorch's `(values, indices)` named tuple. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    max(
      dim: number,
      keepdim?: boolean,
    ): {
      /** The largest entries along `dim`. */
      values: Tensor;
      /** Their positions along `dim` (`int64`). */
      indices: Tensor;
    };
    /** `torch.Tensor.min()`: the smallest element, as a 0-dim tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    min(): Tensor;
    /** `torch.Tensor.argmax`: index of the largest element (of the flattened tensor, or along `dim`), an `int64` tensor. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    argmax(dim?: number, keepdim?: boolean): Tensor;
    /** `torch.Tensor.softmax`: `exp(x) / sum(exp(x))` along `dim`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    softmax(dim: number): Tensor;
    /** `torch.Tensor.log_softmax`: `log(softmax(x))` along `dim`, computed stably. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    logSoftmax(dim: number): Tensor;
    /** `torch.Tensor.flatten`: merges dims `startDim..endDim` (default all) into one. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    flatten(startDim?: number, endDim?: number): Tensor;
    /** `torch.Tensor.permute`: a view with the dims reordered (`dims` as arguments or one list). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    permute(...dims: number[] | [number[]]): Tensor;
    /** `torch.Tensor.transpose`: a view with `dim0` and `dim1` swapped. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    transpose(dim0: number, dim1: number): Tensor;
    /** `torch.Tensor.t`: transpose of a matrix (0-D and 1-D tensors come back as they are). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    t(): Tensor;
    /** `torch.Tensor.unsqueeze`: a view with a size-1 dim inserted at `dim`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    unsqueeze(dim: number): Tensor;
    /** `torch.Tensor.squeeze`: a view without size-1 dims (all of them, or only `dim`). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    squeeze(dim?: number): Tensor;
    /** `torch.Tensor.narrow`: a view of `length` entries of `dim` from `start`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    narrow(dim: number, start: number, length: number): Tensor;
    /** `torch.Tensor.select`: a view of entry `index` of `dim`, that dim removed (`x[index]` for dim 0). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    select(dim: number, index: number): Tensor;
    /** `torch.Tensor.expand`: a broadcast view of size-1 dims to `shape` (-1 keeps a dim), no copy. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    expand(...shape: number[] | [number[]]): Tensor;
    /** `torch.Tensor.chunk`: splits into at most `chunks` views along `dim` (default 0), the last one smaller. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    chunk(chunks: number, dim?: number): Tensor[];
    /** `torch.Tensor.cuda`: `to('cuda:N')` (`device` a number N, default 0, or a device string); without a GPU build of the addon throws `E_DEVICE_UNAVAILABLE`. */
    cuda(device?: number | string): Tensor;
    /** `torch.Tensor.backward`: accumulates gradients into the leaves' `.grad` (`gradient` needed for a non-scalar; `retainGraph` keeps the graph for another pass). Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    backward(gradient?: Tensor | null, opts?: { retainGraph?: boolean; createGraph?: boolean }): void;
    /** `torch.Tensor.add_`: in place `self += alpha * other`; returns `self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    add_(other: Tensor | number, alpha?: number): this;
    /** `torch.Tensor.sub_`: in place `self -= alpha * other`; returns `self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    sub_(other: Tensor | number, alpha?: number): this;
    /** `torch.Tensor.mul_`: in place `self *= other`; returns `self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    mul_(other: Tensor | number): this;
    /** `torch.Tensor.div_`: in place `self /= other`; returns `self`. Needs the libtorch addon (else `E_DEVICE_UNAVAILABLE`); libtorch's refusals throw `E_COMPUTE`. */
    div_(other: Tensor | number): this;
  }
}

function un(t: Tensor, f: (x: NativeTensor) => NativeTensor): Tensor {
  const x = t.native();
  return Tensor.fromNative(f(x));
}

function bin(t: Tensor, other: Tensor | number, op: (x: NativeTensor, y: NativeTensor) => NativeTensor, sc: (x: NativeTensor, v: number) => NativeTensor): Tensor {
  const x = t.native();
  if (typeof other === 'number') return Tensor.fromNative(sc(x, other));
  const y = other.native();
  return Tensor.fromNative(op(x, y));
}

Tensor.prototype.add = function (this: Tensor, other: Tensor | number, alpha?: number): Tensor {
  if (typeof other === 'number') return un(this, (x) => x.addScalar(other * (alpha ?? 1)));
  const y = other.native();
  return un(this, (x) => x.add(y, alpha));
};
Tensor.prototype.sub = function (this: Tensor, other: Tensor | number, alpha?: number): Tensor {
  if (typeof other === 'number') return un(this, (x) => x.subScalar(other * (alpha ?? 1)));
  const y = other.native();
  return alpha === undefined ? un(this, (x) => x.sub(y)) : un(this, (x) => x.add(y, -alpha));
};
Tensor.prototype.mul = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.mul(y), (x, v) => x.mulScalar(v));
};
Tensor.prototype.div = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.div(y), (x, v) => x.divScalar(v));
};
Tensor.prototype.pow = function (this: Tensor, exponent: Tensor | number): Tensor {
  return bin(this, exponent, (x, y) => x.pow(y), (x, v) => x.powScalar(v));
};
Tensor.prototype.matmul = function (this: Tensor, other: Tensor): Tensor {
  return bin(this, other, (x, y) => x.matmul(y), () => {
    throw torchsaveError('E_INVALID_ARGUMENT', 'matmul needs a tensor');
  });
};
Tensor.prototype.maximum = function (this: Tensor, other: Tensor): Tensor {
  const y = other.native();
  return un(this, (x) => x.maximum(y));
};
Tensor.prototype.minimum = function (this: Tensor, other: Tensor): Tensor {
  const y = other.native();
  return un(this, (x) => x.minimum(y));
};
Tensor.prototype.eq = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.eq(y), (x, v) => x.eqScalar(v));
};
Tensor.prototype.ne = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.ne(y), (x, v) => x.eqScalar(v).logicalNot());
};
Tensor.prototype.lt = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.lt(y), (x, v) => x.ltScalar(v));
};
Tensor.prototype.le = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.le(y), (x, v) => x.leScalar(v));
};
Tensor.prototype.gt = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.gt(y), (x, v) => x.gtScalar(v));
};
Tensor.prototype.ge = function (this: Tensor, other: Tensor | number): Tensor {
  return bin(this, other, (x, y) => x.ge(y), (x, v) => x.geScalar(v));
};
Tensor.prototype.neg = function (this: Tensor): Tensor {
  return un(this, (x) => x.neg());
};
Tensor.prototype.abs = function (this: Tensor): Tensor {
  return un(this, (x) => x.abs());
};
Tensor.prototype.exp = function (this: Tensor): Tensor {
  return un(this, (x) => x.exp());
};
Tensor.prototype.log = function (this: Tensor): Tensor {
  return un(this, (x) => x.log());
};
Tensor.prototype.sqrt = function (this: Tensor): Tensor {
  return un(this, (x) => x.sqrt());
};
Tensor.prototype.rsqrt = function (this: Tensor): Tensor {
  return un(this, (x) => x.rsqrt());
};
Tensor.prototype.sin = function (this: Tensor): Tensor {
  return un(this, (x) => x.sin());
};
Tensor.prototype.cos = function (this: Tensor): Tensor {
  return un(this, (x) => x.cos());
};
Tensor.prototype.sign = function (this: Tensor): Tensor {
  return un(this, (x) => x.sign());
};
Tensor.prototype.square = function (this: Tensor): Tensor {
  return un(this, (x) => x.square());
};
Tensor.prototype.relu = function (this: Tensor): Tensor {
  return un(this, (x) => x.relu());
};
Tensor.prototype.sigmoid = function (this: Tensor): Tensor {
  return un(this, (x) => x.sigmoid());
};
Tensor.prototype.tanh = function (this: Tensor): Tensor {
  return un(this, (x) => x.tanh());
};
Tensor.prototype.clamp = function (this: Tensor, min: number | null, max: number | null = null): Tensor {
  if (min !== null && max !== null) return un(this, (x) => x.clamp(min, max));
  if (min !== null) return un(this, (x) => x.clampMin(min));
  if (max !== null) return un(this, (x) => x.clampMax(max));
  return this.clone();
};
Tensor.prototype.sum = function (this: Tensor, dim?: number | number[] | null, keepdim = false, opts: { dtype?: DType } = {}): Tensor {
  const dims = dim === undefined || dim === null ? undefined : typeof dim === 'number' ? [dim] : dim;
  return un(this, (x) => x.sum(dims, keepdim, opts.dtype));
};
Tensor.prototype.mean = function (this: Tensor, dim?: number | number[] | null, keepdim = false, opts: { dtype?: DType } = {}): Tensor {
  const dims = dim === undefined || dim === null ? undefined : typeof dim === 'number' ? [dim] : dim;
  return un(this, (x) => x.mean(dims, keepdim, opts.dtype));
};
Tensor.prototype.max = function (this: Tensor, dim?: number, keepdim: boolean = false): Tensor | { values: Tensor; indices: Tensor } {
  const x = this.native();
  if (dim === undefined) return Tensor.fromNative(x.maxAll());
  const [v, i] = x.maxDim(dim, keepdim);
  return { values: Tensor.fromNative(v!), indices: Tensor.fromNative(i!) };
} as Tensor['max'];
Tensor.prototype.min = function (this: Tensor): Tensor {
  return un(this, (x) => x.minAll());
};
Tensor.prototype.argmax = function (this: Tensor, dim?: number, keepdim = false): Tensor {
  return un(this, (x) => x.argmax(dim, keepdim));
};
Tensor.prototype.softmax = function (this: Tensor, dim: number): Tensor {
  return un(this, (x) => x.softmax(dim));
};
Tensor.prototype.logSoftmax = function (this: Tensor, dim: number): Tensor {
  return un(this, (x) => x.logSoftmax(dim));
};
Tensor.prototype.flatten = function (this: Tensor, startDim = 0, endDim = -1): Tensor {
  return un(this, (x) => x.flatten(startDim, endDim));
};
Tensor.prototype.permute = function (this: Tensor, ...dims: number[] | [number[]]): Tensor {
  const d = (Array.isArray(dims[0]) ? dims[0] : dims) as number[];
  return un(this, (x) => x.permute(d));
};
Tensor.prototype.transpose = function (this: Tensor, dim0: number, dim1: number): Tensor {
  return un(this, (x) => x.transpose(dim0, dim1));
};
Tensor.prototype.t = function (this: Tensor): Tensor {
  return un(this, (x) => x.t());
};
Tensor.prototype.unsqueeze = function (this: Tensor, dim: number): Tensor {
  return un(this, (x) => x.unsqueeze(dim));
};
Tensor.prototype.squeeze = function (this: Tensor, dim?: number): Tensor {
  return un(this, (x) => x.squeeze(dim));
};
Tensor.prototype.narrow = function (this: Tensor, dim: number, start: number, length: number): Tensor {
  return un(this, (x) => x.narrow(dim, start, length));
};
Tensor.prototype.select = function (this: Tensor, dim: number, index: number): Tensor {
  return un(this, (x) => x.select(dim, index));
};
Tensor.prototype.expand = function (this: Tensor, ...shape: number[] | [number[]]): Tensor {
  const d = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
  return un(this, (x) => x.expand(d));
};
Tensor.prototype.chunk = function (this: Tensor, chunks: number, dim = 0): Tensor[] {
  const x = this.native();
  return x.chunk(chunks, dim).map((c) => Tensor.fromNative(c));
};
Tensor.prototype.cuda = function (this: Tensor, device: number | string = 0): Tensor {
  return this.to(typeof device === 'number' ? `cuda:${device}` : device);
};
Tensor.prototype.backward = function (this: Tensor, gradient?: Tensor | null, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
  const x = this.native();
  const g = gradient ? gradient.native() : undefined;
  x.backward(g, opts.retainGraph, opts.createGraph);
};
Tensor.prototype.add_ = function (this: Tensor, other: Tensor | number, alpha?: number): Tensor {
  const x = this.native();
  if (typeof other === 'number') {
    const v = other * (alpha ?? 1);
    x.addScalar_(v);
  } else {
    const y = other.native();
    x.add_(y, alpha);
  }
  return this;
};
Tensor.prototype.sub_ = function (this: Tensor, other: Tensor | number, alpha = 1): Tensor {
  return this.add_(other, -alpha);
};
Tensor.prototype.mul_ = function (this: Tensor, other: Tensor | number): Tensor {
  if (typeof other === 'number') {
    const x = this.native();
    x.mulScalar_(other);
    return this;
  }
  return this.copy_(this.mul(other));
};
Tensor.prototype.div_ = function (this: Tensor, other: Tensor | number): Tensor {
  return typeof other === 'number' ? this.mul_(1 / other) : this.copy_(this.div(other));
};

// Class methods are not enumerable; keep these the same (for...in over a tensor lists none).
for (const name of ['add', 'sub', 'mul', 'div', 'pow', 'matmul', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'neg', 'abs', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'sign', 'square', 'relu', 'sigmoid', 'tanh', 'clamp', 'sum', 'mean', 'max', 'min', 'argmax', 'softmax', 'logSoftmax', 'flatten', 'permute', 'transpose', 't', 'unsqueeze', 'squeeze', 'narrow', 'select', 'expand', 'chunk', 'cuda', 'backward', 'add_', 'sub_', 'mul_', 'div_']) {
  Object.defineProperty(Tensor.prototype, name, { enumerable: false });
}
