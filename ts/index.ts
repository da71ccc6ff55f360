/**
 * torchsave: PyTorch's model persistence for Node.js and Electron.
 *
 * ```ts
 * import * as torch from 'torchsave';
 * torch.save(model.stateDict(), 'model.pt');
 * const sd = torch.load('model.pt');               // weightsOnly by default, like torch >= 2.6
 * ```
 *
 * Naming: PyTorch's names in camelCase for JS (`state_dict` → `stateDict`, `weights_only` →
 * `weightsOnly`); class names verbatim; data inside state dicts keeps PyTorch's own names.
 */
export {
  load,
  loadAsync,
  loadWithInfo,
  loadStateDict,
  loadStateDictAsync,
  isStateDict,
  isTensor,
  save,
  saveAsync,
  markPyFloat,
  wasPyFloat,
  type LoadOptions,
  type LoadAsyncOptions,
  type LoadStateDictOptions,
  type LoadStateDictAsyncOptions,
  type SaveOptions,
  type SaveAsyncOptions,
  type CancelledError,
  type SaveTarget,
  type WritableLike,
  type MapLocation,
  type NamedPyClass,
  type LoadInfo,
} from './serialization';
export {
  loadSafetensors,
  loadSafetensorsWithMetadata,
  saveSafetensors,
  type SafetensorsLoadOptions,
  type SafetensorsSaveOptions,
} from './safetensors';
/** `torch.jit.load` / `loadAsync`: TorchScript archives read as data ({@link jit.ScriptModule}). */
export * as jit from './jit';
/** `torch.distributed.checkpoint`: distributed checkpoint folders in and out ({@link distributed.checkpoint.save}). */
export * as distributed from './distributed';
export {
  convert,
  convertMany,
  discoverInputs,
  inspectMany,
  diff,
  parseSize,
  type ConvertOptions,
  type ConvertRunOptions,
  type ConvertReport,
  type ConvertStatus,
  type ConvertProgress,
  type ConvertCancelledError,
  type ConvertTarget,
  type ConvertDType,
  type RenameRule,
  type InspectSummary,
  type DiffResult,
} from './convert';
export {
  scan,
  scanAsync,
  scanDiscover,
  type ScanReport,
  type ScanFinding,
  type ScanSeverity,
  type ScanError,
  type ScanPickle,
  type ScanOptions,
} from './scan';
export { repr } from './repr';
export { type TorchsaveError, type TorchsaveErrorCode, isTorchsaveError } from './errors';
export {
  Tensor,
  Parameter,
  UntypedStorage,
  Generator,
  tensor,
  zeros,
  ones,
  empty,
  full,
  rand,
  randn,
  arange,
  type TensorInit,
  type FactoryOptions,
  type Dims,
  type Nested,
  type QuantizerInfo,
  type TensorSubclassInfo,
} from './tensor';
export { SparseTensor } from './sparse';
export {
  OrderedDict,
  PyTuple,
  PyObject,
  PyFloat,
  PyComplex,
  PyByteArray,
  PyFrozenSet,
  PyGlobal,
  Size,
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  pyReduce,
  registerPyClass,
  type PyClass,
  type PyReducible,
  type PyObjectKind,
} from './values';
export { type DType, type TypedArray, DTYPES } from './dtype';
export type { DTypeName } from './generated/contract';
export { backends, cuda, setNumThreads, type BackendAvailability } from './backends';
export { noGrad, enableGrad, setGradEnabled, isGradEnabled, manualSeed } from './autograd';
export { tidy, keep, dispose } from './scope';
export { cat, stack } from './nn/functional';
export * as nn from './nn';
export * as optim from './optim';

import { native } from './raw/native';

/** Version of the Rust core inside the loaded addon. */
export function coreVersion(): string {
  return native().coreVersion();
}

// dtype constants, as `torch.float32` etc.: every dtype of the core's table (generated)
export * from './generated/dtype-constants';
// PyTorch's aliases
/** `torch.float`: alias of {@link float32}. */
export const float = 'float32' as const;
/** `torch.double`: alias of {@link float64}. */
export const double = 'float64' as const;
/** `torch.half`: alias of {@link float16}. */
export const half = 'float16' as const;
/** `torch.cfloat`: alias of {@link complex64}. */
export const cfloat = 'complex64' as const;
/** `torch.cdouble`: alias of {@link complex128}. */
export const cdouble = 'complex128' as const;
/** `torch.short`: alias of {@link int16}. */
export const short = 'int16' as const;
/** `torch.int`: alias of {@link int32}. */
export const int = 'int32' as const;
/** `torch.long`: alias of {@link int64}. */
export const long = 'int64' as const;
