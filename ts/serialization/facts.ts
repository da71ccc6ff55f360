/**
 * What a load remembers for the next save: which container slots held an integral Python
 * float (`2.0`, so a re-save writes a float again) and what the file said about each storage
 * (dtype, typed or untyped, key, recorded location). WeakMaps: nothing is kept alive.
 */
import type { DType } from '../dtype';
import type { UntypedStorage } from '../tensor';

/** Containers → the keys/indices that held an integral Python float. */
const floatPositions = new WeakMap<object, Set<unknown>>();

/** @internal */
export function rememberFloat(container: object, key: unknown): void {
  let s = floatPositions.get(container);
  if (!s) floatPositions.set(container, (s = new Set()));
  s.add(key);
}

/** True when `container[key]` was an integral Python float in the file it came from. */
export function wasPyFloat(container: object, key: unknown): boolean {
  return floatPositions.get(container)?.has(key) ?? false;
}

/** Marks `container[key]` as a Python float for the next save (e.g. `lr = 1` → `1.0`). */
export function markPyFloat(container: object, key: unknown): void {
  rememberFloat(container, key);
}

/** What the file said about a loaded storage (its element dtype, typed vs untyped, key). */
export interface StorageFacts {
  dtype: DType;
  untyped: boolean;
  key: string;
  /** The location recorded in the file when the storage was loaded elsewhere by default
   * (a GPU checkpoint on a CPU-only machine): a re-save writes it back. */
  recordedLocation?: string;
}
/** @internal */
export const storageFacts = new WeakMap<UntypedStorage, StorageFacts>();

/** The facts recorded for a storage that came from a file, if it did. */
export function storageInfo(s: UntypedStorage): StorageFacts | undefined {
  return storageFacts.get(s);
}
