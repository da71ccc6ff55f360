/**
 * `nn.DataParallel` and `nn.parallel.DistributedDataParallel` as persistence wrappers: the
 * wrapped model is submodule `module`, so state-dict keys gain `module.` exactly as in PyTorch.
 *
 * Pickled attributes mirror torch 2.11 on a machine WITHOUT an accelerator, which is what this
 * package is (compute and devices come with the libtorch addon): `DataParallel.__init__`
 * returns early after `self.module = module; self.device_ids = []`, so `__dict__` is the
 * base keys plus `device_ids = []` (verified with the venv's torch on CPU). The options are
 * kept on the JS object for when the libtorch addon drives real devices.
 */
import { Module, nnError, type PyAttrSpec } from './module';

export interface DataParallelOptions {
  deviceIds?: number[] | null;
  outputDevice?: number | null;
  dim?: number;
}

export class DataParallel<M extends Module = Module> extends Module {
  static override pyModule = 'torch.nn.parallel.data_parallel';
  static override pyName = 'DataParallel';
  static override pyAttrs: readonly PyAttrSpec[] = [{ py: 'device_ids', kind: 'raw', get: () => [] }];
  declare module: M;
  /** Requested devices (not pickled: a CPU-only torch stores `device_ids = []`). */
  declare requestedDeviceIds: number[] | null;
  declare outputDevice: number | null;
  declare dim: number;
  constructor(module: M, opts: DataParallelOptions = {}) {
    super();
    this.module = module;
    Object.defineProperty(this, 'requestedDeviceIds', { value: opts.deviceIds ?? null, writable: true, enumerable: false });
    Object.defineProperty(this, 'outputDevice', { value: opts.outputDevice ?? null, writable: true, enumerable: false });
    Object.defineProperty(this, 'dim', { value: opts.dim ?? 0, writable: true, enumerable: false });
  }
  /** Python's `device_ids`: `[]` without an accelerator. */
  get deviceIds(): number[] {
    return [];
  }
  override forward(...args: unknown[]): unknown {
    return this.module.forward(...args);
  }
}

export interface DistributedDataParallelOptions {
  deviceIds?: number[] | null;
  outputDevice?: number | null;
  dim?: number;
  broadcastBuffers?: boolean;
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
  declare module: M;
  constructor(module: M, opts: DistributedDataParallelOptions = {}) {
    super();
    this.module = module;
    Object.defineProperty(this, 'options', { value: opts, enumerable: false });
  }
  override pyStateDict(): Map<string, unknown> {
    throw nnError(
      'E_UNSERIALIZABLE',
      'a DistributedDataParallel wrapper cannot be pickled without a process group; save ddp.module (or ddp.stateDict()) instead',
    );
  }
  override forward(...args: unknown[]): unknown {
    return this.module.forward(...args);
  }
}
