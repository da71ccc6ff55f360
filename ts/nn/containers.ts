/** `Sequential`, `ModuleList`, `ModuleDict`: submodules under string keys ('0', '1', ... or names). */
import { torchsaveError } from '../errors';
import { Module } from './module';

function modulesOf(m: Module): Map<string, Module | null> {
  return (m as unknown as { _modules: Map<string, Module | null> })._modules;
}

export class Sequential extends Module implements Iterable<Module> {
  static override pyModule = 'torch.nn.modules.container';
  static override pyName = 'Sequential';
  /** `new Sequential(a, b, c)` or `new Sequential(new Map([['conv', a], ...]))` (OrderedDict form). */
  constructor(...args: Module[] | [Map<string, Module>]) {
    super();
    if (args.length === 1 && args[0] instanceof Map) {
      for (const [k, v] of args[0]) this.addModule(k, v);
    } else {
      (args as Module[]).forEach((m, i) => this.addModule(String(i), m));
    }
  }
  /** `len(seq)`: the number of child modules. */
  get length(): number {
    return modulesOf(this).size;
  }
  /** `seq[i]` (negative counts from the end). */
  at(i: number): Module {
    const mods = [...modulesOf(this).values()];
    const j = i < 0 ? i + mods.length : i;
    const m = mods[j];
    if (m === undefined) throw torchsaveError('E_INVALID_ARGUMENT', `index ${i} is out of range`);
    return m as Module;
  }
  /** `Sequential.append`: adds `m` as the next child (named by its index); returns the container. */
  append(m: Module): this {
    this.addModule(String(modulesOf(this).size), m);
    return this;
  }
  /** `iter(seq)`: the children in order. */
  *[Symbol.iterator](): Iterator<Module> {
    for (const m of modulesOf(this).values()) if (m) yield m;
  }
  /** Runs each module on the previous one's output. */
  override forward(input: unknown): unknown {
    let x = input;
    for (const m of this) x = m.forward(x);
    return x;
  }
}

export class ModuleList extends Module implements Iterable<Module> {
  static override pyModule = 'torch.nn.modules.container';
  static override pyName = 'ModuleList';
  constructor(modules: Iterable<Module> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  /** `len(modules)`: the number of modules. */
  get length(): number {
    return modulesOf(this).size;
  }
  /** `modules[i]` (negative counts from the end); out of range throws `E_INVALID_ARGUMENT`. */
  at(i: number): Module {
    const mods = [...modulesOf(this).values()];
    const m = mods[i < 0 ? i + mods.length : i];
    if (m === undefined) throw torchsaveError('E_INVALID_ARGUMENT', `index ${i} is out of range`);
    return m as Module;
  }
  /** `ModuleList.append`: adds `m` at the end (named by its index); returns the list. */
  append(m: Module): this {
    this.addModule(String(modulesOf(this).size), m);
    return this;
  }
  /** `ModuleList.extend`: appends every module of `ms`; returns the list. */
  extend(ms: Iterable<Module>): this {
    for (const m of ms) this.append(m);
    return this;
  }
  /** `iter(modules)`: the modules in order. */
  *[Symbol.iterator](): Iterator<Module> {
    for (const m of modulesOf(this).values()) if (m) yield m;
  }
}

export class ModuleDict extends Module {
  static override pyModule = 'torch.nn.modules.container';
  static override pyName = 'ModuleDict';
  constructor(modules?: Map<string, Module> | Record<string, Module>) {
    super();
    if (modules) this.update(modules);
  }
  /** `ModuleDict.update`: adds or replaces the given modules, in their order. */
  update(modules: Map<string, Module> | Record<string, Module>): void {
    const entries = modules instanceof Map ? modules.entries() : Object.entries(modules);
    for (const [k, v] of entries) this.addModule(k, v);
  }
  /** `modules[key]`, or undefined when absent. */
  get(key: string): Module | undefined {
    return modulesOf(this).get(key) ?? undefined;
  }
  /** `modules[key] = m`: adds or replaces a module. */
  set(key: string, m: Module): void {
    this.addModule(key, m);
  }
  /** `ModuleDict.keys`: the names, in insertion order. */
  keys(): string[] {
    return [...modulesOf(this).keys()];
  }
  /** `len(modules)`: the number of modules. */
  get size(): number {
    return modulesOf(this).size;
  }
}
