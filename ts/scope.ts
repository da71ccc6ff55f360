/**
 * Memory scopes and deterministic release: `torch.tidy(fn)` frees, when `fn` returns, every
 * tensor the libtorch addon made and every tensor a load made inside it that `fn` does not
 * return; `torch.dispose(value)` frees a loaded value's memory now; `Symbol.dispose` on load
 * results and tensors makes TypeScript's `using` do the same at the end of a block.
 *
 * Why: Python frees a result the moment its last reference goes, so the allocator hands the
 * same warm memory to the next op. JS frees a result only after the garbage collector has
 * found it and Node has run its finalizer between event-loop turns, so a synchronous loop
 * keeps every intermediate alive and every op touches fresh pages (a 4 MiB op in a loop of 300
 * grows the process by 1.4 GiB; a forward pass runs 10-30% slower than PyTorch's). A scope
 * gives JS the deterministic lifetime Python gets from reference counting, as `tf.tidy` does
 * for TensorFlow.js.
 *
 * What survives a scope: what `fn` returns (tensors anywhere inside arrays, Maps, Sets and
 * objects), tensors passed to {@link keep}, tensors made before the scope, and everything the
 * library stores for later: Parameters, buffers and tensor attributes assigned to a Module,
 * optimizer state, `.grad`, `Module.to`'s moved tensors. A tensor that user code stores
 * elsewhere (a cache, a closure) must be returned or kept.
 */

import { torchsaveError } from './errors';
import type { Tensor, UntypedStorage } from './tensor';

// Node >= 20.4 defines Symbol.dispose (as Symbol.for('nodejs.dispose')); older runtimes get
// the same symbol, so `using` and our [Symbol.dispose] methods agree.
(Symbol as { dispose?: symbol }).dispose ??= Symbol.for('nodejs.dispose');

/** Tensors made inside each open scope, innermost last. */
const scopes: Set<Tensor>[] = [];
/** Above 0 while library code makes tensors it stores for later. */
let suspended = 0;

/** @internal Called for every libtorch result as it is wrapped. */
export function trackResult(t: Tensor): void {
  if (scopes.length !== 0 && suspended === 0) scopes[scopes.length - 1]!.add(t);
}

/** @internal Runs `f` with scope tracking off: what it makes is stored by the library. */
export function untracked<T>(f: () => T): T {
  if (scopes.length === 0) return f();
  suspended++;
  try {
    return f();
  } finally {
    suspended--;
  }
}

/**
 * Keeps `t` alive past every enclosing {@link tidy} (it is then freed by the garbage
 * collector, or by `t.dispose()`). Returns `t`.
 */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/**
 * Runs `fn` synchronously and then frees every libtorch tensor made inside it that it does
 * not return (see the module comment for what else survives). Scopes nest: a tensor an inner
 * scope returns belongs to the outer one. When `fn` throws, everything it made is freed and
 * the error propagates. `fn` must not be async: the scope ends when `fn` returns, and a
 * promise's tensors would be freed while it still runs.
 *
 * ```ts
 * const logits = torch.tidy(() => model.call(batch));   // intermediates freed now
 * ```
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw torchsaveError('E_INVALID_ARGUMENT', 'torch.tidy takes a function');
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let out: T;
  try {
    out = fn();
  } catch (e) {
    scopes.pop();
    disposeAll(scope);
    throw e;
  }
  scopes.pop();
  if (out !== null && typeof out === 'object' && typeof (out as { then?: unknown }).then === 'function') {
    // The async work still runs and may use what it made: leave that to the GC.
    const parent = scopes[scopes.length - 1];
    if (parent) for (const t of scope) parent.add(t);
    throw torchsaveError('E_INVALID_ARGUMENT', 'torch.tidy takes a synchronous function (it returned a promise); use tidy inside the async code, around each synchronous step');
  }
  const kept = new Set<Tensor>();
  collectTensors(out, kept, new Set(), 0);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return out;
}

/**
 * Frees the memory of a loaded value now, as Python's `del` frees it when the last reference
 * goes: walks `value` (arrays, Maps, Sets, PyObjects, plain objects, Modules' parameters and
 * buffers) and disposes every tensor in it. A storage a load made is given back with the last
 * of that load's tensors on it (tensors of the same load outside `value` keep it alive:
 * tied weights, `sd.get(k)` kept elsewhere); its buffer is detached, so any later read of a
 * freed tensor, or of a view made from it, throws `E_INVALID_ARGUMENT` and never sees freed
 * memory. libtorch results are freed as by `tensor.dispose()`. Storages libtorch borrowed
 * (tensors computed on) and storages not made by a load are left to the garbage collector.
 * Releases wait for async saves in flight. Returns the number of tensors disposed.
 *
 * ```ts
 * const sd = torch.load('model.pt', { mmap: false });
 * model.loadStateDict(sd);   // copies into the module's own storages
 * torch.dispose(sd);         // the checkpoint's memory is free now
 * ```
 */
export function dispose(value: unknown): number {
  const tensors = new Set<Tensor>();
  const storages = new Set<UntypedStorage>();
  collectTensors(value, tensors, new Set(), 0, true, storages);
  for (const t of tensors) t.dispose();
  // Storages met directly (a `storage` value in the file): freed when no live tensor of the load uses them.
  for (const s of storages) if (!s._users) s.dispose();
  return tensors.size;
}

/** @internal Gives a load result `[Symbol.dispose]` (so `using sd = torch.load(...)` works). */
export function disposable<T>(value: T): T {
  if (value !== null && typeof value === 'object' && Object.isExtensible(value) && !(Symbol.dispose in value)) {
    Object.defineProperty(value, Symbol.dispose, { value: () => void dispose(value), enumerable: false, configurable: true, writable: true });
  }
  return value;
}

function disposeAll(scope: Set<Tensor>): void {
  for (const t of scope) t.dispose();
}

/**
 * Every tensor reachable from `v` through arrays, Maps, Sets and plain data objects, and
 * (`modules`) through Modules' parameters and buffers: a loaded whole-module pickle keeps
 * its tensors when a tidy scope returns it. `storages` collects storage values met on the way.
 */
function collectTensors(v: unknown, into: Set<Tensor>, seen: Set<object>, depth: number, modules = true, storages?: Set<UntypedStorage>): void {
  if (v === null || typeof v !== 'object' || depth > 64 || seen.has(v)) return;
  seen.add(v);
  if (isTensor(v)) {
    into.add(v);
    if ((v as { grad?: unknown }).grad) collectTensors((v as { grad?: unknown }).grad, into, seen, depth + 1, modules, storages);
    return;
  }
  if (isStorage(v)) {
    storages?.add(v);
    return;
  }
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return;
  if (isModuleLike(v)) {
    if (!modules) return;
    const m = v as { namedParameters(): [string, Tensor][]; namedBuffers?(): [string, Tensor][] };
    for (const [, p] of m.namedParameters()) collectTensors(p, into, seen, depth + 1, modules, storages);
    for (const [, b] of m.namedBuffers?.() ?? []) collectTensors(b, into, seen, depth + 1, modules, storages);
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collectTensors(x, into, seen, depth + 1, modules, storages);
  } else if (v instanceof Map) {
    for (const [k, x] of v) {
      collectTensors(k, into, seen, depth + 1, modules, storages);
      collectTensors(x, into, seen, depth + 1, modules, storages);
    }
  } else if (v instanceof Set) {
    for (const x of v) collectTensors(x, into, seen, depth + 1, modules, storages);
  } else {
    for (const x of Object.values(v)) collectTensors(x, into, seen, depth + 1, modules, storages);
  }
}

function isStorage(v: object): v is UntypedStorage {
  return typeof (v as UntypedStorage)._dropUser === 'function';
}

// Structural checks instead of `instanceof`, so this module needs no runtime import of
// tensor.ts or nn (which import it).
function isTensor(v: object): v is Tensor {
  return typeof (v as Tensor).dispose === 'function' && typeof (v as Tensor).storageOffset === 'function' && 'dtype' in v;
}

function isModuleLike(v: object): boolean {
  return typeof (v as { namedParameters?: unknown }).namedParameters === 'function';
}
