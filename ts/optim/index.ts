/** `torch.optim`: optimizers whose state dicts match torch 2.11 byte for byte once saved. */
export { Optimizer, optimError, toPyKey, type ParamGroup, type ParamGroupInput, type ParamsInput, type OptimizerState, type OptimizerStateDictMap } from './optimizer';
export { SGD, Adam, AdamW, RMSprop, Adagrad, type SGDOptions, type AdamOptions, type RMSpropOptions, type AdagradOptions } from './optimizers';
