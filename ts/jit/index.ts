/**
 * `torch.jit`: TorchScript archives (`torch.jit.save`, `torch.jit.trace(...).save`) read as
 * data. Nothing in the file runs: the module tree, its parameters, buffers and attributes,
 * the TorchScript source (for display) and the `_extra_files` come from
 * crate/core's TorchScript reader (`container/torchscript.rs`), which classifies parameters
 * and buffers the way torch's class types do and computes the state dict; this layer only
 * wraps its descriptor. With the libtorch addon, the same object also runs: `forward` and the
 * module's other methods are libtorch's compiled TorchScript (ts/jit/run.ts), compiled from the
 * same file on first use, on the `device` given to `load` (else the CPU).
 *
 * ```ts
 * const m = torch.jit.load('model.jit');
 * model.loadStateDict(m.stateDict());
 * console.log(m.code);
 * ```
 */
import { torchsaveError } from '../errors';
import { CompiledModule, type JitSource } from './run';
import { lt } from '../libtorch/addon';
import { native, type NativeLoadOptions } from '../raw/native';
import type { RawLoaded } from '../raw/tree';
import { fromRaw, fromRawAsync } from '../serialization/from-raw';
import { abortable, isAborted } from '../serialization/cancel';
import type { LoadAsyncOptions, LoadOptions } from '../serialization/options';
import type { Tensor } from '../tensor';
import { Device, OrderedDict, PyObject } from '../values';

/** Options of {@link load}: torch.load's that apply to an archive (`weightsOnly` judges its
 * pickles by TorchScript's own globals; `mmap`, `verifyCrc`, `externalBuffers`). */
export type JitLoadOptions = Pick<LoadOptions, 'weightsOnly' | 'safeGlobals' | 'mmap' | 'verifyCrc' | 'externalBuffers'> & {
  /** `map_location` of the compiled module that runs `forward` on the libtorch addon
   * (`'cpu'`, `'cuda'`, `'cuda:1'`); default `'cpu'`. The data view is read on the CPU. */
  device?: string | Device;
};
/** Options of {@link loadAsync}: {@link JitLoadOptions} plus an `AbortSignal` (`E_CANCELLED`). */
export type JitLoadAsyncOptions = JitLoadOptions & Pick<LoadAsyncOptions, 'signal'>;

type Desc = Map<string, unknown>;

function field<T>(d: Desc, key: string): T {
  if (!d.has(key)) throw torchsaveError('E_INTERNAL', `the TorchScript descriptor has no '${key}'`);
  return d.get(key) as T;
}

/**
 * A TorchScript module as data: `torch.jit.load(path)`'s `RecursiveScriptModule`, without its
 * compiled methods. Names follow PyTorch (`stateDict` = `state_dict`).
 */
export class ScriptModule {
  /** The class's qualified name (`__torch__.torch.nn.modules.linear.Linear`). */
  readonly qualifiedName: string;
  /** `original_name`: the class name without its module (`Linear`). */
  readonly originalName: string;
  /** `module.training`. */
  training: boolean;
  /** The TorchScript source of `forward` as written in the archive's `code/`, or null. */
  readonly code: string | null;
  /** The module object itself (`__torch__.<qualname>` with its attributes as state). */
  readonly object: PyObject;
  private readonly params: Map<string, Tensor>;
  private readonly bufs: Map<string, Tensor>;
  private readonly kids: Map<string, ScriptModule>;
  /** Attributes that are neither parameters, buffers nor submodules (`training` included). */
  readonly attributes: Map<string, unknown>;
  private readonly sd: OrderedDict<string, Tensor> | undefined;

  /** @internal built by {@link load} from the core's descriptor. */
  constructor(d: Desc, stateDict?: OrderedDict<string, Tensor>) {
    this.qualifiedName = field<string>(d, 'qualname');
    this.originalName = this.qualifiedName.slice(this.qualifiedName.lastIndexOf('.') + 1);
    this.training = field<boolean | null>(d, 'training') ?? true;
    this.code = field<string | null>(d, 'forward');
    this.object = field<PyObject>(d, 'object');
    this.params = field<Map<string, Tensor>>(d, 'parameters');
    this.bufs = field<Map<string, Tensor>>(d, 'buffers');
    this.kids = new Map([...field<Map<string, Desc>>(d, 'children')].map(([n, c]) => [n, new ScriptModule(c)]));
    this.attributes = field<Map<string, unknown>>(d, 'attributes');
    this.sd = stateDict;
  }

  /** `module.state_dict()`: parameters, buffers, then submodules' (`name.` prefixed), as
   * detached tensors; equal to PyTorch's key for key. */
  stateDict(): OrderedDict<string, Tensor> {
    const out = new OrderedDict<string, Tensor>();
    if (this.sd) {
      for (const [k, t] of this.sd) out.set(k, t.detach());
      return out;
    }
    for (const [k, t] of this.namedStateEntries('')) out.set(k, t.detach());
    return out;
  }

  private *namedStateEntries(prefix: string): Generator<[string, Tensor]> {
    for (const [n, t] of this.params) yield [prefix + n, t];
    for (const [n, t] of this.bufs) yield [prefix + n, t];
    for (const [n, c] of this.kids) yield* c.namedStateEntries(`${prefix}${n}.`);
  }

  /** `named_parameters(recurse)`: each tensor once, submodules' with `name.` prefixes. */
  namedParameters(recurse = true): [string, Tensor][] {
    return this.named((m) => m.params, recurse);
  }

  /** `named_buffers(recurse)`. */
  namedBuffers(recurse = true): [string, Tensor][] {
    return this.named((m) => m.bufs, recurse);
  }

  /** `ScriptModule.parameters()`: the parameters' values, this module's and (with `recurse`) its submodules'. */
  parameters(recurse = true): Tensor[] {
    return this.namedParameters(recurse).map(([, t]) => t);
  }

  /** `ScriptModule.buffers()`: the buffers' values, this module's and (with `recurse`) its submodules'. */
  buffers(recurse = true): Tensor[] {
    return this.namedBuffers(recurse).map(([, t]) => t);
  }

  private named(pick: (m: ScriptModule) => Map<string, Tensor>, recurse: boolean): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of recurse ? this.namedModules() : [['', this] as [string, ScriptModule]]) {
      for (const [n, t] of pick(m)) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([prefix ? `${prefix}.${n}` : n, t]);
      }
    }
    return out;
  }

  /** `named_children()`. */
  namedChildren(): [string, ScriptModule][] {
    return [...this.kids];
  }

  /** `ScriptModule.children()`: the direct submodules, in definition order. */
  children(): ScriptModule[] {
    return [...this.kids.values()];
  }

  /** `named_modules()`: this module as `''`, then every submodule by dotted name. */
  namedModules(prefix = ''): [string, ScriptModule][] {
    const out: [string, ScriptModule][] = [[prefix, this]];
    for (const [n, c] of this.kids) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** An attribute, parameter, buffer or submodule by name (`getattr(module, name)`). */
  getattr(name: string): unknown {
    if (this.params.has(name)) return this.params.get(name);
    if (this.bufs.has(name)) return this.bufs.get(name);
    if (this.kids.has(name)) return this.kids.get(name);
    if (this.attributes.has(name)) return this.attributes.get(name);
    throw torchsaveError('E_INVALID_ARGUMENT', `${this.originalName} has no attribute '${name}'`);
  }

  /** `train(mode)`: sets the flag here and in every submodule (data only). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** `eval()` = `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** @internal the root's compiled module; submodules have none. */
  protected compiledModule(): CompiledModule | undefined {
    return undefined;
  }

  private runner(what: string): CompiledModule {
    const c = this.compiledModule();
    if (c) return c;
    lt(`ScriptModule.${what} (running TorchScript)`);
    throw torchsaveError(
      'E_NOT_IMPLEMENTED',
      `${this.originalName} is a submodule: libtorch runs the loaded module's methods; call them on the module torch.jit.load returned`,
    );
  }

  /**
   * `module(*args)`: runs the compiled `forward` on the libtorch addon (E_DEVICE_UNAVAILABLE
   * without it; the data view works either way), in this module's `training` mode. Tensors,
   * numbers, strings, booleans, null, `PyTuple`s, arrays and `Map`s go in and come out; an
   * integral number is a TorchScript `int` (`PyFloat` makes a `float`). Errors TorchScript
   * raises are `E_COMPUTE` with its message.
   */
  forward(...args: unknown[]): unknown {
    return this.runner('forward').call('forward', args, this.training);
  }

  /** Runs another compiled method by name (`module.encode(x)` in Python is
   * `callMethod('encode', x)`); the same values as {@link forward}. */
  callMethod(name: string, ...args: unknown[]): unknown {
    return this.runner(name).call(name, args, this.training);
  }

  /** `module.to(device)`: moves the compiled module (compiling it first if needed); the data
   * view keeps the values as read from the file. Returns `this`. */
  to(device: string | Device): this {
    this.runner('to').to(new Device(device).toString());
    return this;
  }
}

/** What {@link load} returns: the root {@link ScriptModule} plus the archive's other records. */
export class ScriptArchiveModule extends ScriptModule {
  /** `_extra_files`: name → bytes, as `torch.jit.load(p, _extra_files=...)` fills them. */
  readonly extraFiles: Map<string, Uint8Array>;
  /** `constants.pkl`'s values (`CONSTANTS.c0`, ...). */
  readonly constants: unknown[];
  /** Every `code/` source: path under `code/` → TorchScript text. */
  readonly codeFiles: Map<string, string>;
  /** The archive's format version record. */
  readonly version: string | null;
  private readonly compiled: CompiledModule;

  /** @internal */
  constructor(root: Desc, source: JitSource, device: string) {
    super(field<Desc>(root, 'module'), field<OrderedDict<string, Tensor>>(root, 'state_dict'));
    this.compiled = new CompiledModule(source, device);
    this.extraFiles = field<Map<string, Uint8Array>>(root, 'extra_files');
    const c = field<unknown>(root, 'constants');
    this.constants = Array.isArray(c) ? [...c] : [];
    this.codeFiles = field<Map<string, string>>(root, 'code');
    this.version = field<string | null>(root, 'version');
  }

  /** @internal */
  protected override compiledModule(): CompiledModule {
    return this.compiled;
  }

  /** The device the compiled module runs on (`'cpu'` unless `load`'s `device` or {@link to} said otherwise). */
  get device(): Device {
    return new Device(this.compiled.device);
  }

  /** Frees libtorch's compiled module now (the data view stays; a later `forward` compiles again). */
  dispose(): void {
    this.compiled.dispose();
  }

  /** `using m = torch.jit.load(...)` frees the compiled module at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function nativeOptions(opts: JitLoadOptions): NativeLoadOptions {
  const out: NativeLoadOptions = {};
  if (opts.weightsOnly !== undefined) out.weightsOnly = opts.weightsOnly;
  if (opts.mmap !== undefined) out.mmap = opts.mmap;
  if (opts.verifyCrc !== undefined) out.verifyCrc = opts.verifyCrc;
  if (opts.externalBuffers !== undefined) out.externalBuffers = opts.externalBuffers;
  if (opts.safeGlobals) {
    out.safeGlobals = opts.safeGlobals.map((g) => (typeof g === 'string' ? g : g.pyName));
  }
  return out;
}

function checkSource(f: unknown): asserts f is string | Uint8Array {
  if (typeof f !== 'string' && !(f instanceof Uint8Array)) {
    throw torchsaveError('E_INVALID_ARGUMENT', 'torch.jit.load expects a path (string) or the file bytes (Uint8Array/Buffer)');
  }
}

function build(value: unknown, f: JitSource, opts: JitLoadOptions): ScriptArchiveModule {
  if (!(value instanceof Map)) throw torchsaveError('E_INTERNAL', 'the TorchScript reader returned no descriptor');
  return new ScriptArchiveModule(value as Desc, f, new Device(opts.device ?? 'cpu').toString());
}

const DATA_ONLY = { classes: false } as const;

/**
 * `torch.jit.load(f)`: reads a TorchScript archive as data (never runs its code). A
 * torch.save checkpoint is `E_UNKNOWN_FORMAT` (use `torch.load`), a torch.package archive
 * `E_TORCH_PACKAGE`; with `weightsOnly` (the default) a pickle naming a global TorchScript's
 * own unpickler would not resolve is `E_UNSAFE_GLOBAL`.
 */
export function load(f: string | Uint8Array, opts: JitLoadOptions = {}): ScriptArchiveModule {
  checkSource(f);
  const raw: RawLoaded = native().jitLoad(f, nativeOptions(opts));
  return build(fromRaw(raw, DATA_ONLY, typeof f === 'string' ? f : '<buffer>'), f, opts);
}

/** {@link load} off the event loop; `signal` cancels it (`E_CANCELLED`). */
export async function loadAsync(f: string | Uint8Array, opts: JitLoadAsyncOptions = {}): Promise<ScriptArchiveModule> {
  checkSource(f);
  const { signal, ...rest } = opts;
  const label = typeof f === 'string' ? f : '<buffer>';
  return abortable(signal, `jit.loadAsync(${label})`, async () => {
    const raw = await native().jitLoadAsync(f, nativeOptions(rest));
    if (isAborted(signal)) return undefined as unknown as ScriptArchiveModule;
    return build(await fromRawAsync(raw, DATA_ONLY, label), f, rest);
  });
}
