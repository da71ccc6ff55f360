/**
 * Storages that view a loaded file's memory map, and the check library calls make before
 * reading one. If another program truncates or rewrites the file after the load, reading the
 * map never crashes the process (the core turns lost pages into zeros, see
 * crate/core/src/mapguard.rs), and the next library call that reads such a storage throws
 * `E_FILE_CHANGED` instead of returning those zeros or the new bytes as values.
 */
import { native } from './native';

/** ArrayBuffers over a guarded file mapping (one per mmap-loaded file). */
const mappedBuffers = new WeakSet<ArrayBuffer>();

/** Marks `buffer` as a file mapping (called for raw storages with `mapped: true`). */
export function markMapped(buffer: ArrayBuffer): void {
  mappedBuffers.add(buffer);
}

/** Throws `E_FILE_CHANGED` when `bytes` view a mapped file that changed since it was loaded. */
export function checkMapped(bytes: Uint8Array): void {
  if (mappedBuffers.has(bytes.buffer as ArrayBuffer)) native().checkMapping(bytes);
}
