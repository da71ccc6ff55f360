/**
 * `signal` for `loadAsync` / `saveAsync` (and the typed loaders built on them).
 *
 * Core's reader and writer have no cancellation checkpoints (only the batch converter checks
 * its flag, between files), so a native load or save that has started runs to its end on its
 * worker thread. What an abort does, therefore:
 * - before the call (`signal.aborted`): the promise rejects with `E_CANCELLED` at once and
 *   nothing starts, nothing is read or written;
 * - during the call: the promise rejects with `E_CANCELLED` at once; the worker finishes in
 *   the background and its result is dropped (a load builds no JS values; a save to a path
 *   still commits atomically, so the target is either the old file or the complete new one,
 *   never torn). `err.settled` resolves when that background work is over, for callers
 *   that want to know the file is no longer being written before they retry.
 */
import { torchsaveError, type TorchsaveError } from '../errors';

/** The error an aborted `loadAsync` / `saveAsync` rejects with. */
export interface CancelledError extends TorchsaveError {
  /** Always `E_CANCELLED`. */
  code: 'E_CANCELLED';
  /** Resolves once the native work that was under way has finished (at once when none had started). */
  settled: Promise<void>;
}

function cancelledError(what: string, signal: AbortSignal, settled: Promise<void>): CancelledError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? `: ${reason.message}` : '';
  return torchsaveError('E_CANCELLED', `${what} cancelled by its AbortSignal${why}`, { cause: reason, settled }) as CancelledError;
}

function checkSignal(signal: unknown, what: string): asserts signal is AbortSignal | undefined {
  if (signal === undefined) return;
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    throw torchsaveError('E_INVALID_ARGUMENT', `${what}: signal must be an AbortSignal (AbortController().signal, AbortSignal.timeout(ms))`);
  }
}

/** True once `signal` has aborted: work that finishes after that drops its result. */
export function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * Runs `start()` unless `signal` already aborted, and rejects with {@link CancelledError} as
 * soon as it aborts, whatever `start()`'s promise is doing; that promise's own outcome is
 * then observed (never an unhandled rejection) and only signals `settled`.
 */
export async function abortable<T>(signal: AbortSignal | undefined, what: string, start: () => Promise<T>): Promise<T> {
  checkSignal(signal, what);
  if (!signal) return start();
  if (signal.aborted) throw cancelledError(what, signal, Promise.resolve());
  const work = start();
  const settled = work.then(
    () => undefined,
    () => undefined,
  );
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelledError(what, signal, settled));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) onAbort();
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(signal.aborted ? cancelledError(what, signal, settled) : e);
      },
    );
  });
}
