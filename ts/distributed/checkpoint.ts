/**
 * `torch.distributed.checkpoint` (DCP): distributed checkpoint folders (`.metadata` plus
 * `__<rank>_<n>.distcp` data files) in and out, in one process. The format rules are the
 * core's (`crate/core/src/container/dcp.rs` reads, `writer/dcp_write.rs` writes, torch
 * 2.11's layout); this layer passes the user's options through.
 *
 * ```ts
 * torch.distributed.checkpoint.save({ model: model.stateDict(), step: 10 }, 'ckpt', { writers: 4 });
 * const sd = torch.distributed.checkpoint.load('ckpt');   // = torch.load('ckpt')
 * ```
 *
 * What `torch.distributed.checkpoint.load(..., no_dist=True)` and `dcp_to_torch_save` read
 * back equals what was saved; a folder torch wrote (sharded DTensor/ShardedTensor chunks
 * included) loads as the nested state dict `dcp_to_torch_save` returns.
 */
import { torchsaveError } from '../errors';
import { native } from '../raw/native';
import { load as torchLoad, loadAsync as torchLoadAsync } from '../serialization/load';
import { abortable } from '../serialization/cancel';
import type { LoadAsyncOptions, LoadOptions } from '../serialization/options';
import { toRaw } from '../serialization/to-raw';
import { holdReleases } from '../tensor/storage';

/** Options of {@link save}. */
export interface DcpSaveOptions {
  /**
   * Data files to split the tensors over, written in parallel (torch's
   * `FileSystemWriter(thread_count=N)`: largest tensors first into the lightest file). Default 1.
   */
  writers?: number;
  /** Replace an existing folder (default true, like torch's `FileSystemWriter`); false: `E_OUTPUT_EXISTS`. */
  overwrite?: boolean;
  /** fsync every file and the folders before returning (default true). */
  durable?: boolean;
}

/** Options of {@link saveAsync}: {@link DcpSaveOptions} plus an `AbortSignal` (`E_CANCELLED`). */
export interface DcpSaveAsyncOptions extends DcpSaveOptions {
  /** Rejects with `E_CANCELLED` when aborted (the folder may still be written: it is atomic). */
  signal?: AbortSignal;
}

/** What a save wrote. */
export interface DcpWritten {
  /** Data file names (`__0_0.distcp`, ...), in order. */
  files: string[];
  /** The flattened keys (`model.layer.weight`), as `.metadata` lists them. */
  keys: string[];
  /** Bytes written (data files and `.metadata`). */
  bytes: number;
}

function nativeOptions(o: DcpSaveOptions): { writers?: number; overwrite?: boolean; durable?: boolean } {
  const out: { writers?: number; overwrite?: boolean; durable?: boolean } = {};
  if (o.writers !== undefined) {
    if (!Number.isInteger(o.writers) || o.writers < 1) {
      throw torchsaveError('E_INVALID_ARGUMENT', `writers must be a positive integer, got ${String(o.writers)}`);
    }
    out.writers = o.writers;
  }
  if (o.overwrite !== undefined) out.overwrite = o.overwrite;
  if (o.durable !== undefined) out.durable = o.durable;
  return out;
}

function checkDir(dir: unknown): asserts dir is string {
  if (typeof dir !== 'string') throw torchsaveError('E_INVALID_ARGUMENT', 'torch.distributed.checkpoint.save expects a folder path (string)');
}

/**
 * `torch.distributed.checkpoint.save(stateDict, checkpoint_id=dir, no_dist=True)`: writes a
 * state dict (a `Map` or plain object; nested dicts and lists are flattened as DCP does) as a
 * DCP folder. Atomic: written into a temporary sibling folder, then renamed.
 */
export function save(stateDict: unknown, dir: string, opts: DcpSaveOptions = {}): DcpWritten {
  checkDir(dir);
  const { raw } = toRaw(stateDict);
  return native().saveDcpFolder(raw, dir, nativeOptions(opts));
}

/** {@link save} off the event loop; do not modify the tensors until it settles. */
export async function saveAsync(stateDict: unknown, dir: string, opts: DcpSaveAsyncOptions = {}): Promise<DcpWritten> {
  checkDir(dir);
  const { signal, ...rest } = opts;
  const nopts = nativeOptions(rest);
  return abortable(signal, `distributed.checkpoint.saveAsync(${dir})`, async () => {
    const { raw } = toRaw(stateDict);
    const done = holdReleases();
    try {
      return await native().saveDcpFolderAsync(raw, dir, nopts);
    } finally {
      done();
    }
  });
}

/**
 * The state dict a DCP folder describes, as `dcp_to_torch_save` would write it (nested,
 * sharded tensors assembled): the same as `torch.load(dir)`. Unlike PyTorch's in-place
 * `dcp.load(state_dict, ...)`, it returns the values.
 */
export function load<T = unknown>(dir: string, opts: LoadOptions = {}): T {
  return torchLoad<T>(dir, opts);
}

/** {@link load} off the event loop (`torch.loadAsync(dir)`). */
export function loadAsync<T = unknown>(dir: string, opts: LoadAsyncOptions = {}): Promise<T> {
  return torchLoadAsync<T>(dir, opts);
}

/** True when `path` is a folder holding a DCP `.metadata` (what {@link load} reads). */
export function isCheckpoint(path: string): boolean {
  return native().isDcpFolder(path);
}
