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

/**
 * A write to a descriptor or stream failed: `E_IO`, as a path save's failure is, naming the
 * OS error (`ENOSPC`, `EFBIG`, `EBADF`...; also in `syscall`/`errno`), Node's error as `cause`.
 * One code for every write failure, full disk included, as for paths (the core's `E_IO`).
 */
function writeError(e: unknown, target: string): Error {
  const os = e as NodeJS.ErrnoException;
  const name = typeof os?.code === 'string' ? `${os.code}: ` : '';
  const msg = e instanceof Error ? e.message : String(e);
  const extra: Record<string, unknown> = { cause: e };
  if (typeof os?.syscall === 'string') extra.syscall = os.syscall;
  if (typeof os?.code === 'string') extra.errno = os.code;
  return torchsaveError('E_IO', `torch.save: cannot write to ${target}: ${name}${msg}`, extra);
}

/** Node's writables take a completion callback (`write(chunk, cb)`) and emit `'error'`. */
interface NodeWritable extends WritableLike {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: 'error', listener: (err: Error) => void): unknown;
}

function isNodeWritable(f: WritableLike): f is NodeWritable {
  const w = f as Partial<NodeWritable>;
  return typeof w.once === 'function' && typeof w.removeListener === 'function' && f.write.length >= 2;
}

/** Writes to a descriptor (synchronously) or hands the bytes to `f.write`. */
function deliver(bytes: Uint8Array, f: number | WritableLike): unknown {
  if (typeof f === 'number') {
    let off = 0;
    try {
      while (off < bytes.length) off += fs.writeSync(f, bytes, off, bytes.length - off);
    } catch (e) {
      throw writeError(e, `file descriptor ${f} (after ${off} of ${bytes.length} bytes)`);
    }
    return undefined;
  }
  try {
    return f.write(bytes);
  } catch (e) {
    throw writeError(e, 'the stream');
  }
}

/**
 * `deliver` for `saveAsync`: a Node writable is awaited until its write callback, so an
 * asynchronous failure (a file stream on a full disk) rejects with `E_IO` instead of an
 * uncoded `'error'` event (which, unlistened, would end the process). The stream's own
 * `'error'` emission for that failure is absorbed by a one-shot listener.
 */
function deliverAsync(bytes: Uint8Array, f: number | WritableLike): Promise<unknown> {
  if (typeof f === 'number' || !isNodeWritable(f)) return Promise.resolve(deliver(bytes, f));
  return new Promise((resolve, reject) => {
    let failed = false;
    const onError = (err: Error): void => {
      if (!failed) reject(writeError(err, 'the stream'));
      failed = true;
    };
    f.once('error', onError);
    try {
      f.write(bytes, (err) => {
        if (err) {
          onError(err);
          return; // the stream emits 'error' for it next: onError (still attached) takes it.
        }
        f.removeListener('error', onError);
        resolve(undefined);
      });
    } catch (e) {
      f.removeListener('error', onError);
      reject(writeError(e, 'the stream'));
    }
  });
}

/**
 * `torch.save`: writes `obj` the way PyTorch does (zip by default, byte-compatible).
 * With a path the write is atomic (the old file survives a failure) and, unless
 * `durable: false`, synced to disk before it returns. Without a target the bytes are returned.
 * A descriptor is written synchronously; a failed write (full disk: `ENOSPC`, file size
 * limit: `EFBIG`) throws `E_IO` naming the OS error. A stream gets the bytes through
 * `write(chunk)`: what it throws becomes `E_IO`, but a failure it reports later arrives as
 * its own `'error'` event; {@link saveAsync} waits for the write and rejects with `E_IO`.
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
    if (typeof f !== 'string' && bytes && signal?.aborted !== true) await deliverAsync(bytes, f);
    return undefined;
  });
}
