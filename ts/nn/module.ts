/**
 * `nn.Module`: parameters, buffers and submodules in PyTorch's order, `stateDict` /
 * `loadStateDict` with PyTorch's semantics and error text, and whole-module pickling.
 *
 * Registration order. PyTorch keeps `_parameters`, `_buffers` and `_modules` as dicts filled
 * by `__setattr__`, so a state dict lists members in ASSIGNMENT order. Here the Module
 * constructor returns a Proxy over the instance: TS class fields (ES2022 `[[DefineOwnProperty]]`,
 * the `defineProperty` trap) and later assignments (the `set` trap) both route through
 * {@link setAttr}, which files a `Parameter` under `_parameters`, a `Module` under `_modules`,
 * a tensor assigned to a registered buffer name under `_buffers`, and anything else as a plain
 * own property (those become the pickled layer attributes). So
 * `class Net extends nn.Module { conv1 = new nn.Conv2d(3, 6, 5); ... }` gives exactly the
 * keys and order of the Python class with the same `__init__`.
 *
 * Caveats: registered members are not own properties of the object (like Python, where they
 * live in `_modules`), so `Object.keys(model)` does not list them; use `namedChildren()` etc.
 * Declare typed-but-uninitialised members with `declare` (a bare `x!: T` field initialises to
 * `undefined`, which is ignored for registered names).
 *
 * Pickling (`torch.save(model)`): `[pyReduce]()` returns the `PyObject` that Python's copyreg
 * path produces (FORMAT.md §8.1): `GLOBAL module.Class`, `EMPTY_TUPLE NEWOBJ`, then BUILD with
 * the torch 2.11 `__dict__`: the 17 base keys in torch's order, then layer attributes.
 * User classes pickle as `__main__.<ClassName>` unless they set `static pyModule` / `pyName`.
 */
import { inspect } from 'node:util';
import type { DType } from '../dtype';
import { noGradIfLoaded } from '../autograd';
import { Parameter, Tensor, tensor } from '../tensor';
import { torchsaveError } from '../errors';
import { LIBTORCH_HOW_TO } from '../libtorch/addon';
import { keep, untracked } from '../scope';
import { Device, OrderedDict, PyFloat, PyObject, PyTuple, lookupPyClass, pyReduce, type PyReducible } from '../values';

/** @deprecated The same function as `torchsaveError` (ts/errors.ts), the one error constructor; kept for callers of `nn.nnError`. */
export const nnError = torchsaveError;

/** How libtorch-backed compute is reached (the same text every compute error carries). */
export const LIBTORCH_HINT = LIBTORCH_HOW_TO;

/** What `stateDict()` returns and `loadStateDict()` takes: name → tensor (plus `_extra_state` values). */
export type StateDict = OrderedDict<string, Tensor> | Map<string, unknown>;

/** The keyword arguments of {@link Module.stateDict} (`state_dict(destination, prefix, keep_vars)`). */
export interface StateDictOptions {
  /** Prepended to every key (`'model.'`; default none). */
  prefix?: string;
  /** Return the module's own tensors rather than detached ones (default false). */
  keepVars?: boolean;
  /** Fill this dict instead of a new one (PyTorch's `destination`). */
  destination?: OrderedDict<string, unknown>;
}

/** The keyword arguments of {@link Module.loadStateDict} (`load_state_dict(state_dict, strict, assign)`). */
export interface LoadStateDictOptions {
  /** Keys must match exactly (default true). */
  strict?: boolean;
  /** Replace the module's tensors by the checkpoint's instead of copying into them. */
  assign?: boolean;
}

/** PyTorch's `_IncompatibleKeys`. */
export interface IncompatibleKeys {
  /** Keys the module has and the state dict lacks. */
  missingKeys: string[];
  /** Keys the state dict has and the module lacks. */
  unexpectedKeys: string[];
}

/** Python type names for error text (`<class 'int'>`). */
export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'NoneType';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof PyFloat) return 'float';
  if (v instanceof PyTuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof OrderedDict) return 'collections.OrderedDict';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof Parameter) return 'torch.nn.parameter.Parameter';
  if (v instanceof Tensor) return 'torch.Tensor';
  if (v instanceof PyObject) return v.fullName;
  if (v instanceof Module) return v.pyGlobal().join('.');
  return typeof v;
}

function tensorTypeName(v: unknown): string {
  if (v instanceof Tensor) {
    const names: Partial<Record<DType, string>> = { float32: 'Float', float64: 'Double', float16: 'Half', int64: 'Long', int32: 'Int', bool: 'Bool', uint8: 'Byte', bfloat16: 'BFloat16' };
    return `torch.${names[v.dtype] ?? v.dtype}Tensor`;
  }
  return pyTypeName(v);
}

const BASE_HOOK_KEYS = [
  '_backward_pre_hooks',
  '_backward_hooks',
  '_is_full_backward_hook',
  '_forward_hooks',
  '_forward_hooks_with_kwargs',
  '_forward_hooks_always_called',
  '_forward_pre_hooks',
  '_forward_pre_hooks_with_kwargs',
  '_state_dict_hooks',
  '_state_dict_pre_hooks',
  '_load_state_dict_pre_hooks',
  '_load_state_dict_post_hooks',
] as const;

/** The 17 keys `nn.Module.__init__` puts in `__dict__` (torch 2.11), in order. */
export const MODULE_BASE_KEYS: readonly string[] = [
  'training',
  '_parameters',
  '_buffers',
  '_non_persistent_buffers_set',
  ...BASE_HOOK_KEYS,
  '_modules',
];

/** Python value kinds a layer attribute is pickled as. */
export type PyAttrKind =
  | 'int'
  | 'float' // written as a Python float even when integral (PyFloat)
  | 'floatOrNone'
  | 'bool'
  | 'str'
  | 'tuple' // JS array -> PyTuple
  | 'intOrTuple' // number stays int, array -> PyTuple
  | 'raw'; // written as is

/** One pickled layer attribute: Python name, JS property (or a getter for computed ones), kind. */
export interface PyAttrSpec {
  /** The attribute's Python name (`in_features`). */
  py: string;
  /** The JS property it maps to (`inFeatures`), when it has one. */
  js?: string;
  /** How the value converts between pickle and JS. */
  kind: PyAttrKind;
  /** Computed value (e.g. `_reversed_padding_repeated_twice`); not restored on load. */
  get?: (m: Module) => unknown;
}

export function toPyAttr(kind: PyAttrKind, v: unknown): unknown {
  switch (kind) {
    case 'float':
      return typeof v === 'number' && Number.isInteger(v) ? new PyFloat(v) : v;
    case 'floatOrNone':
      return v === null || v === undefined ? null : typeof v === 'number' && Number.isInteger(v) ? new PyFloat(v) : v;
    case 'tuple':
      return Array.isArray(v) && !(v instanceof PyTuple) ? PyTuple.fromItems(v) : v;
    case 'intOrTuple':
      return Array.isArray(v) && !(v instanceof PyTuple) ? PyTuple.fromItems(v) : v;
    default:
      return v;
  }
}

function fromPyAttr(kind: PyAttrKind, v: unknown): unknown {
  const num = (x: unknown): unknown => (x instanceof PyFloat ? x.value : typeof x === 'bigint' ? Number(x) : x);
  switch (kind) {
    case 'int':
    case 'float':
    case 'floatOrNone':
      return num(v);
    case 'tuple':
      return Array.isArray(v) ? Array.from(v, num) : v;
    case 'intOrTuple':
      return Array.isArray(v) ? Array.from(v, num) : num(v);
    default:
      return v;
  }
}

interface ModuleInternals {
  _parameters: Map<string, Parameter | null>;
  _buffers: Map<string, Tensor | null>;
  _nonPersistentBuffersSet: Set<string>;
  _modules: Map<string, Module | null>;
  _training: boolean;
  _pyGlobalOverride?: [string, string];
  _pyVersion?: number;
}

function setInternal(m: Module, key: '_pyGlobalOverride' | '_pyVersion', value: unknown): void {
  Object.defineProperty(m, key, { value, writable: true, enumerable: false, configurable: true });
}

const INTERNAL_KEYS = new Set(['_parameters', '_buffers', '_nonPersistentBuffersSet', '_modules', '_training', '_pyGlobalOverride', '_pyVersion']);

function setAttr(target: Module, name: string, value: unknown): void {
  const t = target as unknown as ModuleInternals;
  // A tensor stored on a module lives as long as the module, whatever torch.tidy scope made it.
  if (value instanceof Tensor) keep(value);
  const params = t._parameters;
  const buffers = t._buffers;
  const modules = t._modules;
  const removeFrom = (...maps: (Map<string, unknown> | Set<string> | 'dict')[]): void => {
    for (const m of maps) {
      if (m === 'dict') {
        if (Object.prototype.hasOwnProperty.call(target, name)) Reflect.deleteProperty(target, name);
      } else m.delete(name);
    }
  };
  if (value instanceof Parameter) {
    removeFrom('dict', buffers, modules, t._nonPersistentBuffersSet);
    params.set(name, value);
    return;
  }
  if (params.has(name)) {
    if (value === null) params.set(name, null);
    else if (value !== undefined) {
      throw torchsaveError('E_INVALID_ARGUMENT', `cannot assign '${tensorTypeName(value)}' as parameter '${name}' (torch.nn.Parameter or None expected)`);
    }
    return;
  }
  if (value instanceof Module) {
    removeFrom('dict', params, buffers, t._nonPersistentBuffersSet);
    modules.set(name, value);
    return;
  }
  if (modules.has(name)) {
    if (value === null) modules.set(name, null);
    else if (value !== undefined) {
      throw torchsaveError('E_INVALID_ARGUMENT', `cannot assign '${pyTypeName(value)}' as child module '${name}' (torch.nn.Module or None expected)`);
    }
    return;
  }
  if (buffers.has(name)) {
    if (value === null || value instanceof Tensor) buffers.set(name, value);
    else if (value !== undefined) {
      throw torchsaveError('E_INVALID_ARGUMENT', `cannot assign '${pyTypeName(value)}' as buffer '${name}' (torch.Tensor or None expected)`);
    }
    return;
  }
  Reflect.defineProperty(target, name, { value, writable: true, enumerable: true, configurable: true });
}

const handler: ProxyHandler<Module> = {
  get(target, prop, receiver) {
    if (typeof prop === 'string' && !INTERNAL_KEYS.has(prop)) {
      const t = target as unknown as ModuleInternals;
      if (t._parameters.has(prop)) return t._parameters.get(prop);
      if (t._buffers.has(prop)) return t._buffers.get(prop);
      if (t._modules.has(prop)) return t._modules.get(prop);
    }
    return Reflect.get(target, prop, receiver);
  },
  has(target, prop) {
    if (typeof prop === 'string') {
      const t = target as unknown as ModuleInternals;
      if (t._parameters.has(prop) || t._buffers.has(prop) || t._modules.has(prop)) return true;
    }
    return Reflect.has(target, prop);
  },
  set(target, prop, value, receiver) {
    if (typeof prop !== 'string' || INTERNAL_KEYS.has(prop)) return Reflect.set(target, prop, value, receiver);
    // Accessors on the class (e.g. `training`) keep their setter semantics.
    const desc = findAccessor(target, prop);
    if (desc?.set) {
      desc.set.call(receiver, value);
      return true;
    }
    setAttr(target, prop, value);
    return true;
  },
  defineProperty(target, prop, desc) {
    if (typeof prop !== 'string' || INTERNAL_KEYS.has(prop) || !('value' in desc) || desc.enumerable === false) {
      return Reflect.defineProperty(target, prop, desc);
    }
    setAttr(target, prop, desc.value);
    return true;
  },
  deleteProperty(target, prop) {
    if (typeof prop === 'string') {
      const t = target as unknown as ModuleInternals;
      if (t._parameters.delete(prop) || t._modules.delete(prop)) return true;
      if (t._buffers.delete(prop)) {
        t._nonPersistentBuffersSet.delete(prop);
        return true;
      }
    }
    return Reflect.deleteProperty(target, prop);
  },
};

function findAccessor(obj: object, prop: string): PropertyDescriptor | undefined {
  let o: object | null = Object.getPrototypeOf(obj);
  while (o) {
    const d = Object.getOwnPropertyDescriptor(o, prop);
    if (d) return d.get || d.set ? d : undefined;
    o = Object.getPrototypeOf(o);
  }
  return undefined;
}

function hasOwnStatic(ctor: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(ctor, key);
}

/** Converts a pickled child (already converted, or a PyObject of an unregistered class). */
function childFromPy(v: unknown): Module | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Module) return v;
  if (v instanceof PyObject) {
    const cls = lookupPyClass(v.fullName) as unknown as typeof Module | undefined;
    if (cls && typeof cls.fromPyObject === 'function') return cls.fromPyObject(v) as Module;
    if (looksLikeModule(v)) return Module.fromPyObject(v);
  }
  throw torchsaveError('E_UNSUPPORTED_CLASS', `a submodule is a ${pyTypeName(v)}, not an nn.Module`);
}

/** True when a PyObject's state has the shape of a pickled `nn.Module`. */
export function looksLikeModule(obj: PyObject): boolean {
  const st = pyState(obj);
  return st !== undefined && st.has('_parameters') && st.has('_modules');
}

function pyState(obj: PyObject): Map<string, unknown> | undefined {
  const st = obj.state;
  if (st instanceof Map) return st as Map<string, unknown>;
  if (Array.isArray(st) && st[0] instanceof Map) return st[0] as Map<string, unknown>;
  return undefined;
}

/**
 * `torch.nn.Module`: subclass it, assign layers, parameters and buffers as fields (they register
 * themselves, as in PyTorch), and override `forward`. State dicts, pickling and `call` work as
 * PyTorch's do.
 */
export class Module implements PyReducible {
  /** Python module the class pickles under (default `__main__`; built-ins set torch's path). */
  static pyModule?: string;
  /** Python class name (default: the JS class name). */
  static pyName?: string;
  /** `_version` written into state-dict `_metadata` (BatchNorm: 2). */
  static _version = 1;
  /** Layer attributes pickled after the base keys, in Python's order. */
  static pyAttrs: readonly PyAttrSpec[] = [];

  constructor() {
    for (const [k, v] of [
      ['_parameters', new Map()],
      ['_buffers', new Map()],
      ['_nonPersistentBuffersSet', new Set()],
      ['_modules', new Map()],
      ['_training', true],
    ] as const) {
      Object.defineProperty(this, k, { value: v, writable: true, enumerable: false, configurable: true });
    }
    return new Proxy(this, handler);
  }

  private get _i(): ModuleInternals {
    return this as unknown as ModuleInternals;
  }

  /** `Module.training`: whether the module is in training mode (dropout active, batch norm updating its running stats). */
  get training(): boolean {
    return this._i._training;
  }
  /** Sets training mode on this module only; {@link Module.train} also sets it on the children. */
  set training(mode: boolean) {
    this._i._training = mode;
  }

  // --- registration ---

  /** `register_buffer`: a tensor saved in the state dict (unless `persistent` is false). */
  registerBuffer(name: string, t: Tensor | null, persistent = true): void {
    if (typeof name !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', `buffer name should be a string. Got ${pyTypeName(name)}`);
    if (name.includes('.')) throw torchsaveError('E_INVALID_ARGUMENT', `buffer name can't contain "."`);
    if (name === '') throw torchsaveError('E_INVALID_ARGUMENT', `buffer name can't be empty string ""`);
    if (name in this && !this._i._buffers.has(name)) throw torchsaveError('E_INVALID_ARGUMENT', `attribute '${name}' already exists`);
    if (t !== null && !(t instanceof Tensor)) {
      throw torchsaveError('E_INVALID_ARGUMENT', `cannot assign '${pyTypeName(t)}' object to buffer '${name}' (torch Tensor or None required)`);
    }
    if (t) keep(t);
    this._i._buffers.set(name, t);
    if (persistent) this._i._nonPersistentBuffersSet.delete(name);
    else this._i._nonPersistentBuffersSet.add(name);
  }

  /** `register_parameter`. */
  registerParameter(name: string, p: Parameter | null): void {
    if (name.includes('.')) throw torchsaveError('E_INVALID_ARGUMENT', `parameter name can't contain "."`);
    if (name === '') throw torchsaveError('E_INVALID_ARGUMENT', `parameter name can't be empty string ""`);
    if (name in this && !this._i._parameters.has(name)) throw torchsaveError('E_INVALID_ARGUMENT', `attribute '${name}' already exists`);
    if (p !== null && !(p instanceof Parameter)) {
      throw torchsaveError('E_INVALID_ARGUMENT', `cannot assign '${tensorTypeName(p)}' object to parameter '${name}' (torch.nn.Parameter or None required)`);
    }
    this._i._parameters.set(name, p);
  }

  /** `add_module` / `register_module`. */
  addModule(name: string, module: Module | null): void {
    if (module !== null && !(module instanceof Module)) throw torchsaveError('E_INVALID_ARGUMENT', `${pyTypeName(module)} is not a Module subclass`);
    if (name.includes('.')) throw torchsaveError('E_INVALID_ARGUMENT', `module name can't contain ".", got: ${name}`);
    if (name === '') throw torchsaveError('E_INVALID_ARGUMENT', `module name can't be empty string ""`);
    if (name in this && !this._i._modules.has(name)) throw torchsaveError('E_INVALID_ARGUMENT', `attribute '${name}' already exists`);
    this._i._modules.set(name, module);
  }
  /** `register_module` / `add_module`: a child under `name` (`null` keeps the slot empty). */
  registerModule(name: string, module: Module | null): void {
    this.addModule(name, module);
  }

  /** The submodule at a dotted path (`get_submodule`). */
  getSubmodule(target: string): Module {
    if (target === '') return this;
    let mod: Module = this;
    for (const item of target.split('.')) {
      const next = mod._i._modules.get(item);
      if (!next) throw torchsaveError('E_INVALID_ARGUMENT', `${mod.pyGlobal()[1]} has no attribute \`${item}\``);
      mod = next;
    }
    return mod;
  }

  // --- traversal (arrays rather than generators: they are small and easier to use) ---

  /** `named_modules()`: this module and every descendant, depth-first, with dotted names. */
  namedModules(opts: { prefix?: string; removeDuplicate?: boolean } = {}, memo = new Set<Module>()): [string, Module][] {
    const prefix = opts.prefix ?? '';
    const removeDuplicate = opts.removeDuplicate ?? true;
    const out: [string, Module][] = [];
    if (memo.has(this)) return out;
    if (removeDuplicate) memo.add(this);
    out.push([prefix, this]);
    for (const [name, m] of this._i._modules) {
      if (!m) continue;
      const sub = prefix + (prefix ? '.' : '') + name;
      out.push(...m.namedModules({ prefix: sub, removeDuplicate }, memo));
    }
    return out;
  }
  /** `modules()`: this module and every descendant. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }
  /** `named_children()`: the direct submodules with their names. */
  namedChildren(): [string, Module][] {
    const memo = new Set<Module>();
    const out: [string, Module][] = [];
    for (const [name, m] of this._i._modules) {
      if (m && !memo.has(m)) {
        memo.add(m);
        out.push([name, m]);
      }
    }
    return out;
  }
  /** `children()`: the direct submodules. */
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  private namedMembers<T>(get: (m: Module) => Map<string, T | null>, prefix: string, recurse: boolean, removeDuplicate: boolean): [string, T][] {
    const memo = new Set<unknown>();
    const mods: [string, Module][] = recurse ? this.namedModules({ prefix, removeDuplicate }) : [[prefix, this]];
    const out: [string, T][] = [];
    for (const [modPrefix, m] of mods) {
      for (const [k, v] of get(m)) {
        if (v === null || v === undefined || memo.has(v)) continue;
        if (removeDuplicate) memo.add(v);
        out.push([modPrefix + (modPrefix ? '.' : '') + k, v]);
      }
    }
    return out;
  }
  /** `named_parameters()`: every parameter (recursively by default) with its dotted name. */
  namedParameters(opts: { prefix?: string; recurse?: boolean; removeDuplicate?: boolean } = {}): [string, Parameter][] {
    return this.namedMembers((m) => m._i._parameters, opts.prefix ?? '', opts.recurse ?? true, opts.removeDuplicate ?? true);
  }
  /** `parameters()`: every parameter, recursively by default (what optimizers take). */
  parameters(recurse = true): Parameter[] {
    return this.namedParameters({ recurse }).map(([, p]) => p);
  }
  /** `named_buffers()`: every buffer (running stats, ...) with its dotted name. */
  namedBuffers(opts: { prefix?: string; recurse?: boolean; removeDuplicate?: boolean } = {}): [string, Tensor][] {
    return this.namedMembers((m) => m._i._buffers, opts.prefix ?? '', opts.recurse ?? true, opts.removeDuplicate ?? true);
  }
  /** `buffers()`: every buffer, recursively by default. */
  buffers(recurse = true): Tensor[] {
    return this.namedBuffers({ recurse }).map(([, b]) => b);
  }

  // --- modes and bulk operations ---

  /** `train(mode)`: sets training mode on this module and its descendants. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.children()) m.train(mode);
    return this;
  }
  /** `eval()`: `train(false)` (dropout off, batch norm uses its running stats). */
  eval(): this {
    return this.train(false);
  }
  /** `apply(fn)`: calls `fn` on every descendant, then on this module. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.children()) m.apply(fn);
    fn(this);
    return this;
  }
  /** `requires_grad_()`: sets `requiresGrad` on every parameter. */
  requiresGrad_(requiresGrad = true): this {
    for (const p of this.parameters()) p.requiresGrad_(requiresGrad);
    return this;
  }
  /** Clears gradients (`set_to_none=True` by default, like PyTorch 2.x). */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (p.grad === null) continue;
      if (setToNone) p.grad = null;
      else p.grad.zero_();
    }
  }

  /**
   * `module.to(dtype)` casts floating-point parameters and buffers; `module.to(device)` moves
   * them (devices other than the CPU need the libtorch addon). Both make new Parameter objects
   * (build optimizers after this, as PyTorch's docs advise).
   */
  to(target: DType | Device | string): this {
    const isDevice = target instanceof Device || /^(cpu|cuda|mps|meta|xpu)(:\d+)?$/.test(target);
    const dev = isDevice ? new Device(target) : undefined;
    const dtype = isDevice ? undefined : (target as DType);
    // Moved tensors are stored on the module: made untracked, so no torch.tidy frees them.
    const move = (t: Tensor): Tensor => untracked(() => (dev ? t.to(dev) : t.isFloatingPoint() && t.dtype !== dtype ? t.to(dtype!) : t));
    for (const m of this.modules()) {
      for (const [k, p] of m._i._parameters) {
        if (!p) continue;
        const moved = move(p);
        if (moved !== p) m._i._parameters.set(k, new Parameter(moved.detach(), p.requiresGrad));
      }
      for (const [k, b] of m._i._buffers) {
        if (b) m._i._buffers.set(k, move(b));
      }
    }
    return this;
  }
  /** `module.cuda(device)`. */
  cuda(device: number | string = 0): this {
    return this.to(typeof device === 'number' ? `cuda:${device}` : device);
  }
  /** `float()`: floating parameters and buffers to float32. */
  float(): this {
    return this.to('float32');
  }
  /** `double()`: floating parameters and buffers to float64. */
  double(): this {
    return this.to('float64');
  }
  /** `half()`: floating parameters and buffers to float16. */
  half(): this {
    return this.to('float16');
  }
  /** `cpu()`: parameters and buffers to the CPU. */
  cpu(): this {
    return this.to('cpu');
  }

  // --- compute (wired to the libtorch addon later) ---

  /**
   * The forward pass: layers run libtorch's kernels (the libtorch addon; without it they
   * throw E_DEVICE_UNAVAILABLE); a subclass of your own overrides this.
   */
  forward(..._args: unknown[]): unknown {
    throw torchsaveError('E_NOT_IMPLEMENTED', `Module [${this.pyGlobal()[1]}] is missing the required "forward" function`);
  }
  /**
   * `model(x)`: runs `forward`, typed as this module's own `forward`: `nn.Linear.call(x: Tensor)`
   * returns `Tensor`, and a subclass that declares `forward(x: Tensor): Tensor` gets a `call`
   * with that signature without writing one.
   */
  call(...args: Parameters<this['forward']>): ReturnType<this['forward']> {
    return (this.forward as (...a: unknown[]) => unknown)(...args) as ReturnType<this['forward']>;
  }

  // --- state dict ---

  /** Override to save non-tensor state under `<prefix>_extra_state` (PyTorch's get_extra_state). */
  getExtraState?(): unknown;
  /** Override with {@link getExtraState} to restore that state from a state dict (PyTorch's set_extra_state). */
  setExtraState?(state: unknown): void;

  /** `state_dict()`: an OrderedDict of detached tensors (sharing storage) with `_metadata`. */
  stateDict(opts: StateDictOptions = {}): OrderedDict<string, Tensor> {
    const dest = (opts.destination ?? new OrderedDict<string, unknown>()) as OrderedDict<string, unknown>;
    if (!dest._metadata) dest._metadata = new OrderedDict();
    this.saveStateDictRec(dest, opts.prefix ?? '', opts.keepVars ?? false);
    return dest as OrderedDict<string, Tensor>;
  }

  private saveStateDictRec(dest: OrderedDict<string, unknown>, prefix: string, keepVars: boolean): void {
    dest._metadata?.set(prefix.slice(0, -1), new Map<string, unknown>([['version', this.moduleVersion()]]));
    this._saveToStateDict(dest, prefix, keepVars);
    for (const [name, m] of this._i._modules) if (m) m.saveStateDictRec(dest, prefix + name + '.', keepVars);
  }

  /** This module's own parameters and persistent buffers (PyTorch's `_save_to_state_dict`). */
  protected _saveToStateDict(dest: Map<string, unknown>, prefix: string, keepVars: boolean): void {
    for (const [name, p] of this._i._parameters) if (p) dest.set(prefix + name, keepVars ? p : p.detach());
    for (const [name, b] of this._i._buffers) {
      if (b && !this._i._nonPersistentBuffersSet.has(name)) dest.set(prefix + name, keepVars ? b : b.detach());
    }
    if (this.getExtraState) dest.set(prefix + '_extra_state', this.getExtraState());
  }

  /** `_version` for `_metadata`. */
  moduleVersion(): number {
    return this._i._pyVersion ?? (this.constructor as typeof Module)._version;
  }

  /**
   * `load_state_dict(state_dict, strict=True, assign=False)`: PyTorch's algorithm and error
   * text. Throws `E_STATE_DICT_MISMATCH` (with `missingKeys`, `unexpectedKeys`, `errorMsgs`
   * on the error); when the keys differ only by a `module.` prefix the message ends with a hint.
   */
  loadStateDict(stateDict: StateDict | Record<string, unknown>, opts: LoadStateDictOptions = {}): IncompatibleKeys {
    const strict = opts.strict ?? true;
    const assign = opts.assign ?? false;
    let entries: Iterable<[unknown, unknown]>;
    if (stateDict instanceof Map) entries = stateDict;
    else if (typeof stateDict === 'object' && stateDict !== null && !(stateDict instanceof Tensor) && !Array.isArray(stateDict)) entries = Object.entries(stateDict);
    else throw torchsaveError('E_INVALID_ARGUMENT', `Expected state_dict to be dict-like, got ${pyTypeName(stateDict)}.`);
    const metadata = stateDict instanceof OrderedDict ? stateDict._metadata : undefined;
    const sd = new OrderedDict<string, unknown>();
    for (const [k, v] of entries) sd.set(String(k), v);
    if (metadata) sd._metadata = metadata;
    const missingKeys: string[] = [];
    const unexpectedKeys: string[] = [];
    const errorMsgs: string[] = [];
    const load = (module: Module, local: Map<string, unknown>, prefix: string): void => {
      const md = metadata?.get(prefix.slice(0, -1));
      const localMetadata = new Map<string, unknown>(md instanceof Map ? md : []);
      if (assign) localMetadata.set('assign_to_params_buffers', true);
      module._loadFromStateDict(local, prefix, localMetadata, true, missingKeys, unexpectedKeys, errorMsgs);
      for (const [name, child] of module._i._modules) {
        if (!child) continue;
        const childPrefix = prefix + name + '.';
        const childSd = new Map<string, unknown>();
        for (const [k, v] of local) if (k.startsWith(childPrefix)) childSd.set(k, v);
        load(child, childSd, childPrefix);
      }
    };
    load(this, sd, '');
    if (strict) {
      if (unexpectedKeys.length > 0) errorMsgs.unshift(`Unexpected key(s) in state_dict: ${unexpectedKeys.map((k) => `"${k}"`).join(', ')}. `);
      if (missingKeys.length > 0) errorMsgs.unshift(`Missing key(s) in state_dict: ${missingKeys.map((k) => `"${k}"`).join(', ')}. `);
    }
    if (errorMsgs.length > 0) {
      const pytorchMessage = `Error(s) in loading state_dict for ${this.pyGlobal()[1]}:\n\t${errorMsgs.join('\n\t')}`;
      const hint = strict ? prefixHint(missingKeys, unexpectedKeys) : '';
      throw torchsaveError('E_STATE_DICT_MISMATCH', pytorchMessage + hint, { missingKeys, unexpectedKeys, errorMsgs, pytorchMessage });
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Copies this module's own entries from `stateDict` (PyTorch's `_load_from_state_dict`). */
  protected _loadFromStateDict(
    stateDict: Map<string, unknown>,
    prefix: string,
    localMetadata: Map<string, unknown>,
    strict: boolean,
    missingKeys: string[],
    unexpectedKeys: string[],
    errorMsgs: string[],
  ): void {
    const i = this._i;
    const localState = new Map<string, Tensor>();
    for (const [k, v] of i._parameters) if (v) localState.set(k, v);
    for (const [k, v] of i._buffers) if (v && !i._nonPersistentBuffersSet.has(k)) localState.set(k, v);
    const assign = localMetadata.get('assign_to_params_buffers') === true;
    for (const [name, param] of localState) {
      const key = prefix + name;
      if (stateDict.has(key)) {
        const raw = stateDict.get(key);
        if (!(raw instanceof Tensor)) {
          errorMsgs.push(`While copying the parameter named "${key}", expected torch.Tensor or Tensor-like object from checkpoint but received <class '${pyTypeName(raw)}'>`);
          continue;
        }
        let input: Tensor = raw;
        if (param.dim() === 0 && input.dim() === 1 && input.size(0) === 1) input = input.view([]);
        const ps = param.size();
        const is = input.size();
        if (ps.length !== is.length || ps.some((d, j) => d !== is[j])) {
          errorMsgs.push(`size mismatch for ${key}: copying a param with shape ${is} from checkpoint, the shape in current model is ${ps}.`);
          continue;
        }
        try {
          if (assign) {
            let v: Tensor = input;
            if (param instanceof Parameter) {
              v = input instanceof Parameter ? input.requiresGrad_(param.requiresGrad) : new Parameter(input, param.requiresGrad);
            }
            setAttr(this as Module, name, v);
          } else {
            // PyTorch copies under no_grad: a parameter that requires grad is a leaf
            // libtorch will not write in place while autograd records.
            noGradIfLoaded(() => param.copy_(input));
          }
        } catch (e) {
          // The checkpoint's mapped file changed on disk: not a mismatch, the load is stale.
          if ((e as { code?: unknown }).code === 'E_FILE_CHANGED') throw e;
          errorMsgs.push(
            `While copying the parameter named "${key}", whose dimensions in the model are ${ps} and whose dimensions in the checkpoint are ${is}, an exception occurred : ('${(e as Error).message}',).`,
          );
        }
      } else if (strict) {
        missingKeys.push(key);
      }
    }
    const extraKey = prefix + '_extra_state';
    if (this.setExtraState) {
      if (stateDict.has(extraKey)) this.setExtraState(stateDict.get(extraKey));
      else if (strict) missingKeys.push(extraKey);
    } else if (strict && stateDict.has(extraKey)) {
      unexpectedKeys.push(extraKey);
    }
    if (strict) {
      for (const key of stateDict.keys()) {
        if (!key.startsWith(prefix) || key === extraKey) continue;
        const rest = key.slice(prefix.length);
        const dot = rest.indexOf('.');
        if (dot >= 0) {
          if (!i._modules.has(rest.slice(0, dot))) unexpectedKeys.push(key);
        } else if (!localState.has(rest)) {
          unexpectedKeys.push(key);
        }
      }
    }
  }

  // --- pickling ---

  /** `[module, qualname]` this module pickles as. */
  pyGlobal(): [string, string] {
    if (this._i._pyGlobalOverride) return this._i._pyGlobalOverride;
    const ctor = this.constructor as typeof Module;
    const mod = hasOwnStatic(ctor, 'pyModule') && ctor.pyModule ? ctor.pyModule : '__main__';
    const name = hasOwnStatic(ctor, 'pyName') && ctor.pyName ? ctor.pyName : ctor.name;
    return [mod, name];
  }

  /** Layer attributes in Python's `__dict__` order after the base keys. */
  protected pyAttributes(): [string, unknown][] {
    const out: [string, unknown][] = [];
    const seenJs = new Set<string>();
    const ctor = this.constructor as typeof Module;
    for (const spec of ctor.pyAttrs) {
      if (spec.js) seenJs.add(spec.js);
      const v = spec.get ? spec.get(this) : spec.js ? (this as unknown as Record<string, unknown>)[spec.js] : undefined;
      out.push([spec.py, toPyAttr(spec.kind, v)]);
    }
    for (const k of Object.keys(this)) {
      if (seenJs.has(k)) continue;
      const v = (this as unknown as Record<string, unknown>)[k];
      if (typeof v === 'function' || v === undefined) continue;
      out.push([k, v]);
    }
    return out;
  }

  /** The `__dict__` Python's pickle would write for this module (torch 2.11 key order). */
  pyStateDict(): Map<string, unknown> {
    const i = this._i;
    const st = new Map<string, unknown>();
    st.set('training', i._training);
    st.set('_parameters', new Map(i._parameters));
    st.set('_buffers', new Map(i._buffers));
    st.set('_non_persistent_buffers_set', new Set(i._nonPersistentBuffersSet));
    for (const k of BASE_HOOK_KEYS) st.set(k, k === '_is_full_backward_hook' ? null : new OrderedDict());
    st.set('_modules', new Map(i._modules));
    for (const [k, v] of this.pyAttributes()) st.set(k, v);
    return st;
  }

  /** How the module pickles: `torch.save(model)` writes what Python's `torch.load` rebuilds. */
  [pyReduce](): PyObject {
    const [mod, name] = this.pyGlobal();
    return new PyObject(mod, name, 'newobj', new PyTuple(), this.pyStateDict());
  }

  /**
   * Rebuilds a module from a pickled Python module (`cls.__new__` + `__setstate__`): no
   * constructor or field initialiser of the subclass runs. On `nn.Module` itself it builds a
   * generic module that keeps the Python class name (its state dict and a re-save work;
   * forward needs the real class).
   */
  static fromPyObject<T extends Module>(this: abstract new (...a: never[]) => T, obj: PyObject): T {
    if (!(obj instanceof PyObject)) throw torchsaveError('E_INVALID_ARGUMENT', `fromPyObject expects a PyObject, got ${pyTypeName(obj)}`);
    const st = pyState(obj);
    if (!st || !st.has('_parameters') || !st.has('_modules')) {
      throw torchsaveError('E_UNSUPPORTED_CLASS', `${obj.fullName} is not a pickled torch.nn.Module (its state has no _parameters/_modules)`);
    }
    const m = Reflect.construct(Module, [], this) as T;
    const i = m as unknown as ModuleInternals;
    // Internal slots stay non-enumerable so they never leak into the pickled __dict__.
    if ((this as unknown) === Module) setInternal(m, '_pyGlobalOverride', [obj.module, obj.name]);
    const specs = new Map<string, PyAttrSpec>();
    for (const s of (this as unknown as typeof Module).pyAttrs) specs.set(s.py, s);
    for (const [k, v] of st) {
      switch (k) {
        case 'training':
          i._training = Boolean(v);
          break;
        case '_parameters':
          for (const [pk, pv] of v as Map<string, unknown>) {
            i._parameters.set(pk, pv === null || pv === undefined ? null : pv instanceof Parameter ? pv : new Parameter(pv as Tensor));
          }
          break;
        case '_buffers':
          for (const [bk, bv] of v as Map<string, unknown>) i._buffers.set(bk, (bv ?? null) as Tensor | null);
          break;
        case '_non_persistent_buffers_set':
          for (const n of v as Iterable<string>) i._nonPersistentBuffersSet.add(n);
          break;
        case '_modules':
          for (const [mk, mv] of v as Map<string, unknown>) i._modules.set(mk, childFromPy(mv));
          break;
        case '_version':
          setInternal(m, '_pyVersion', Number(v));
          break;
        default: {
          if ((BASE_HOOK_KEYS as readonly string[]).includes(k)) break; // hooks cannot run here
          const spec = specs.get(k);
          if (spec) {
            if (spec.js) (m as unknown as Record<string, unknown>)[spec.js] = fromPyAttr(spec.kind, v);
          } else {
            Reflect.defineProperty(m, k, { value: v, writable: true, enumerable: true, configurable: true });
          }
        }
      }
    }
    (m as Module)._afterPyLoad();
    return m;
  }

  /** Hook for classes that derive state after a pickle load (RNN weight lists). */
  protected _afterPyLoad(): void {}

  // --- printing ---

  /** PyTorch's `extra_repr`. */
  extraRepr(): string {
    return '';
  }

  toString(): string {
    const extra = this.extraRepr();
    const lines: string[] = extra ? extra.split('\n') : [];
    for (const [name, m] of this._i._modules) {
      const s = (m ? m.toString() : 'None').split('\n').join('\n  ');
      lines.push(`(${name}): ${s}`);
    }
    const name = this.pyGlobal()[1];
    if (lines.length === 0) return `${name}()`;
    if (this._i._modules.size === 0 && lines.length === 1) return `${name}(${lines[0]})`;
    return `${name}(\n  ${lines.join('\n  ')}\n)`;
  }
  /** Node's `util.inspect`: PyTorch's module repr. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function prefixHint(missing: string[], unexpected: string[]): string {
  if (missing.length === 0 && unexpected.length === 0) return '';
  const strip = (k: string): string => (k.startsWith('module.') ? strip(k.slice(7)) : k);
  const missingSet = new Set(missing.map(strip));
  const unexpectedStripped = unexpected.map(strip);
  const unexpectedHasPrefix = unexpected.some((k) => k.startsWith('module.'));
  const missingHasPrefix = missing.some((k) => k.startsWith('module.'));
  if (unexpectedHasPrefix && unexpectedStripped.every((k) => missingSet.has(k))) {
    return (
      '\n\tHint (torchsave): the checkpoint\'s keys start with "module." (saved from nn.DataParallel / DistributedDataParallel). ' +
      "Strip it with nn.utils.consumePrefixInStateDictIfPresent(stateDict, 'module.') (or nn.utils.stripModulePrefix(stateDict) for nested wrappers), or load into new nn.DataParallel(model)."
    );
  }
  if (missingHasPrefix && missing.every((k) => unexpected.includes(strip(k)))) {
    return '\n\tHint (torchsave): this model is wrapped in nn.DataParallel but the checkpoint was saved from the plain model: load into model.module instead.';
  }
  return '';
}

/** `tensor(0, dtype=long)`, for BatchNorm's version migration. */
export function zeroLong(): Tensor {
  return tensor(0, { dtype: 'int64' });
}

/**
 * Asserts that a loaded value is a module. A whole-model file loaded without the class
 * mapping holds a PyObject: the error names the class and the `classes` option to pass.
 */
export function expectModule<T extends Module = Module>(value: unknown): T {
  if (value instanceof Module) return value as T;
  if (value instanceof PyObject) {
    const hint = looksLikeModule(value)
      ? `it is a pickled nn.Module of class ${value.fullName}, which has no TypeScript class here. Pass torch.load(path, { weightsOnly: false, classes: { '${value.fullName}': YourClass } }) with a class that extends nn.Module, or call nn.Module.fromPyObject(obj) for a generic module (state dict only)`
      : `it is a pickled ${value.fullName}, not an nn.Module`;
    throw torchsaveError('E_UNSUPPORTED_CLASS', `expected an nn.Module, but ${hint}`, { className: value.fullName });
  }
  throw torchsaveError('E_INVALID_ARGUMENT', `expected an nn.Module, got ${pyTypeName(value)}`);
}
