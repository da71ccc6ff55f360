/**
 * `nn.DataParallel` (with `torch.nn.parallel`'s scatter / replicate / parallelApply / gather)
 * and `nn.parallel.DistributedDataParallel` as a persistence wrapper. The wrapped model is
 * submodule `module`, so state-dict keys gain `module.` exactly as in PyTorch.
 *
 * Devices are resolved when the wrapper is built, as `DataParallel.__init__` does (torch
 * 2.11): without CUDA (no libtorch addon, or no GPU) `deviceIds` is `[]` and forward runs the
 * module directly; with CUDA `deviceIds` defaults to every device, `outputDevice` to
 * `deviceIds[0]`, and with a single device the module is moved there at construction (build
 * optimizers after wrapping: our `Module.to` makes new Parameter objects).
 *
 * forward on several devices does what PyTorch's does: the inputs are scattered (each tensor
 * chunked along `dim`, also inside arrays, Maps and plain objects; other values are given to
 * every replica), the module is replicated (parameters `p.to(device)`, which is
 * differentiable, so gradients flow back to the originals on `deviceIds[0]`; replica 0 shares
 * the originals, buffers and all, so BatchNorm's running statistics come from device 0
 * only), the replicas run, and their outputs are gathered on `outputDevice` (tensors
 * concatenated along `dim`, arrays/Maps/objects recursively). PyTorch runs replicas on
 * threads; here they run one after another on the JS thread, and since CUDA kernels are
 * queued asynchronously on each device's stream the GPUs still compute concurrently.
 *
 * Pickled attributes mirror torch 2.11: a CPU-only torch returns early from `__init__` after
 * `self.module = module; self.device_ids = []`, so `__dict__` is the base keys plus
 * `device_ids = []` (verified with the venv's torch on CPU); with devices it is the base keys
 * plus `dim`, `device_ids`, `output_device` and `src_device_obj`.
 */
import { torchsaveError } from '../errors';
import { Tensor } from '../tensor';
import { Device, OrderedDict, PyTuple } from '../values';
import { loadLibtorch } from '../libtorch/addon';
import { cat } from './functional';
import { Module, type PyAttrSpec } from './module';

/** A device as `torch.nn.parallel` takes it: an index (`cuda:N`), `'cuda:1'`, `'cpu'`, or a Device. */
/** A device: a CUDA index (`0`), a string (`cuda:1`, `cpu`) or a {@link Device}. */
export type DeviceLike = number | string | Device;

/** The keyword arguments of `nn.DataParallel(module, device_ids, output_device, dim)`. */
export interface DataParallelOptions {
  /** CUDA devices to use (default: all of them). Ignored without CUDA, as in PyTorch. */
  deviceIds?: DeviceLike[] | null;
  /** Where outputs are gathered (default `deviceIds[0]`; `-1` or `'cpu'` for the host). */
  outputDevice?: DeviceLike | null;
  /** The dimension inputs are split along and outputs concatenated along (default 0). */
  dim?: number;
}

/** `torch.device` of a DeviceLike; numbers are CUDA indices, `-1` is the CPU (gather's convention). */
export function toDevice(d: DeviceLike): Device {
  if (d instanceof Device) return d.type === 'cuda' && d.index === null ? new Device('cuda', 0) : d;
  if (typeof d === 'number') {
    if (!Number.isInteger(d) || d < -1) throw torchsaveError('E_INVALID_ARGUMENT', `invalid device index ${d}`);
    return d === -1 ? new Device('cpu') : new Device('cuda', d);
  }
  const dev = new Device(d);
  return dev.type === 'cuda' && dev.index === null ? new Device('cuda', 0) : dev;
}

function cudaIndex(d: DeviceLike): number {
  const dev = toDevice(d);
  if (dev.type !== 'cuda') throw torchsaveError('E_INVALID_ARGUMENT', `DataParallel device ids must be CUDA devices, got '${dev}'`);
  return dev.index ?? 0;
}

/** CUDA devices libtorch sees; 0 without the addon (never throws, like `torch.cuda.device_count()`). */
function cudaDeviceCount(): number {
  const addon = loadLibtorch().addon;
  if (!addon) return 0;
  const info = addon.buildInfo();
  return info.cudaAvailable ? info.cudaDeviceCount : 0;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * `torch.nn.parallel.scatter(inputs, target_gpus, dim)`: one argument list per device. Each
 * tensor is chunked along `dim` (so there may be fewer pieces than devices, as `torch.chunk`
 * gives) and each piece moved to its device (differentiably); arrays, Maps and plain objects
 * are scattered element-wise; other values go to every device as they are. Like Python's
 * `zip`, the result has as many entries as the shortest scattered member.
 */
export function scatter(inputs: readonly unknown[], devices: readonly DeviceLike[], dim = 0): unknown[][] {
  if (devices.length === 0) throw torchsaveError('E_INVALID_ARGUMENT', 'scatter needs at least one device');
  const devs = devices.map(toDevice);
  const zip = (cols: unknown[][]): unknown[][] => {
    const n = Math.min(...cols.map((c) => c.length));
    return Array.from({ length: n }, (_, i) => cols.map((c) => c[i]));
  };
  const map = (obj: unknown): unknown[] => {
    if (obj instanceof Tensor) {
      const pieces = obj.chunk(devs.length, dim);
      return pieces.map((p, i) => p.to(devs[i]!));
    }
    if (obj instanceof PyTuple && obj.length > 0) return zip([...obj].map(map)).map((row) => PyTuple.fromItems(row));
    if (Array.isArray(obj) && obj.length > 0) return zip(obj.map(map));
    if (obj instanceof Map && obj.size > 0) {
      const keys = [...obj.keys()];
      const Ctor: new (e: [unknown, unknown][]) => Map<unknown, unknown> = obj instanceof OrderedDict ? OrderedDict : Map;
      return zip([...obj.values()].map(map)).map((vals) => new Ctor(keys.map((k, i) => [k, vals[i]] as [unknown, unknown])));
    }
    if (isPlainObject(obj) && Object.keys(obj).length > 0) {
      const keys = Object.keys(obj);
      return zip(keys.map((k) => map(obj[k]))).map((vals) => Object.fromEntries(keys.map((k, i) => [k, vals[i]])));
    }
    return devs.map(() => obj);
  };
  if (inputs.length === 0) return [];
  return map([...inputs]) as unknown[][];
}

interface ReplicaInternals {
  _parameters: Map<string, Tensor | null>;
  _buffers: Map<string, Tensor | null>;
  _nonPersistentBuffersSet: Set<string>;
  _modules: Map<string, Module | null>;
  _training: boolean;
}

// The Module constructor's own slots: the replica gets fresh ones, filled below.
const SLOT_KEYS = new Set(['_parameters', '_buffers', '_nonPersistentBuffersSet', '_modules', '_training']);

/**
 * One structural copy of a module tree per device (`torch.nn.parallel.replicate`): same
 * classes and attributes, parameters replaced by `p.to(device)` (differentiable: a replica's
 * gradients flow back to the original parameters), buffers moved. On the module's own
 * device a replica shares its tensors. Tied parameters and shared submodules stay tied and
 * shared within each replica. Replicas are for forward passes; train the original.
 */
export function replicate<M extends Module>(network: M, devices: readonly DeviceLike[]): M[] {
  return devices.map((d) => {
    const dev = toDevice(d);
    const tensors = new Map<Tensor, Tensor>();
    const modules = new Map<Module, Module>();
    const move = (t: Tensor): Tensor => {
      let moved = tensors.get(t);
      if (!moved) {
        moved = t.to(dev);
        tensors.set(t, moved);
      }
      return moved;
    };
    const copy = (m: Module): Module => {
      const hit = modules.get(m);
      if (hit) return hit;
      const r = Reflect.construct(Module, [], m.constructor) as Module;
      modules.set(m, r);
      const src = m as unknown as ReplicaInternals;
      const dst = r as unknown as ReplicaInternals;
      // Attributes (layer hyper-parameters, flags, non-enumerable slots) as they are: Python's
      // `replica.__dict__ = self.__dict__.copy()`.
      for (const key of Reflect.ownKeys(m)) {
        if (typeof key === 'string' && SLOT_KEYS.has(key)) continue;
        const desc = Object.getOwnPropertyDescriptor(m, key);
        if (desc) Reflect.defineProperty(r, key, desc);
      }
      dst._training = src._training;
      for (const n of src._nonPersistentBuffersSet) dst._nonPersistentBuffersSet.add(n);
      for (const [k, p] of src._parameters) dst._parameters.set(k, p ? move(p) : null);
      for (const [k, b] of src._buffers) dst._buffers.set(k, b ? move(b) : null);
      for (const [k, c] of src._modules) dst._modules.set(k, c ? copy(c) : null);
      return r;
    };
    return copy(network) as M;
  });
}
/**
 * `torch.nn.parallel.parallel_apply`: runs `modules[i].call(...inputs[i])`. Calls are issued
 * one after another; on CUDA their kernels run concurrently on their devices.
 */
export function parallelApply(modules: readonly Module[], inputs: readonly (readonly unknown[])[]): unknown[] {
  if (modules.length !== inputs.length) {
    throw torchsaveError('E_INVALID_ARGUMENT', `parallelApply: ${modules.length} modules but ${inputs.length} inputs`);
  }
  return modules.map((m, i) => m.call(...inputs[i]!));
}

let warnedScalars = false;

/**
 * `torch.nn.parallel.gather(outputs, target_device, dim)`: tensors are moved to
 * `targetDevice` (differentiably) and concatenated along `dim` (0-d tensors become a vector,
 * with PyTorch's warning); arrays, PyTuples, Maps and plain objects are gathered member-wise;
 * null stays null. Other values (numbers, strings) cannot be gathered, as in PyTorch.
 */
export function gather(outputs: readonly unknown[], targetDevice: DeviceLike, dim = 0): unknown {
  if (outputs.length === 0) throw torchsaveError('E_INVALID_ARGUMENT', 'gather needs at least one output');
  const dev = toDevice(targetDevice);
  const rec = (outs: readonly unknown[]): unknown => {
    const out = outs[0];
    if (out instanceof Tensor) {
      if (!outs.every((o) => o instanceof Tensor)) throw torchsaveError('E_INVALID_ARGUMENT', 'gather: replicas returned a tensor and a non-tensor at the same place');
      let ts = (outs as Tensor[]).map((t) => t.to(dev));
      if (dim === 0 && ts.every((t) => t.dim() === 0)) {
        if (!warnedScalars) {
          warnedScalars = true;
          process.emitWarning('Was asked to gather along dimension 0, but all input tensors were scalars; will instead unsqueeze and return a vector.', { code: 'TORCHSAVE_GATHER_SCALARS' });
        }
        ts = ts.map((t) => t.view([1]));
      }
      return cat(ts, dim);
    }
    if (out === null || out === undefined) return out;
    if (out instanceof Map) {
      if (!outs.every((o) => o instanceof Map && o.size === out.size)) throw torchsaveError('E_INVALID_ARGUMENT', 'All dicts must have the same number of keys');
      const Ctor: new (e: [unknown, unknown][]) => Map<unknown, unknown> = out instanceof OrderedDict ? OrderedDict : Map;
      return new Ctor([...out.keys()].map((k) => [k, rec(outs.map((o) => (o as Map<unknown, unknown>).get(k)))] as [unknown, unknown]));
    }
    if (out instanceof PyTuple || Array.isArray(out)) {
      const n = Math.min(...outs.map((o) => (Array.isArray(o) ? o.length : 0)));
      const items = Array.from({ length: n }, (_, i) => rec(outs.map((o) => (o as unknown[])[i])));
      return out instanceof PyTuple ? PyTuple.fromItems(items) : items;
    }
    if (isPlainObject(out)) {
      const keys = Object.keys(out);
      if (!outs.every((o) => isPlainObject(o) && Object.keys(o).length === keys.length)) throw torchsaveError('E_INVALID_ARGUMENT', 'All dicts must have the same number of keys');
      return Object.fromEntries(keys.map((k) => [k, rec(outs.map((o) => (o as Record<string, unknown>)[k]))]));
    }
    throw torchsaveError('E_INVALID_ARGUMENT', `gather: cannot gather a ${typeof out} returned by the replicas (return tensors, or arrays / Maps / objects of them)`);
  };
  return rec(outputs);
}

/**
 * The data-parallel algorithm on explicit devices, shared by `DataParallel.forward` and
 * {@link dataParallel}: scatter, then (one device) the module itself or (several) replicas
 * run and gathered on `outputDevice`. `devices[0]` must hold the module.
 */
function runParallel(module: Module, inputs: readonly unknown[], devices: readonly Device[], outputDevice: Device, dim: number): unknown {
  let scattered = scatter(inputs, devices, dim);
  if (scattered.length === 0) scattered = [[]];
  if (devices.length === 1) return module.call(...scattered[0]!);
  const used = devices.slice(0, scattered.length);
  const replicas = replicate(module, used);
  const outputs = parallelApply(replicas, scattered);
  return gather(outputs, outputDevice, dim);
}

function checkOnDevice(module: Module, src: Device): void {
  for (const t of [...module.parameters(), ...module.buffers()]) {
    if (!t.device.equals(src)) {
      throw torchsaveError('E_INVALID_ARGUMENT', `module must have its parameters and buffers on device ${src} (device_ids[0]) but found one of them on device: ${t.device}`);
    }
  }
}

/**
 * `torch.nn.parallel.data_parallel(module, inputs, device_ids, output_device, dim)`: one
 * data-parallel forward without a wrapper. `inputs` is the argument list. Defaults: every
 * CUDA device, output on `deviceIds[0]`; without CUDA (or with no devices) the module runs
 * directly. The module must already be on `deviceIds[0]`. Unlike PyTorch, CPU devices are
 * accepted (`['cpu', 'cpu']`), which runs the whole algorithm on the host.
 */
export function dataParallel<M extends Module>(
  module: M,
  inputs: unknown[] | Tensor | null,
  deviceIds?: DeviceLike[] | null,
  outputDevice?: DeviceLike | null,
  dim = 0,
): ReturnType<M['forward']> {
  const args = Array.isArray(inputs) ? [...inputs] : inputs === null || inputs === undefined ? [] : [inputs];
  const ids = deviceIds ?? Array.from({ length: cudaDeviceCount() }, (_, i) => i);
  const m: Module = module;
  // Gathering keeps the structure of one replica's output, so the result is forward's type.
  if (ids.length === 0) return m.call(...args) as ReturnType<M['forward']>;
  const devices = ids.map(toDevice);
  const src = devices[0]!;
  checkOnDevice(module, src);
  return runParallel(module, args, devices, outputDevice === undefined || outputDevice === null ? src : toDevice(outputDevice), dim) as ReturnType<M['forward']>;
}

export class DataParallel<M extends Module = Module> extends Module {
  static override pyModule = 'torch.nn.parallel.data_parallel';
  static override pyName = 'DataParallel';
  static override pyAttrs: readonly PyAttrSpec[] = [];
  /** The wrapped module (state-dict keys gain `module.`). */
  declare module: M;
  /** The devices asked for (not pickled). */
  declare requestedDeviceIds: DeviceLike[] | null;
  /** `output_device`: the CUDA index outputs are gathered on, `-1` for the host, null without CUDA. */
  declare outputDevice: number | null;
  /** `dim`: the dimension inputs are split and outputs concatenated along. */
  declare dim: number;
  declare private _deviceIds: number[];
  constructor(module: M, opts: DataParallelOptions = {}) {
    super();
    this.module = module;
    const count = cudaDeviceCount();
    const ids = count === 0 ? [] : (opts.deviceIds ?? Array.from({ length: count }, (_, i) => i)).map(cudaIndex);
    for (const id of ids) {
      if (id >= count) throw torchsaveError('E_DEVICE_UNAVAILABLE', `DataParallel: cuda:${id} is not available (torch.cuda.deviceCount() is ${count})`);
    }
    const hidden = (k: string, value: unknown): void => {
      Object.defineProperty(this, k, { value, writable: true, enumerable: false, configurable: true });
    };
    hidden('requestedDeviceIds', opts.deviceIds ?? null);
    hidden('_deviceIds', ids);
    hidden('outputDevice', ids.length === 0 ? (opts.outputDevice === undefined || opts.outputDevice === null ? null : outputIndex(opts.outputDevice)) : outputIndex(opts.outputDevice ?? ids[0]!));
    hidden('dim', opts.dim ?? 0);
    // PyTorch: `if len(self.device_ids) == 1: self.module.to(self.src_device_obj)`.
    if (ids.length === 1) module.to(`cuda:${ids[0]}`);
  }
  /** Python's `device_ids`: the CUDA indices in use, `[]` without CUDA. */
  get deviceIds(): number[] {
    return [...this._deviceIds];
  }
  /** `src_device_obj`: where the module must live (`cuda:<deviceIds[0]>`), or null without CUDA. */
  get srcDevice(): Device | null {
    return this._deviceIds.length === 0 ? null : new Device('cuda', this._deviceIds[0]!);
  }
  protected override pyAttributes(): [string, unknown][] {
    // Then any attribute the user set, as Module's own pickling would add it.
    const rest = super.pyAttributes();
    if (this._deviceIds.length === 0) return [['device_ids', []], ...rest];
    return [
      ['dim', this.dim],
      ['device_ids', [...this._deviceIds]],
      ['output_device', this.outputDevice],
      ['src_device_obj', this.srcDevice],
      ...rest,
    ];
  }
  protected override _afterPyLoad(): void {
    // Python's attributes arrive as plain properties: keep them as the wrapper's fields.
    const self = this as unknown as Record<string, unknown>;
    const take = (k: string): unknown => {
      const v = self[k];
      delete self[k];
      return v;
    };
    const ids = take('device_ids');
    const dim = take('dim');
    const out = take('output_device');
    take('src_device_obj');
    const count = cudaDeviceCount();
    const list = Array.isArray(ids) ? ids.map((x) => Number(x)) : [];
    // A file from a GPU machine opens anywhere; its devices are used only where they exist.
    const usable = list.length > 0 && list.every((i) => i < count) ? list : [];
    const hidden = (k: string, value: unknown): void => {
      Object.defineProperty(this, k, { value, writable: true, enumerable: false, configurable: true });
    };
    hidden('requestedDeviceIds', list.length > 0 ? list : null);
    hidden('_deviceIds', usable);
    hidden('outputDevice', usable.length > 0 ? (typeof out === 'number' || typeof out === 'bigint' ? Number(out) : usable[0]) : null);
    hidden('dim', typeof dim === 'number' || typeof dim === 'bigint' ? Number(dim) : 0);
  }
  /**
   * PyTorch's `DataParallel.forward`: without devices the module runs directly; otherwise the
   * inputs are scattered along `dim`, and with one device the module runs on its part, with
   * several the replicas' outputs are gathered on `outputDevice`.
   */
  override forward(...inputs: Parameters<M['forward']>): ReturnType<M['forward']> {
    const ids = this._deviceIds;
    if (ids.length === 0) return this.module.call(...inputs);
    const devices = ids.map((i) => new Device('cuda', i));
    checkOnDevice(this.module, devices[0]!);
    // Gathering keeps the structure of one replica's output (tensors concatenated along dim).
    return runParallel(this.module, inputs, devices, toDevice(this.outputDevice ?? ids[0]!), this.dim) as ReturnType<M['forward']>;
  }
}

function outputIndex(d: DeviceLike): number {
  const dev = toDevice(d);
  return dev.type === 'cpu' ? -1 : (dev.index ?? 0);
}

/** The keyword arguments of `nn.parallel.DistributedDataParallel`, kept on the wrapper (there is no process group here). */
export interface DistributedDataParallelOptions {
  /** `device_ids`: the CUDA devices of this process. */
  deviceIds?: number[] | null;
  /** `output_device`: where outputs go. */
  outputDevice?: number | null;
  /** `dim`: the dimension inputs are split along (default 0). */
  dim?: number;
  /** `broadcast_buffers`: sync buffers at every forward (PyTorch default true). */
  broadcastBuffers?: boolean;
  /** `find_unused_parameters`: tolerate parameters without gradients (PyTorch default false). */
  findUnusedParameters?: boolean;
}

/**
 * A `DistributedDataParallel` wrapper for state dicts (keys gain `module.`). Pickling the
 * wrapper itself is refused, as in practice: a DDP object needs a live process group to be
 * rebuilt, so save `ddp.module` or `ddp.stateDict()`.
 */
export class DistributedDataParallel<M extends Module = Module> extends Module {
  static override pyModule = 'torch.nn.parallel.distributed';
  static override pyName = 'DistributedDataParallel';
  /** The wrapped module (state-dict keys gain `module.`). */
  declare module: M;
  constructor(module: M, opts: DistributedDataParallelOptions = {}) {
    super();
    this.module = module;
    Object.defineProperty(this, 'options', { value: opts, enumerable: false });
  }
  override pyStateDict(): Map<string, unknown> {
    throw torchsaveError(
      'E_UNSERIALIZABLE',
      'a DistributedDataParallel wrapper cannot be pickled without a process group; save ddp.module (or ddp.stateDict()) instead',
    );
  }
  override forward(...args: Parameters<M['forward']>): ReturnType<M['forward']> {
    return this.module.call(...args);
  }
}
