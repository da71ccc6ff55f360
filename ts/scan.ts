/**
 * `torch.scan(path)`: what every pickle in a checkpoint would import and call, with a verdict
 * for each, without importing or running anything (the document of `torchsave scan --json`,
 * docs/scan.md).
 */
import { native } from './raw/native';
import type { TorchsaveErrorCode } from './errors';

/** A finding's verdict: `safe` (PyTorch's weights-only loader allows it), `data` (a class
 * known to unpickle into harmless data), `unknown` (not known to be harmless), `dangerous`
 * (execution, import, file/network/process access, attribute access, code objects), or
 * `info` (TorchScript code: no verdict). */
export type ScanSeverity = 'safe' | 'data' | 'unknown' | 'dangerous' | 'info';

/** One construct a pickle would run, deduplicated per record (`count` times, first at `offset`). */
export interface ScanFinding {
  /** The verdict. */
  severity: ScanSeverity;
  /** `import` (GLOBAL, STACK_GLOBAL, INST), `call` (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ),
   * `build` (BUILD on a non-data object or a global), `ext` (EXT1/2/4), `code` (TorchScript
   * sources), `package` (torch.package sources). */
  kind: 'import' | 'call' | 'build' | 'ext' | 'code' | 'package';
  /** `module.qualname` as Python resolves it (`os.system` for a written `posix.system`). */
  name: string;
  /** The name as written in the file when it differs (or `builtins.getattr` for a getattr call). */
  written: string | null;
  /** The record (`archive/data.pkl`, a tar member; `''` for the file itself; `rec@offset` for
   * a pickle nested in bytes a reconstructor would unpickle). */
  record: string;
  /** Byte offset of the opcode in the record (null for code/package findings). */
  offset: number | null;
  /** The opcode's name, e.g. `GLOBAL`, `STACK_GLOBAL`, `REDUCE` (null for code/package). */
  opcode: string | null;
  /** How many times this construct occurs in the record. */
  count: number;
  /** Why it has this verdict. */
  reason: string;
}

/** A coded failure inside a scan document. */
export interface ScanError {
  /** The error code. */
  code: TorchsaveErrorCode;
  /** What happened. */
  message: string;
  /** The record, when known. */
  record: string | null;
  /** Byte offset, when known. */
  offset: number | null;
}

/** One pickle a scan ran. */
export interface ScanPickle {
  /** The record it is in (`''` for the file itself). */
  record: string;
  /** Where it starts in the record. */
  offset: number;
  /** Its PROTO (0 when absent or when it stopped before). */
  protocol: number;
  /** Bytes up to and including its STOP; null when it did not end. */
  length: number | null;
  /** Why it stopped early (malformed: CPython's unpickler stops there too), else null. */
  error: ScanError | null;
}

/** What `scan` found in one file. */
export interface ScanReport {
  /** The path scanned (`<bytes>` for a buffer). */
  path: string;
  /** `zip`, `torchscript`, `torch.package`, `legacy`, `tar`, `pickle`, `safetensors` or `unknown`. */
  format: string;
  /** `clean` (exit 0), `flagged` (exit 1: a dangerous finding, or with `strict` an unknown one),
   * `error` (exit 2: no verdict, see `error`). */
  status: 'clean' | 'flagged' | 'error';
  /** 0, 1 or 2, as `status`. */
  exit_code: 0 | 1 | 2;
  /** Whether unknown findings flag the file. */
  strict: boolean;
  /** The worst verdict among the findings (null: none). */
  worst: Exclude<ScanSeverity, 'info'> | null;
  /** Findings per verdict. */
  counts: Record<ScanSeverity, number>;
  /** Every construct found, in file order per record. */
  findings: ScanFinding[];
  /** Every pickle run: where it starts, its protocol and length, or why it stopped. */
  pickles: ScanPickle[];
  /** Damage worked around (e.g. a zip scanned from its local headers). */
  notes: string[];
  /** Why no verdict can be given (unreadable, no pickle could be run, a limit hit), else null. */
  error: ScanError | null;
}

/** Options of {@link scan}. */
export interface ScanOptions {
  /** Unknown globals flag the file too (status `flagged`, exit 1). Default false. */
  strict?: boolean;
}

/**
 * Scans a checkpoint (path or bytes) for what its pickles would import and call. Never throws
 * for the file's content: damage and unreadable files are reported in `error`/`notes`.
 * Nothing in the file is imported or executed.
 */
export function scan(source: string | Uint8Array, opts: ScanOptions = {}): ScanReport {
  return JSON.parse(native().scan(source, opts.strict)) as ScanReport;
}

/** {@link scan} of a file off the event loop. */
export async function scanAsync(path: string, opts: ScanOptions = {}): Promise<ScanReport> {
  return JSON.parse(await native().scanAsync(path, opts.strict)) as ScanReport;
}

/** The files `torchsave scan` looks at for these files, folders and globs (sorted): a named
 * file always, folders' checkpoint and pickle files recursively, glob matches. */
export function scanDiscover(specs: string | string[]): string[] {
  return native().scanDiscover(typeof specs === 'string' ? [specs] : specs);
}
