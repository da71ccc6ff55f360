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
  DataParallel: parallelMod.DataParallel,
  DistributedDataParallel: parallelMod.DistributedDataParallel,
  dataParallel: parallelMod.dataParallel,
  scatter: parallelMod.scatter,
  gather: parallelMod.gather,
  replicate: parallelMod.replicate,
  parallelApply: parallelMod.parallelApply,
};

/** `torch.nn.utils` / `torch.nn.modules.utils` state-dict helpers. */
export const utils = {
  consumePrefixInStateDictIfPresent: utilsMod.consumePrefixInStateDictIfPresent,
  stripModulePrefix: utilsMod.stripModulePrefix,
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
