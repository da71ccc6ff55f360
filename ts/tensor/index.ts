/**
 * Tensors: `Tensor` and `Parameter` (`./tensor`), their compute methods (`./ops`, loaded
 * here after `./tensor` so they are on the prototype before any tensor is made), storages
 * (`./storage`), CPU byte work (`./cpu`), text (`./format`), random numbers (`./random`)
 * and factories (`./factories`).
 */
export type { DType, TypedArray } from '../dtype';
export { Tensor, Parameter, contiguousStrides, type QuantizerInfo, type TensorSubclassInfo, type TensorInit } from './tensor';
import './ops';
export { UntypedStorage } from './storage';
export { Generator, defaultGenerator, manualSeed } from './random';
export { empty, zeros, ones, full, rand, randn, arange, tensor, type FactoryOptions, type Dims, type Nested } from './factories';
