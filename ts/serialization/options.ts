/**
 * The options and results of `torch.load` / `torch.save` as users write them (the public
 * types). Their defaults live in Rust (`crate/node/src/options.rs`): the facade passes what
 * the user gave, `undefined` included.
 */
import type { UntypedStorage } from '../tensor';
import type { Device, PyClass } from '../values';
import type { CancelledError } from './cancel';

/** Where a storage recorded at `location` should go: PyTorch's `map_location`. */
export type MapLocation =
  | string
  | Device
  | Record<string, string | Device>
  | ((storage: UntypedStorage, location: string) => UntypedStorage | string | Device | null | undefined);

/** A class allowed by `safeGlobals`: anything with a static `pyName` (`module.qualname`). */
export interface NamedPyClass {
  /** The Python `module.qualname` the class stands for (`collections.OrderedDict`). */
  readonly pyName: string;
}

export interface LoadOptions {
  /** Accept only what PyTorch's weights-only unpickler accepts (default `true`, like torch ≥ 2.6). */
  weightsOnly?: boolean;
  /** Map the file instead of reading it (default `true`; paths only). */
  mmap?: boolean;
  /**
   * Where storages go, as PyTorch's `map_location`. Without it, storages go where they were
   * saved; a file saved on a GPU (`cuda:0`) still opens on a machine without one (where
   * torch.load raises): its storages load on the CPU, a warning says so once, and a re-save
   * keeps their recorded location. Targets other than the CPU need the libtorch addon.
   */
  mapLocation?: MapLocation;
  /** Extra globals the weights-only loader may accept: `module.qualname` strings or classes with `pyName`. */
  safeGlobals?: (string | NamedPyClass)[];
  /** How Python 2 byte strings decode: `utf8` (default), `latin1`, or `bytes`. */
  encoding?: 'utf8' | 'latin1' | 'bytes';
  /**
   * TS classes for pickled Python classes, by `module.qualname` (built-in `torch.nn` classes
   * are mapped automatically). `false` keeps every object a raw {@link PyObject}.
   */
  classes?: Record<string, PyClass> | false;
  /**
   * Expose storage bytes as external memory (default `true`: zero-copy, mmap-backed for zip
   * files). `false` copies every storage into JS memory, which is what Electron's V8 sandbox
   * forces anyway (the binding falls back to copying there automatically).
   */
  externalBuffers?: boolean;
  /** Check the CRC-32 of every record, storages included. */
  verifyCrc?: boolean;
}

/** {@link LoadOptions} for `loadAsync` (and `loadStateDictAsync`). */
export interface LoadAsyncOptions extends LoadOptions {
  /**
   * Cancels the load: aborted before the call, nothing is read; aborted during it, the
   * promise rejects at once with `E_CANCELLED` and the result is dropped (the worker thread
   * cannot be interrupted; `err.settled` resolves when it is done). See {@link CancelledError}.
   */
  signal?: AbortSignal;
}

/** {@link SaveOptions} for `saveAsync`. */
export interface SaveAsyncOptions extends SaveOptions {
  /**
   * Cancels the save: aborted before the call, nothing is written; aborted during it, the
   * promise rejects at once with `E_CANCELLED` while the write already under way finishes
   * in the background, atomically (the target ends up the old file or the complete new one,
   * never torn; `err.settled` resolves when it is done). See {@link CancelledError}.
   */
  signal?: AbortSignal;
}

export interface SaveOptions {
  /** `zip` (default; what torch.save writes since 1.6) or `legacy` (pre-1.6 readers). */
  format?: 'zip' | 'legacy';
  /** Pickle protocol: 2 like torch.save (the default), up to 5. torch's weights-only loader (torch.load's default) refuses 4 and 5: such files need weights_only=False there. */
  pickleProtocol?: number;
  /** Write only the bytes each storage's tensors reach (smaller files for views). */
  compact?: boolean;
  /** Top folder inside the zip; default: like torch (the file's stem, or `archive`). */
  archiveName?: string;
  /**
   * Saving to a path: make the new file survive a power loss or OS crash before `save`
   * returns (default `true`: the file and its folder are fsynced; big files go to the disk
   * with direct I/O). `false` skips the fsyncs, which is what `torch.save` and `cp` do: the
   * OS writes the data back later. Either way the save is atomic: it writes a temporary file
   * in the same folder and renames it over the target, so a failed or killed save never
   * leaves a torn file and never damages the old one. Ignored for streams and buffers.
   */
  durable?: boolean;
}

/** Something bytes can be written to: a Node `Writable`, a `FileHandle`-like object, ... */
export interface WritableLike {
  /** Receives the next chunk of the file, in order; the return value is ignored. */
  write(chunk: Uint8Array): unknown;
}

/** A destination: a path, an open file descriptor, or a writable. */
export type SaveTarget = string | number | WritableLike;

/** Facts about a loaded file, next to its value (see {@link loadWithInfo}). */
export interface LoadInfo {
  /**
   * `safetensors` for a `.safetensors` path (then `globals` is empty, `pickleProtocol` 0);
   * `dcp` for a distributed checkpoint folder (`torch.distributed.checkpoint`: `.metadata`
   * and `*.distcp` files; `globals` and `pickleProtocol` are its `.metadata` pickle's).
   */
  format: 'zip' | 'legacy' | 'tar' | 'pickle' | 'torchscript' | 'dcp' | 'safetensors';
  /** Every global the pickle named (`module.name`), first-seen order. */
  globals: string[];
  /** True when the file was written on a big-endian machine (storages are byte-swapped on load). */
  bigEndian: boolean;
  /** The pickle protocol of the file's (main) pickle; 0 for safetensors. */
  pickleProtocol: number;
  /** zip only: the top folder inside the archive (`archive`, or the stem torch.save used). */
  archiveName?: string;
  /** zip only: the archive's `version` record as written (torch writes `3`). */
  version?: string;
  /** safetensors only: the `__metadata__` strings. */
  metadata?: Record<string, string>;
}
