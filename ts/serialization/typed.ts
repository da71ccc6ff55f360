/**
 * Typed loaders and type guards over `torch.load`'s `unknown`: `loadStateDict` checks at run
 * time that the file (or one key of a checkpoint) is a state dict and returns it as
 * `OrderedDict<string, Tensor>`; `isStateDict` / `isTensor` narrow values of your own.
 */
import { torchsaveError } from '../errors';
import { Tensor } from '../tensor';
import { OrderedDict } from '../values';
import { load, loadAsync } from './load';
import type { LoadAsyncOptions, LoadOptions } from './options';

/** `v instanceof Tensor` as a type guard (a `Parameter` is a Tensor too). */
export function isTensor(v: unknown): v is Tensor {
  return v instanceof Tensor;
}

/**
 * True for what `module.state_dict()` returns: a `Map` (an `OrderedDict` when it came from
 * PyTorch or `stateDict()`) whose keys are all strings and whose values are all tensors. An
 * empty map counts (a module without parameters). A checkpoint (`{ epoch, model_state_dict,
 * ... }`) does not: its values are not all tensors.
 */
export function isStateDict(v: unknown): v is Map<string, Tensor> {
  if (!(v instanceof Map)) return false;
  for (const [k, t] of v) if (typeof k !== 'string' || !(t instanceof Tensor)) return false;
  return true;
}

export interface LoadStateDictOptions extends LoadOptions {
  /**
   * The key of a checkpoint dict that holds the state dict (`model_state_dict`,
   * `state_dict`, ...); without it the whole file must be one.
   */
  key?: string;
}

export interface LoadStateDictAsyncOptions extends LoadAsyncOptions {
  /** See {@link LoadStateDictOptions.key}. */
  key?: string;
}

function describe(v: unknown): string {
  if (v instanceof Map) {
    const keys = [...v.keys()].slice(0, 6).map((k) => (typeof k === 'string' ? JSON.stringify(k) : String(k)));
    const bad = [...v].find(([k, t]) => typeof k !== 'string' || !(t instanceof Tensor));
    const why = bad ? `; ${JSON.stringify(String(bad[0]))} holds ${bad[1] === null ? 'None' : bad[1] instanceof Map ? 'a dict' : typeof bad[1]}, not a tensor` : '';
    return `a dict with keys [${keys.join(', ')}${v.size > 6 ? ', ...' : ''}]${why}`;
  }
  if (v === null) return 'None';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return `a ${(v as object).constructor?.name ?? 'object'}`;
  return `a ${typeof v}`;
}

function stateDictOf(value: unknown, key: string | undefined, source: string): OrderedDict<string, Tensor> {
  let v = value;
  if (key !== undefined) {
    if (typeof key !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', 'loadStateDict: key must be a string');
    if (!(v instanceof Map) || !v.has(key)) {
      throw torchsaveError('E_UNSUPPORTED_CLASS', `${source}: no key ${JSON.stringify(key)} (the file holds ${describe(v)})`);
    }
    v = v.get(key);
  }
  if (!isStateDict(v)) {
    const hint =
      v instanceof Map && [...v.values()].some(isStateDict)
        ? `; it looks like a checkpoint: pass { key: ${JSON.stringify([...v].find(([, x]) => isStateDict(x))![0])} }`
        : '; use torch.load for other values';
    throw torchsaveError('E_UNSUPPORTED_CLASS', `${source}${key === undefined ? '' : `[${JSON.stringify(key)}]`} is not a state dict (string keys, tensor values): it is ${describe(v)}${hint}`);
  }
  // A plain dict saved from Python (`{k: t}`) becomes an OrderedDict with the same order.
  return v instanceof OrderedDict ? (v as OrderedDict<string, Tensor>) : new OrderedDict(v);
}

function sourceLabel(f: string | Uint8Array): string {
  return typeof f === 'string' ? f : '<buffer>';
}

/**
 * `torch.load` for state dicts: loads `f` (weights-only by default, as `torch.load`) and
 * checks that it is one ({@link isStateDict}), or that `opts.key` of a checkpoint is.
 * Anything else throws `E_UNSUPPORTED_CLASS` naming what the file holds.
 *
 * ```ts
 * model.loadStateDict(torch.loadStateDict('model.pt'));
 * const sd = torch.loadStateDict('ckpt.tar', { key: 'model_state_dict' });
 * ```
 */
export function loadStateDict(f: string | Uint8Array, opts: LoadStateDictOptions = {}): OrderedDict<string, Tensor> {
  const { key, ...loadOpts } = opts;
  return stateDictOf(load(f, loadOpts), key, sourceLabel(f));
}

/** {@link loadStateDict} off the event loop; `signal` cancels it as in `loadAsync`. */
export async function loadStateDictAsync(f: string | Uint8Array, opts: LoadStateDictAsyncOptions = {}): Promise<OrderedDict<string, Tensor>> {
  const { key, ...loadOpts } = opts;
  return stateDictOf(await loadAsync(f, loadOpts), key, sourceLabel(f));
}
