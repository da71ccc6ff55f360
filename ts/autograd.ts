/**
 * Autograd switches: `torch.no_grad()` / `enable_grad()` / `set_grad_enabled()` as functions
 * that run a callback (JS has no `with`). They flip libtorch's grad mode for the duration,
 * also when the callback throws; an async callback keeps the mode until its promise settles.
 */
import { libtorchLoaded, loadLibtorch, lt } from './libtorch/addon';
import { manualSeed as jsManualSeed, type Generator } from './tensor';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const addon = loadLibtorch().addon;
  if (!addon) return fn(); // nothing records gradients without libtorch
  const prev = addon.setGradEnabled(enabled);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    addon.setGradEnabled(prev);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => addon.setGradEnabled(prev)) as T;
  }
  addon.setGradEnabled(prev);
  return result;
}

/** `with torch.no_grad(): ...` -> `torch.noGrad(() => ...)`. */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/**
 * @internal `noGrad` for torchsave's own in-place writes (initialisers, loadStateDict), as
 * PyTorch does them, without loading libtorch just for that: while it is not loaded no tensor
 * lives on libtorch, and the writes are plain memory writes.
 */
export function noGradIfLoaded<T>(fn: () => T): T {
  return libtorchLoaded() ? withGradMode(false, fn) : fn();
}

/** `with torch.enable_grad(): ...`. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/** `torch.set_grad_enabled(mode)` (global, like calling it in Python without `with`). */
export function setGradEnabled(enabled: boolean): void {
  lt('torch.setGradEnabled').setGradEnabled(enabled);
}

/** `torch.is_grad_enabled()`. */
export function isGradEnabled(): boolean {
  const addon = loadLibtorch().addon;
  if (!addon) return false;
  const prev = addon.setGradEnabled(true);
  addon.setGradEnabled(prev);
  return prev;
}

/**
 * `torch.manual_seed`: seeds torchsave's initialisers and, with the libtorch addon, libtorch's
 * generators (dropout masks, `randn` on a device) exactly as PyTorch's manual_seed does.
 */
export function manualSeed(seed: number | bigint): Generator {
  const addon = loadLibtorch().addon;
  if (addon) addon.manualSeed(Number(seed));
  return jsManualSeed(seed);
}
