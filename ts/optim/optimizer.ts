/**
 * `torch.optim.Optimizer`: parameter groups and state, with `stateDict()` in torch 2.11's
 * exact layout and `loadStateDict()` accepting files from torch 1.x to 2.11.
 *
 * Layout (FORMAT.md §7): a plain dict `{'state': {int: {...}}, 'param_groups': [{...}]}`;
 * group keys are the user's group keys, then (`param_names`), then the remaining defaults in
 * the optimizer's order, then `params` last as int indices numbered across groups.
 *
 * Numbers: a JS number that is an integer is written as a Python int, otherwise as a float.
 * Python's own defaults (`momentum=0`, `lr=1e-3`) come out right; pass `new PyFloat(1)` to
 * store `1.0` where Python code would have written a float literal. Values loaded from a
 * file are kept as loaded (a PyFloat stays a PyFloat), so a round trip is exact.
 */
import { Tensor, tensor } from '../tensor';
import { PyFloat, PyTuple } from '../values';
import { torchsaveError } from '../errors';
import { lt } from '../libtorch/addon';
import { enableGrad } from '../autograd';
import { untracked } from '../scope';

/** @deprecated The same function as `torchsaveError` (ts/errors.ts), the one error constructor; kept for callers of `optim.optimError`. */
export const optimError = torchsaveError;

/** One parameter group: PyTorch's keys (`lr`, `weight_decay`, ...) and `params`. */
export interface ParamGroup {
  /** The group's parameters. */
  params: Tensor[];
  /** Their names, when the optimizer was built from named parameters. */
  param_names?: string[];
  [key: string]: unknown;
}

/** What a user passes for a group: params (tensors or [name, tensor] pairs) and options. */
export interface ParamGroupInput {
  /** The group's parameters (tensors or `[name, tensor]` pairs). */
  params: Iterable<Tensor | [string, Tensor]> | Tensor;
  [key: string]: unknown;
}

export type ParamsInput = Iterable<Tensor> | Iterable<[string, Tensor]> | Iterable<ParamGroupInput>;

/** `weightDecay` -> `weight_decay` (option names may be given in either spelling). */
export function toPyKey(k: string): string {
  return k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

export type OptimizerState = Map<Tensor | number | string, Map<string, unknown>>;

export interface OptimizerStateDict {
  state: Map<number, Map<string, unknown>>;
  param_groups: Map<string, unknown>[];
}

/** A number as Python would see it: PyFloat -> float, others unchanged. */
export function num(v: unknown): number {
  return v instanceof PyFloat ? v.value : Number(v);
}

export abstract class Optimizer {
  /** Python's `defaults`, in the optimizer's key order. */
  readonly defaults: Map<string, unknown>;
  /** `optimizer.param_groups`: each group's parameters and hyperparameters (Python key names). */
  paramGroups: ParamGroup[] = [];
  /** `optimizer.state`: per-parameter state (`step`, `exp_avg`, ...), keyed by the parameter. */
  state: OptimizerState = new Map();

  constructor(params: ParamsInput, defaults: Map<string, unknown>) {
    this.defaults = defaults;
    if (params instanceof Tensor) {
      throw torchsaveError('E_INVALID_ARGUMENT', 'params argument given to the optimizer should be an iterable of Tensors or dicts, but got torch.FloatTensor');
    }
    const list = [...(params as Iterable<unknown>)];
    if (list.length === 0) throw torchsaveError('E_INVALID_ARGUMENT', 'optimizer got an empty parameter list');
    const groups: ParamGroupInput[] = isGroup(list[0]) ? (list as ParamGroupInput[]) : [{ params: list as Tensor[] }];
    for (const g of groups) this.addParamGroup(g);
  }

  /** `add_param_group`: fills defaults after the user's keys, like `setdefault`. */
  addParamGroup(input: ParamGroupInput): void {
    if (!isGroup(input)) throw torchsaveError('E_INVALID_ARGUMENT', `param_group must be a dict, but got ${typeof input}`);
    const group: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(input)) group[k === 'params' ? k : toPyKey(k)] = v;
    const raw = input.params instanceof Tensor ? [input.params] : [...(input.params as Iterable<unknown>)];
    if (input.params instanceof Set) {
      throw torchsaveError('E_INVALID_ARGUMENT', 'optimizer parameters need to be organized in ordered collections, but the ordering of tensors in sets will change between runs. Please use a list instead.');
    }
    const tensors: Tensor[] = [];
    const names: string[] = [];
    for (const p of raw) {
      if (Array.isArray(p) && p.length === 2 && typeof p[0] === 'string') {
        names.push(p[0]);
        tensors.push(p[1] as Tensor);
      } else tensors.push(p as Tensor);
    }
    group.params = tensors;
    if (names.length !== 0) {
      if (names.length !== tensors.length) throw torchsaveError('E_INVALID_ARGUMENT', 'all optimizer params should be with/without names. Some param names are missing');
      group.param_names = names;
    }
    for (const p of tensors) {
      if (!(p instanceof Tensor)) throw torchsaveError('E_INVALID_ARGUMENT', `optimizer can only optimize Tensors, but one of the params is ${typeof p}`);
    }
    for (const [k, v] of this.defaults) if (!(k in group)) group[k] = v instanceof PyTuple ? PyTuple.fromItems(v) : v;
    if (Array.isArray(group.betas) && !(group.betas instanceof PyTuple)) group.betas = PyTuple.fromItems(group.betas as unknown[]);
    const seen = new Set<Tensor>();
    for (const g of this.paramGroups) for (const p of g.params) seen.add(p);
    if (tensors.some((p) => seen.has(p))) throw torchsaveError('E_INVALID_ARGUMENT', 'some parameters appear in more than one parameter group');
    for (const g of this.paramGroups) {
      if (('param_names' in g) !== ('param_names' in group)) {
        throw torchsaveError('E_INVALID_ARGUMENT', 'all optimizer param groups should be with/without names.');
      }
    }
    this.paramGroups.push(group as ParamGroup);
  }

  /** Fills keys that files from older torch versions lack (each optimizer's `__setstate__`). */
  protected setstateDefaults(_group: ParamGroup): void {}

  /** `state_dict()`: `{state, param_groups}` with int indices, torch 2.11 layout. */
  stateDict(): Map<string, unknown> & OptimizerStateDictMap {
    const mapping = new Map<Tensor, number>();
    let start = 0;
    const groups = this.paramGroups.map((g) => {
      const packed = new Map<string, unknown>();
      for (const [k, v] of Object.entries(g)) if (k !== 'params') packed.set(k, v);
      g.params.forEach((p, i) => {
        if (!mapping.has(p)) mapping.set(p, start + i);
      });
      packed.set('params', g.params.map((p) => mapping.get(p)!));
      start += g.params.length;
      return packed;
    });
    const state = new Map<number | string, Map<string, unknown>>();
    for (const [k, v] of this.state) state.set(k instanceof Tensor ? mapping.get(k)! : k, v);
    const out = new Map<string, unknown>([
      ['state', state],
      ['param_groups', groups],
    ]);
    return out as Map<string, unknown> & OptimizerStateDictMap;
  }

  /**
   * `load_state_dict`: positional mapping of saved indices onto this optimizer's parameters;
   * state tensors cast to the parameter's floating dtype (except `step`); missing newer keys
   * filled with defaults. Accepts the Map a load returns or a `{state, param_groups}` object.
   */
  loadStateDict(sd: Map<string, unknown> | { state: unknown; param_groups: unknown }): void {
    const get = (k: string): unknown => (sd instanceof Map ? sd.get(k) : (sd as Record<string, unknown>)[k]);
    const savedGroupsRaw = get('param_groups');
    const savedState = get('state');
    if (!Array.isArray(savedGroupsRaw)) throw torchsaveError('E_INVALID_ARGUMENT', "optimizer state_dict has no 'param_groups' list");
    const savedGroups = savedGroupsRaw.map((g) => (g instanceof Map ? new Map(g as Map<string, unknown>) : new Map(Object.entries(g as object))));
    if (this.paramGroups.length !== savedGroups.length) {
      throw torchsaveError('E_STATE_DICT_MISMATCH', 'loaded state dict has a different number of parameter groups');
    }
    const savedParams = savedGroups.map((g) => {
      const ps = g.get('params');
      if (!Array.isArray(ps)) throw torchsaveError('E_INVALID_ARGUMENT', "a saved param group has no 'params' list");
      return ps as unknown[];
    });
    if (this.paramGroups.some((g, i) => g.params.length !== savedParams[i]!.length)) {
      throw torchsaveError('E_STATE_DICT_MISMATCH', "loaded state dict contains a parameter group that doesn't match the size of optimizer's group");
    }
    const idMap = new Map<unknown, Tensor>();
    savedParams.forEach((ps, gi) => ps.forEach((id, j) => idMap.set(normKey(id), this.paramGroups[gi]!.params[j]!)));
    const state: OptimizerState = new Map();
    const entries: Iterable<[unknown, unknown]> =
      savedState instanceof Map ? savedState : savedState && typeof savedState === 'object' ? Object.entries(savedState) : [];
    for (const [k, v] of entries) {
      const param = idMap.get(normKey(k));
      const value = v instanceof Map ? (v as Map<string, unknown>) : new Map(Object.entries(v as object));
      if (param) {
        const group = this.paramGroups.find((g) => g.params.includes(param))!;
        const cast = new Map<string, unknown>();
        for (const [sk, sv] of value) cast.set(sk, castValue(param, sv, sk, group));
        state.set(param, cast);
      } else {
        state.set(k as number | string, value);
      }
    }
    const newGroups = this.paramGroups.map((g, i) => {
      const saved = savedGroups[i]!;
      const ng: Record<string, unknown> = {};
      for (const [k, v] of saved) ng[k] = v;
      ng.params = g.params;
      if ('param_names' in g && !saved.has('param_names')) ng.param_names = g.param_names;
      return ng as ParamGroup;
    });
    this.state = state;
    this.paramGroups = newGroups;
    for (const g of this.paramGroups) this.setstateDefaults(g);
  }

  /** Sets gradients to null (`set_to_none=True`), or zeroes them. */
  zeroGrad(setToNone = true): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (p.grad === null) continue;
        if (setToNone) p.grad = null;
        else p.grad.zero_();
      }
    }
  }

  /**
   * `optimizer.step(closure)`: one update of every parameter that has a gradient, with
   * PyTorch's exact rule (the libtorch addon runs torch/optim's single-tensor code op for op).
   * The closure, if given, runs with gradients enabled and its loss is returned.
   */
  step(closure?: () => unknown): unknown {
    lt(`${this.constructor.name}.step`);
    const loss = closure ? enableGrad(closure) : undefined;
    // State made here (moment buffers) lives in this.state: no torch.tidy scope may free it.
    untracked(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (grad === null) continue;
          this.updateParam(p, grad, g);
        }
      }
    });
    return loss;
  }

  /** One parameter's update (each optimizer's `_single_tensor_*`). */
  protected abstract updateParam(param: Tensor, grad: Tensor, group: ParamGroup): void;

  /** `self.state[p]`, created empty on first use (Python's defaultdict). */
  protected stateOf(p: Tensor): Map<string, unknown> {
    let st = this.state.get(p);
    if (!st) {
      st = new Map();
      this.state.set(p, st);
    }
    return st;
  }

  /** Converts a non-tensor `step` (torch < 1.12) to a 0-d float32 tensor. */
  protected stepToTensor(group: ParamGroup): void {
    for (const p of group.params) {
      const st = this.state.get(p);
      if (st && st.size !== 0 && st.has('step') && !(st.get('step') instanceof Tensor)) {
        st.set('step', tensor(num(st.get('step')), { dtype: 'float32' }));
      }
    }
  }
}

/** The keys of an optimizer state dict Map (for typing `sd.get('state')`). */
export interface OptimizerStateDictMap {
  /** `state`: per-parameter state by parameter index. */
  get(key: 'state'): Map<number, Map<string, unknown>>;
  /** `param_groups`: each group's hyperparameters and `params` as indices. */
  get(key: 'param_groups'): Map<string, unknown>[];
  /** Any other key. */
  get(key: string): unknown;
}

function isGroup(x: unknown): x is ParamGroupInput {
  return typeof x === 'object' && x !== null && !(x instanceof Tensor) && !Array.isArray(x) && 'params' in x;
}

function normKey(k: unknown): unknown {
  return typeof k === 'bigint' ? Number(k) : k;
}

/** `_process_value_according_to_param_policy` + `_cast`. */
function castValue(param: Tensor, value: unknown, key: string | undefined, group: ParamGroup): unknown {
  if (value instanceof Tensor) {
    if (key === 'step') {
      const capt = group.capturable === true || (group.fused !== null && group.fused !== undefined && group.fused !== false);
      return capt ? untracked(() => value.to('float32')) : value;
    }
    // torch moves state to the parameter's device and floating dtype (not `step`); the
    // result is optimizer state, which no torch.tidy scope may free.
    return untracked(() => {
      const moved = value.device.equals(param.device) ? value : value.to(param.device);
      return param.isFloatingPoint() ? moved.to(param.dtype) : moved;
    });
  }
  if (value instanceof Map) {
    const m = new Map<unknown, unknown>();
    for (const [k, v] of value) m.set(k, castValue(param, v, String(k), group));
    return m;
  }
  if (value instanceof PyTuple) return PyTuple.fromItems(Array.from(value, (v) => castValue(param, v, undefined, group)));
  if (Array.isArray(value)) return value.map((v) => castValue(param, v, undefined, group));
  return value;
}
