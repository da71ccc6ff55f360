/**
 * `torch.save` / `saveAsync`: TS values → the raw tree (`./to-raw`), the user's options →
 * the binding's, one native call, then the bytes to the target (path, descriptor, writable).
 */
import * as fs from 'node:fs';
import { torchsaveError } from '../errors';
import { native, type NativeSaveOptions } from '../raw/native';
import { abortable } from './cancel';
import type { SaveAsyncOptions, SaveOptions, SaveTarget, WritableLike } from './options';
import { holdReleases } from '../tensor/storage';
import { toRaw } from './to-raw';

function nativeSaveOptions(opts: SaveOptions): NativeSaveOptions {
  const out: NativeSaveOptions = {};
  if (opts.format !== undefined) out.format = opts.format;
  if (opts.pickleProtocol !== undefined) out.protocol = opts.pickleProtocol;
  if (opts.compact !== undefined) out.compact = opts.compact;
  if (opts.archiveName !== undefined) out.archiveName = opts.archiveName;
  if (opts.durable !== undefined) out.durable = opts.durable;
  return out;
}

function checkTarget(f: unknown): void {
  if (f === undefined || f === null || typeof f === 'string') return;
  if (typeof f === 'number' && Number.isInteger(f) && f >= 0) return;
  if (typeof f === 'object' && typeof (f as WritableLike).write === 'function') return;
  throw torchsaveError('E_INVALID_ARGUMENT', 'torch.save expects a path, a file descriptor, or an object with write(chunk)');
}

function deliver(bytes: Uint8Array, f: number | WritableLike): unknown {
  if (typeof f === 'number') {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(f, bytes, off, bytes.length - off);
    return undefined;
  }
  return f.write(bytes);
}

/**
 * `torch.save`: writes `obj` the way PyTorch does (zip by default, byte-compatible).
 * With a path the write is atomic (the old file survives a failure) and, unless
 * `durable: false`, synced to disk before it returns. Without a target the bytes are returned.
 */
export function save(obj: unknown, f: SaveTarget, opts?: SaveOptions): void;
export function save(obj: unknown, f?: null, opts?: SaveOptions): Buffer;
export function save(obj: unknown, f?: SaveTarget | null, opts: SaveOptions = {}): Buffer | void {
  checkTarget(f);
  const { raw } = toRaw(obj);
  const path = typeof f === 'string' ? f : null;
  const bytes = native().save(raw, path, nativeSaveOptions(opts));
  if (f === undefined || f === null) return bytes ?? Buffer.alloc(0);
  if (typeof f !== 'string' && bytes) deliver(bytes, f);
}

/**
 * `torch.save` off the event loop (pickling and I/O on a worker thread). Do not modify the
 * tensors being saved until the promise settles (after an abort: until `err.settled`): their
 * bytes are written without a copy. `signal` cancels it (`E_CANCELLED`; see
 * {@link SaveAsyncOptions.signal}); a stream or descriptor target then receives nothing.
 */
export async function saveAsync(obj: unknown, f: SaveTarget, opts?: SaveAsyncOptions): Promise<void>;
export async function saveAsync(obj: unknown, f?: null, opts?: SaveAsyncOptions): Promise<Buffer>;
export async function saveAsync(obj: unknown, f?: SaveTarget | null, opts: SaveAsyncOptions = {}): Promise<Buffer | void> {
  checkTarget(f);
  const { signal, ...saveOpts } = opts;
  const nopts = nativeSaveOptions(saveOpts);
  const path = typeof f === 'string' ? f : null;
  const label = path === null ? 'saveAsync' : `saveAsync(${path})`;
  return abortable(signal, label, async () => {
    const { raw } = toRaw(obj);
    // The worker reads the storages' memory: torch.dispose must not give it back meanwhile
    // (even after an abort: the worker still runs until it settles).
    const done = holdReleases();
    let bytes: Buffer | null;
    try {
      bytes = await native().saveAsync(raw, path, nopts);
    } finally {
      done();
    }
    if (f === undefined || f === null) return bytes ?? Buffer.alloc(0);
    // Aborted while the worker ran: a stream or descriptor gets nothing.
    if (typeof f !== 'string' && bytes && signal?.aborted !== true) await deliver(bytes, f);
    return undefined;
  });
}
