/**
 * `torch.nn`: modules, layers, wrappers and state-dict utilities. Importing this registers
 * every built-in layer under torch's Python path (`torch.nn.modules.linear.Linear`, ...) so a
 * whole-model file loaded with `weightsOnly: false` rebuilds them without a `classes` entry.
 */
import { Parameter } from '../tensor';
import { registerPyClass } from '../values';
import * as layers from './layers';
import * as containers from './containers';
import * as rnn from './rnn';
import * as parallelMod from './parallel';
import * as utilsMod from './utils';
import { Module } from './module';

export {
  Module,
  nnError,
  expectModule,
  looksLikeModule,
  pyTypeName,
  MODULE_BASE_KEYS,
  LIBTORCH_HINT,
  type StateDict,
  type StateDictOptions,
  type LoadStateDictOptions,
  type IncompatibleKeys,
  type PyAttrSpec,
  type PyAttrKind,
} from './module';
export * from './layers';
export * from './containers';
export * from './rnn';
export { DataParallel, DistributedDataParallel, type DataParallelOptions, type DistributedDataParallelOptions, type DeviceLike } from './parallel';
export { Parameter };
export * as init from './init';
export * as functional from './functional';
export { pyRepr, pyFloatRepr, pyPrintLine } from './pyrepr';

/** `torch.nn.parallel`. */
export const parallel = {
  /** `nn.parallel.DataParallel`: the wrapper class (also `nn.DataParallel`). */
  DataParallel: parallelMod.DataParallel,
  /** `nn.parallel.DistributedDataParallel`: the state-dict wrapper (also `nn.DistributedDataParallel`). */
  DistributedDataParallel: parallelMod.DistributedDataParallel,
  /** `nn.parallel.data_parallel`: one forward split across devices, without a wrapper module. */
  dataParallel: parallelMod.dataParallel,
  /** `nn.parallel.scatter`: splits inputs along `dim` into one chunk per device. */
  scatter: parallelMod.scatter,
  /** `nn.parallel.gather`: concatenates per-device outputs along `dim` on the target device. */
  gather: parallelMod.gather,
  /** `nn.parallel.replicate`: copies of a module, one per device. */
  replicate: parallelMod.replicate,
  /** `nn.parallel.parallel_apply`: runs each module on its inputs. */
  parallelApply: parallelMod.parallelApply,
};

/** `torch.nn.utils` / `torch.nn.modules.utils` state-dict helpers. */
export const utils = {
  /** `consume_prefix_in_state_dict_if_present`: strips `prefix` from the keys (and `_metadata`) in place. */
  consumePrefixInStateDictIfPresent: utilsMod.consumePrefixInStateDictIfPresent,
  /** A copy of the state dict with every leading `module.` (or `prefix`) removed from the keys that have it, `_metadata` renamed too. */
  stripModulePrefix: utilsMod.stripModulePrefix,
  /** A copy with the first `n` (default 7) characters cut from every key: the `k[7:]` loop. */
  dropFirstChars: utilsMod.dropFirstChars,
};

const BUILTINS: (typeof Module & { pyModule?: string; pyName?: string })[] = [
  layers.Identity,
  layers.Linear,
  layers.Bilinear,
  layers.Conv1d,
  layers.Conv2d,
  layers.Conv3d,
  layers.ConvTranspose2d,
  layers.MaxPool2d,
  layers.AvgPool2d,
  layers.AdaptiveAvgPool2d,
  layers.BatchNorm1d,
  layers.BatchNorm2d,
  layers.BatchNorm3d,
  layers.LayerNorm,
  layers.GroupNorm,
  layers.Embedding,
  layers.Dropout,
  layers.ReLU,
  layers.GELU,
  layers.Sigmoid,
  layers.Tanh,
  layers.Softmax,
  layers.Flatten,
  layers.CrossEntropyLoss,
  layers.NLLLoss,
  layers.MSELoss,
  containers.Sequential,
  containers.ModuleList,
  containers.ModuleDict,
  rnn.LSTM,
  rnn.GRU,
  parallelMod.DataParallel,
] as unknown as (typeof Module)[];

for (const cls of BUILTINS) registerPyClass(`${cls.pyModule}.${cls.pyName}`, cls);
