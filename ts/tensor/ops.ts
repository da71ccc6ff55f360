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
    /** `self + alpha * other`. */
    add(other: Tensor | number, alpha?: number): Tensor;
    /** `self - alpha * other`. */
    sub(other: Tensor | number, alpha?: number): Tensor;
    mul(other: Tensor | number): Tensor;
    div(other: Tensor | number): Tensor;
    pow(exponent: Tensor | number): Tensor;
    matmul(other: Tensor): Tensor;
    maximum(other: Tensor): Tensor;
    minimum(other: Tensor): Tensor;
    eq(other: Tensor | number): Tensor;
    ne(other: Tensor | number): Tensor;
    lt(other: Tensor | number): Tensor;
    le(other: Tensor | number): Tensor;
    gt(other: Tensor | number): Tensor;
    ge(other: Tensor | number): Tensor;
    neg(): Tensor;
    abs(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    sign(): Tensor;
    square(): Tensor;
    relu(): Tensor;
    sigmoid(): Tensor;
    tanh(): Tensor;
    clamp(min: number | null, max?: number | null): Tensor;
    /** Sum of all elements, or over `dim` (a number or a list). */
    sum(dim?: number | number[] | null, keepdim?: boolean, opts?: { dtype?: DType }): Tensor;
    mean(dim?: number | number[] | null, keepdim?: boolean, opts?: { dtype?: DType }): Tensor;
    /** `max()`: the largest element; `max(dim)`: `{values, indices}` like PyTorch's named tuple. */
    max(): Tensor;
    max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
    min(): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    softmax(dim: number): Tensor;
    logSoftmax(dim: number): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    permute(...dims: number[] | [number[]]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    t(): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    select(dim: number, index: number): Tensor;
    expand(...shape: number[] | [number[]]): Tensor;
    chunk(chunks: number, dim?: number): Tensor[];
    /** `tensor.cuda(device)`: `to('cuda:N')`. */
    cuda(device?: number | string): Tensor;
    /** `loss.backward()`: accumulates gradients into the leaves' `.grad`. */
    backward(gradient?: Tensor | null, opts?: { retainGraph?: boolean; createGraph?: boolean }): void;
    /** In place `self += alpha * other`. */
    add_(other: Tensor | number, alpha?: number): this;
    sub_(other: Tensor | number, alpha?: number): this;
    mul_(other: Tensor | number): this;
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
