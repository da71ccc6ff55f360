/**
 * SGD, Adam, AdamW, RMSprop, Adagrad: torch 2.11's defaults (key order = `defaults` dict order),
 * validation messages, construction-time state and `__setstate__` back-fill for old files.
 * Options may be camelCase (`weightDecay`) or PyTorch's names (`weight_decay`).
 */
import { Tensor, full, tensor } from '../tensor';
import { torchsaveError } from '../errors';
import { lt } from '../libtorch/addon';
import { PyTuple } from '../values';
import { Optimizer, type ParamGroup, type ParamsInput, num, toPyKey } from './optimizer';

type Opts = Record<string, unknown>;

function merge(defaults: [string, unknown][], opts: Opts): Map<string, unknown> {
  const given = new Map<string, unknown>();
  for (const [k, v] of Object.entries(opts)) given.set(toPyKey(k), v);
  const out = new Map<string, unknown>();
  for (const [k, v] of defaults) out.set(k, given.has(k) ? given.get(k) : v);
  for (const k of given.keys()) {
    if (!out.has(k)) throw torchsaveError('E_INVALID_ARGUMENT', `unexpected optimizer option '${k}'`);
  }
  if (Array.isArray(out.get('betas')) && !(out.get('betas') instanceof PyTuple)) out.set('betas', PyTuple.fromItems(out.get('betas') as unknown[]));
  return out;
}

function check(ok: boolean, msg: string): void {
  if (!ok) throw torchsaveError('E_INVALID_ARGUMENT', msg);
}

function fmt(v: unknown): string {
  return String(num(v));
}

function setdefault(g: ParamGroup, k: string, v: unknown): void {
  if (!(k in g)) g[k] = v;
}

const b = (v: unknown): boolean => v === true;

/** `torch.zeros_like(p, memory_format=torch.preserve_format)`: same device and dtype. */
function zerosLike(p: Tensor): Tensor {
  return Tensor.fromNative(p.native().zerosLike());
}

/** A state `step`: `torch.tensor(0.0, dtype=float32)` on the CPU (capturable=False). */
function stepTensor(): Tensor {
  return tensor(0.0, { dtype: 'float32' });
}

/** The keyword arguments of `torch.optim.SGD` (camelCase or snake_case); an unknown key or an out-of-range value throws `E_INVALID_ARGUMENT` (PyTorch: TypeError / ValueError). */
export interface SGDOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Momentum factor (default 0). */
  momentum?: number;
  /** Dampening of the momentum (default 0). */
  dampening?: number;
  /** `weight_decay`: L2 penalty (default 0). */
  weightDecay?: number;
  /** Nesterov momentum (default false; needs momentum > 0 and no dampening). */
  nesterov?: boolean;
  /** Maximise the objective instead of minimising (default false). */
  maximize?: boolean;
  /** Use the multi-tensor implementation (null, the default: PyTorch picks). */
  foreach?: boolean | null;
  /** Let autograd run through the step (default false). */
  differentiable?: boolean;
  /** Use the fused kernel (null, the default: PyTorch picks). */
  fused?: boolean | null;
  [k: string]: unknown;
}

export class SGD extends Optimizer {
  constructor(params: ParamsInput, opts: SGDOptions = {}) {
    const d = merge(
      [
        ['lr', 1e-3],
        ['momentum', 0],
        ['dampening', 0],
        ['weight_decay', 0],
        ['nesterov', false],
        ['maximize', false],
        ['foreach', null],
        ['differentiable', false],
        ['fused', null],
      ],
      opts,
    );
    check(num(d.get('lr')) >= 0, `Invalid learning rate: ${fmt(d.get('lr'))}`);
    check(num(d.get('momentum')) >= 0, `Invalid momentum value: ${fmt(d.get('momentum'))}`);
    check(num(d.get('weight_decay')) >= 0, `Invalid weight_decay value: ${fmt(d.get('weight_decay'))}`);
    check(!(d.get('nesterov') && (num(d.get('momentum')) <= 0 || num(d.get('dampening')) !== 0)), 'Nesterov momentum requires a momentum and zero dampening');
    super(params, d);
  }
  protected override setstateDefaults(g: ParamGroup): void {
    setdefault(g, 'nesterov', false);
    setdefault(g, 'maximize', false);
    setdefault(g, 'foreach', null);
    setdefault(g, 'differentiable', false);
    setdefault(g, 'fused', false);
  }
  protected override updateParam(p: Tensor, grad: Tensor, g: ParamGroup): void {
    const momentum = num(g.momentum);
    const st = momentum !== 0 ? this.stateOf(p) : undefined;
    const buf = st?.get('momentum_buffer') as Tensor | null | undefined;
    const addon = lt('SGD.step');
    const out = addon.sgdStep(p.native(), grad.native(), buf ? buf.native() : undefined, num(g.lr), momentum, num(g.dampening), num(g.weight_decay), b(g.nesterov), b(g.maximize));
    if (st && !buf && out) st.set('momentum_buffer', Tensor.fromNative(out));
  }
}

/** The keyword arguments of `torch.optim.Adam` (camelCase or snake_case); an unknown key or an out-of-range value throws `E_INVALID_ARGUMENT` (PyTorch: TypeError / ValueError). */
export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr?: number;
  /** Decay rates of the running mean of the gradient and of its square (default `[0.9, 0.999]`). */
  betas?: [number, number] | PyTuple<number>;
  /** Added to the denominator for stability (default 1e-8). */
  eps?: number;
  /** `weight_decay`: L2 penalty (default 0). */
  weightDecay?: number;
  /** Use the AMSGrad variant (default false). */
  amsgrad?: boolean;
  /** Maximise the objective instead of minimising (default false). */
  maximize?: boolean;
  /** Use the multi-tensor implementation (null, the default: PyTorch picks). */
  foreach?: boolean | null;
  /** Safe to capture in a CUDA graph (default false). */
  capturable?: boolean;
  /** Let autograd run through the step (default false). */
  differentiable?: boolean;
  /** Use the fused kernel (null, the default: PyTorch picks). */
  fused?: boolean | null;
  /** `decoupled_weight_decay`: AdamW's decoupled decay (default false for Adam, true for AdamW). */
  decoupledWeightDecay?: boolean;
  [k: string]: unknown;
}

function adamDefaults(weightDecay: number, decoupled: boolean): [string, unknown][] {
  return [
    ['lr', 1e-3],
    ['betas', PyTuple.fromItems([0.9, 0.999])],
    ['eps', 1e-8],
    ['weight_decay', weightDecay],
    ['amsgrad', false],
    ['maximize', false],
    ['foreach', null],
    ['capturable', false],
    ['differentiable', false],
    ['fused', null],
    ['decoupled_weight_decay', decoupled],
  ];
}

function checkAdam(d: Map<string, unknown>): void {
  const betas = d.get('betas') as unknown[];
  check(num(d.get('lr')) >= 0, `Invalid learning rate: ${fmt(d.get('lr'))}`);
  check(num(d.get('eps')) >= 0, `Invalid epsilon value: ${fmt(d.get('eps'))}`);
  check(num(betas[0]) >= 0 && num(betas[0]) < 1, `Invalid beta parameter at index 0: ${fmt(betas[0])}`);
  check(num(betas[1]) >= 0 && num(betas[1]) < 1, `Invalid beta parameter at index 1: ${fmt(betas[1])}`);
  check(num(d.get('weight_decay')) >= 0, `Invalid weight_decay value: ${fmt(d.get('weight_decay'))}`);
}

export class Adam extends Optimizer {
  constructor(params: ParamsInput, opts: AdamOptions = {}) {
    const d = merge(adamDefaults(0, false), opts);
    checkAdam(d);
    super(params, d);
  }
  protected override setstateDefaults(g: ParamGroup): void {
    setdefault(g, 'amsgrad', false);
    setdefault(g, 'maximize', false);
    setdefault(g, 'foreach', null);
    setdefault(g, 'capturable', false);
    setdefault(g, 'differentiable', false);
    setdefault(g, 'decoupled_weight_decay', false);
    setdefault(g, 'fused', null);
    this.stepToTensor(g);
  }
  protected override updateParam(p: Tensor, grad: Tensor, g: ParamGroup): void {
    const st = this.stateOf(p);
    const amsgrad = b(g.amsgrad);
    if (st.size === 0) {
      st.set('step', stepTensor());
      st.set('exp_avg', zerosLike(p));
      st.set('exp_avg_sq', zerosLike(p));
      if (amsgrad) st.set('max_exp_avg_sq', zerosLike(p));
    }
    const [beta1, beta2] = Array.from(g.betas as Iterable<unknown>, num);
    const t = (k: string) => (st.get(k) as Tensor).native();
    const addon = lt('Adam.step');
    addon.adamStep(
      p.native(),
      grad.native(),
      t('exp_avg'),
      t('exp_avg_sq'),
      amsgrad ? t('max_exp_avg_sq') : undefined,
      t('step'),
      num(g.lr),
      beta1!,
      beta2!,
      num(g.weight_decay),
      num(g.eps),
      amsgrad,
      b(g.maximize),
      b(g.decoupled_weight_decay),
    );
  }
}

/** AdamW: Adam with `weight_decay` 0.01 and `decoupled_weight_decay` True (torch 2.11). */
export class AdamW extends Adam {
  constructor(params: ParamsInput, opts: Omit<AdamOptions, 'decoupledWeightDecay'> = {}) {
    const o: Opts = { ...opts };
    if (o.weightDecay === undefined && o.weight_decay === undefined) o.weight_decay = 1e-2;
    o.decoupled_weight_decay = true;
    super(params, o);
  }
  protected override setstateDefaults(g: ParamGroup): void {
    super.setstateDefaults(g);
    g.decoupled_weight_decay = true;
  }
}

/** The keyword arguments of `torch.optim.RMSprop` (camelCase or snake_case); an unknown key or an out-of-range value throws `E_INVALID_ARGUMENT` (PyTorch: TypeError / ValueError). */
export interface RMSpropOptions {
  /** Learning rate (default 1e-2). */
  lr?: number;
  /** Smoothing constant of the squared-gradient average (default 0.99). */
  alpha?: number;
  /** Added to the denominator for stability (default 1e-8). */
  eps?: number;
  /** `weight_decay`: L2 penalty (default 0). */
  weightDecay?: number;
  /** Momentum factor (default 0). */
  momentum?: number;
  /** Normalise by the gradient's estimated variance (default false). */
  centered?: boolean;
  /** Safe to capture in a CUDA graph (default false). */
  capturable?: boolean;
  /** Use the multi-tensor implementation (null, the default: PyTorch picks). */
  foreach?: boolean | null;
  /** Maximise the objective instead of minimising (default false). */
  maximize?: boolean;
  /** Let autograd run through the step (default false). */
  differentiable?: boolean;
  [k: string]: unknown;
}

export class RMSprop extends Optimizer {
  constructor(params: ParamsInput, opts: RMSpropOptions = {}) {
    const d = merge(
      [
        ['lr', 1e-2],
        ['momentum', 0],
        ['alpha', 0.99],
        ['eps', 1e-8],
        ['centered', false],
        ['weight_decay', 0],
        ['capturable', false],
        ['foreach', null],
        ['maximize', false],
        ['differentiable', false],
      ],
      opts,
    );
    check(num(d.get('lr')) >= 0, `Invalid learning rate: ${fmt(d.get('lr'))}`);
    check(num(d.get('eps')) >= 0, `Invalid epsilon value: ${fmt(d.get('eps'))}`);
    check(num(d.get('momentum')) >= 0, `Invalid momentum value: ${fmt(d.get('momentum'))}`);
    check(num(d.get('weight_decay')) >= 0, `Invalid weight_decay value: ${fmt(d.get('weight_decay'))}`);
    check(num(d.get('alpha')) >= 0, `Invalid alpha value: ${fmt(d.get('alpha'))}`);
    super(params, d);
  }
  protected override setstateDefaults(g: ParamGroup): void {
    setdefault(g, 'momentum', 0);
    setdefault(g, 'centered', false);
    setdefault(g, 'foreach', null);
    setdefault(g, 'maximize', false);
    setdefault(g, 'differentiable', false);
    setdefault(g, 'capturable', false);
    this.stepToTensor(g);
  }
  protected override updateParam(p: Tensor, grad: Tensor, g: ParamGroup): void {
    const st = this.stateOf(p);
    const momentum = num(g.momentum);
    const centered = b(g.centered);
    if (st.size === 0) {
      st.set('step', stepTensor());
      st.set('square_avg', zerosLike(p));
      if (momentum > 0) st.set('momentum_buffer', zerosLike(p));
      if (centered) st.set('grad_avg', zerosLike(p));
    }
    const t = (k: string) => (st.get(k) as Tensor).native();
    const addon = lt('RMSprop.step');
    addon.rmspropStep(
      p.native(),
      grad.native(),
      t('square_avg'),
      centered ? t('grad_avg') : undefined,
      momentum > 0 ? t('momentum_buffer') : undefined,
      t('step'),
      num(g.lr),
      num(g.alpha),
      num(g.eps),
      num(g.weight_decay),
      momentum,
      centered,
      b(g.maximize),
    );
  }
}

/** The keyword arguments of `torch.optim.Adagrad` (camelCase or snake_case); an unknown key or an out-of-range value throws `E_INVALID_ARGUMENT` (PyTorch: TypeError / ValueError). */
export interface AdagradOptions {
  /** Learning rate (default 1e-2). */
  lr?: number;
  /** `lr_decay`: learning-rate decay (default 0). */
  lrDecay?: number;
  /** `weight_decay`: L2 penalty (default 0). */
  weightDecay?: number;
  /** `initial_accumulator_value`: starting value of the squared-gradient sum (default 0). */
  initialAccumulatorValue?: number;
  /** Added to the denominator for stability (default 1e-10). */
  eps?: number;
  /** Use the multi-tensor implementation (null, the default: PyTorch picks). */
  foreach?: boolean | null;
  /** Maximise the objective instead of minimising (default false). */
  maximize?: boolean;
  /** Let autograd run through the step (default false). */
  differentiable?: boolean;
  /** Use the fused kernel (null, the default: PyTorch picks). */
  fused?: boolean | null;
  [k: string]: unknown;
}

/** Adagrad creates its state at construction: `step` = tensor(0.) and `sum` filled with the initial value. */
export class Adagrad extends Optimizer {
  constructor(params: ParamsInput, opts: AdagradOptions = {}) {
    const d = merge(
      [
        ['lr', 1e-2],
        ['lr_decay', 0],
        ['eps', 1e-10],
        ['weight_decay', 0],
        ['initial_accumulator_value', 0],
        ['foreach', null],
        ['maximize', false],
        ['differentiable', false],
        ['fused', null],
      ],
      opts,
    );
    check(num(d.get('lr')) >= 0, `Invalid learning rate: ${fmt(d.get('lr'))}`);
    check(num(d.get('lr_decay')) >= 0, `Invalid lr_decay value: ${fmt(d.get('lr_decay'))}`);
    check(num(d.get('weight_decay')) >= 0, `Invalid weight_decay value: ${fmt(d.get('weight_decay'))}`);
    check(num(d.get('initial_accumulator_value')) >= 0, `Invalid initial_accumulator_value value: ${fmt(d.get('initial_accumulator_value'))}`);
    check(num(d.get('eps')) >= 0, `Invalid epsilon value: ${fmt(d.get('eps'))}`);
    super(params, d);
    const initValue = num(d.get('initial_accumulator_value'));
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        this.state.set(
          p,
          new Map<string, unknown>([
            ['step', tensor(0.0, { dtype: 'float32' })],
            ['sum', full([...p.size()], initValue, { dtype: p.dtype, device: p.device })],
          ]),
        );
      }
    }
  }
  protected override setstateDefaults(g: ParamGroup): void {
    setdefault(g, 'foreach', null);
    setdefault(g, 'maximize', false);
    setdefault(g, 'differentiable', false);
    setdefault(g, 'fused', null);
    this.stepToTensor(g);
  }
  protected override updateParam(p: Tensor, grad: Tensor, g: ParamGroup): void {
    const st = this.stateOf(p);
    if (!st.has('sum')) {
      st.set('step', stepTensor());
      st.set('sum', full([...p.size()], num(g.initial_accumulator_value), { dtype: p.dtype, device: p.device }));
    }
    const t = (k: string) => (st.get(k) as Tensor).native();
    const addon = lt('Adagrad.step');
    addon.adagradStep(p.native(), grad.native(), t('sum'), t('step'), num(g.lr), num(g.lr_decay), num(g.weight_decay), num(g.eps), b(g.maximize));
  }
}


