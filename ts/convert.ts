/**
 * Batch conversion (`torch.convert`), summaries over many files (`inspectMany`) and
 * checkpoint comparison (`diff`).
 *
 * ```ts
 * const reports = await torch.convert(['ckpts/'], {
 *   to: 'safetensors', out: 'out/', stripDataParallel: true, dtype: 'float16', jobs: 4,
 *   onProgress: (e) => console.log(`${e.done}/${e.total} ${e.input}`),
 *   signal: AbortSignal.timeout(60_000),
 * });
 * for (const r of reports) if (r.error) console.error(r.input, r.error.code);
 * ```
 *
 * The work runs on Rust threads (`jobs` files in flight, each input mmapped), never on the
 * event loop. Every output is written atomically (temporary file, fsync, rename) and an
 * existing output is kept unless `force` (its report then has `E_OUTPUT_EXISTS`, or with
 * `skipExisting` status `skipped` when it is valid, so a retried batch succeeds); a failing
 * file gets a report with an error code and never stops the others. Aborting the signal
 * lets files in flight finish, skips the rest and rejects with `E_CANCELLED` (the reports
 * so far are on `err.reports`).
 *
 * Patterns (`rename`) use Rust's regex syntax (like JS without look-around and
 * back-references); replacements use JS's: `$1`, `$<name>`, `$&`, `$$`.
 */
import { native, type NativeConvertOptions, type NativeFileReport } from './raw/native';
import { type TorchsaveError, type TorchsaveErrorCode, torchsaveError } from './errors';

/**
 * An output format: `pt` (torch.save's zip), `pt-legacy` (pre-1.6 torch.save), `safetensors`,
 * or `dcp` (a `torch.distributed.checkpoint` folder named after the input's stem).
 */
export type ConvertTarget = 'pt' | 'pt-legacy' | 'safetensors' | 'dcp';
/** A dtype floating tensors can be cast to while converting. */
export type ConvertDType = 'float16' | 'bfloat16' | 'float32' | 'float64';
/** A key rename: every match of `pattern` (a RegExp, or a string read as one) becomes `replacement` (`$1` works). */
export type RenameRule = [pattern: RegExp | string, replacement: string];

/** What to do to every input (the CLI flags, camelCased). */
export interface ConvertOptions {
  /** Output format (default `safetensors`). */
  to?: ConvertTarget;
  /** Output folder (created when missing); default: next to each input. */
  out?: string;
  /** Convert this sub-object (`model_state_dict`, `a/b/0`). Default for safetensors: the
   * state dict found in a checkpoint (`state_dict`, `model_state_dict`, `model`, ...). */
  select?: string;
  /** Key prefixes to strip (`module.`), in order. */
  stripPrefix?: string | string[];
  /** Remove every leading `module.` (nested DataParallel / DDP wrappers). */
  stripDataParallel?: boolean;
  /** Key renames applied to every key in order (all matches): `'regex=>replacement'`
   * strings or `[pattern, replacement]` pairs. */
  rename?: string | (string | RenameRule)[];
  /** Cast floating tensors (float64/32/16, bfloat16) to this dtype; others are untouched. */
  dtype?: ConvertDType;
  /** Remove optimizer state (`optimizer`, `optimizer_state_dict`, ...) from checkpoints. */
  dropOptimizer?: boolean;
  /** pt targets: each storage keeps only the bytes its tensors reach. */
  compact?: boolean;
  /** Split outputs into shards of at most this many bytes, Hugging Face style
   * (`model-00001-of-00003.safetensors` + `model.safetensors.index.json`). */
  shardSize?: number | string;
  /** Files converted at once (default: the number of cores). */
  jobs?: number;
  /** Do everything except writing (reports say what would be written). */
  dryRun?: boolean;
  /** Re-read every output and compare each tensor's sha256 with what was meant. */
  verify?: boolean;
  /** Overwrite existing outputs. */
  force?: boolean;
  /**
   * Resume a batch: an input whose outputs already exist and pass a check (size and header
   * parse; with `verify`, read back in full) is not converted again and its report has
   * `status: 'skipped'`. An existing output that fails the check is `E_OUTPUT_EXISTS`.
   * Excludes `force`.
   */
  skipExisting?: boolean;
  /** fsync each output and its folder before naming it, so it survives a power loss
   * (default true). `false` skips the fsyncs (like torch.save and `cp`); outputs stay
   * atomic: a failed or killed conversion still never leaves a partial output. */
  durable?: boolean;
  /** Mirror the inputs' folders (relative to their common folder) under `out`. */
  keepTree?: boolean;
  /** Process only this worker's share: every `shardCount`-th input from `shardIndex`
   * (0-based) of the sorted input list; with exactly one input and `shardSize`, every
   * `shardCount`-th output shard of it (worker 0 also writes the index): see docs/convert.md. */
  shardIndex?: number;
  /** How many workers share the input list (with {@link shardIndex}; default 1). */
  shardCount?: number;
  /** Read inputs with the weights-only policy (default true). */
  weightsOnly?: boolean;
  /** Extra globals allowed by the weights-only policy (`module.qualname`). */
  safeGlobals?: string[];
}

/** What happened to one input: written (`converted`), only planned (`dry-run`), left as it
 * was because its outputs exist and are valid (`skipped`, with `skipExisting`), or `failed`
 * (then `error` says why). */
export type ConvertStatus = 'converted' | 'dry-run' | 'skipped' | 'failed';

/** What happened to one input. */
export interface ConvertReport {
  /** The input file. */
  input: string;
  /** What happened to it. */
  status: ConvertStatus;
  /** Files written (or, with `dryRun`, that would be): shards first, then the index. */
  outputs: string[];
  /** Input format: `zip`, `legacy`, `tar`, `pickle`, `safetensors`, `hf-index` (empty when skipped: the input was not read). */
  format: string;
  /** Tensors converted. */
  tensors: number;
  /** Bytes of the input (shards included). */
  bytesIn: number;
  /** Bytes written (dry run: the exact size for safetensors, 0 for pt). */
  bytesOut: number;
  /** Wall time spent on this input, in milliseconds. */
  millis: number;
  /** Outputs were re-read and matched (`verify`). */
  verified: boolean;
  /** What the converter decided on its own (selected key, dropped keys, aliases). */
  notes: string[];
  /** Why it failed (`failed` only). */
  error?: {
    /** The error's code, as thrown by `torch.load` / `torch.save`. */
    code: TorchsaveErrorCode;
    /** Its message. */
    message: string;
  };
}

/** A file started (`report` absent) or finished. */
export interface ConvertProgress {
  /** The file's position in the (sorted) input list, from 0. */
  index: number;
  /** Files in the batch. */
  total: number;
  /** Files finished so far (this one included once it has a report). */
  done: number;
  /** The input file. */
  input: string;
  /** The file's report, once it has finished. */
  report?: ConvertReport;
}

export interface ConvertRunOptions extends ConvertOptions {
  /** Called on the JS thread as files start and finish; every event arrives before the
   * promise settles. Exceptions it throws are ignored. */
  onProgress?: (event: ConvertProgress) => void;
  /** Cancels the batch: files not started yet are skipped. */
  signal?: AbortSignal;
}

/** The error a cancelled conversion rejects with. */
export interface ConvertCancelledError extends TorchsaveError {
  code: 'E_CANCELLED';
  /** Reports of the files finished before the abort. */
  reports: ConvertReport[];
}

function fail(message: string): never {
  throw torchsaveError('E_INVALID_ARGUMENT', message);
}

function regexSource(p: RegExp | string): string {
  if (typeof p === 'string') return p;
  const flags = [...p.flags].filter((f) => 'ims'.includes(f)).join('');
  return flags ? `(?${flags})${p.source}` : p.source;
}

/** Strings pass through as they are (`'regex=>replacement'`, parsed by the core, the one
 * parser of that syntax); pairs keep their halves, a RegExp as its source and flags. */
function renames(r: ConvertOptions['rename']): (string | [string, string])[] | undefined {
  if (r === undefined) return undefined;
  const list = typeof r === 'string' ? [r] : r;
  if (!Array.isArray(list)) fail('rename must be a string or an array');
  return list.map((x) => {
    if (typeof x === 'string') return x;
    const [p, rep] = Array.isArray(x) ? x : [];
    if ((typeof p !== 'string' && !(p instanceof RegExp)) || typeof rep !== 'string') {
      fail('rename entries are [pattern, replacement] pairs');
    }
    return [regexSource(p), rep];
  });
}

/**
 * The one check left here is of JS shape: the binding takes these as unsigned integers, and
 * napi's own conversion of `-1` or `1.5` would throw without a code. Their rules (jobs >= 1,
 * index < count, both or neither) are core's (crate/core/src/convert/options.rs, discover.rs).
 */
function count(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${name} must be a whole number >= 0, got ${String(v)}`);
  return v;
}

/** Camel-cased options → the binding's: shapes only; defaults and rules are Rust's. */
function nativeConvertOptions(o: ConvertOptions): NativeConvertOptions {
  const out: NativeConvertOptions = {};
  if (o.to !== undefined) out.to = o.to;
  if (o.out !== undefined) out.out = o.out;
  if (o.select !== undefined) out.select = o.select;
  if (o.stripPrefix !== undefined) out.stripPrefix = typeof o.stripPrefix === 'string' ? [o.stripPrefix] : [...o.stripPrefix];
  if (o.stripDataParallel !== undefined) out.stripDataParallel = o.stripDataParallel;
  const rn = renames(o.rename);
  if (rn) out.rename = rn;
  if (o.dtype !== undefined) out.dtype = o.dtype;
  if (o.dropOptimizer !== undefined) out.dropOptimizer = o.dropOptimizer;
  if (o.compact !== undefined) out.compact = o.compact;
  if (o.shardSize !== undefined) out.shardSize = o.shardSize;
  const jobs = count('jobs', o.jobs);
  if (jobs !== undefined) out.jobs = jobs;
  if (o.dryRun !== undefined) out.dryRun = o.dryRun;
  if (o.verify !== undefined) out.verify = o.verify;
  if (o.force !== undefined) out.force = o.force;
  if (o.skipExisting !== undefined) out.skipExisting = o.skipExisting;
  if (o.durable !== undefined) out.durable = o.durable;
  if (o.keepTree !== undefined) out.keepTree = o.keepTree;
  const si = count('shardIndex', o.shardIndex);
  if (si !== undefined) out.shardIndex = si;
  const sc = count('shardCount', o.shardCount);
  if (sc !== undefined) out.shardCount = sc;
  if (o.weightsOnly !== undefined) out.weightsOnly = o.weightsOnly;
  if (o.safeGlobals !== undefined) out.safeGlobals = o.safeGlobals;
  return out;
}

function report(r: NativeFileReport, dryRun: boolean): ConvertReport {
  const status: ConvertStatus = r.error ? 'failed' : r.skipped ? 'skipped' : dryRun ? 'dry-run' : 'converted';
  const out: ConvertReport = {
    input: r.input,
    status,
    outputs: r.outputs,
    format: r.format,
    tensors: r.tensors,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    millis: r.millis,
    verified: r.verified,
    notes: r.notes,
  };
  if (r.error) out.error = { code: r.error.code as TorchsaveErrorCode, message: r.error.message };
  return out;
}

function cancelled(reports: ConvertReport[]): ConvertCancelledError {
  return torchsaveError('E_CANCELLED', 'conversion cancelled', { reports } as Partial<TorchsaveError>) as ConvertCancelledError;
}

/**
 * Converts checkpoints: files, folders (recursively: `.pt .pth .bin .ckpt .safetensors`
 * and `*.index.json` sharded checkpoints, read as one state dict) and glob patterns.
 * Resolves to one report per input, in sorted input order; rejects only for bad options
 * (`E_INVALID_ARGUMENT`), inputs that do not exist (`E_IO`) or cancellation (`E_CANCELLED`).
 */
export async function convert(inputs: string | string[], opts: ConvertRunOptions = {}): Promise<ConvertReport[]> {
  const specs = typeof inputs === 'string' ? [inputs] : inputs;
  if (!Array.isArray(specs) || specs.some((s) => typeof s !== 'string')) fail('convert expects a path or an array of paths');
  const { onProgress, signal, ...rest } = opts;
  const nopts = nativeConvertOptions(rest);
  const dryRun = rest.dryRun === true;
  if (signal?.aborted) throw cancelled([]);
  const cb = onProgress
    ? (e: { index: number; total: number; done: number; input: string; report?: NativeFileReport | null }): void => {
        try {
          const ev: ConvertProgress = { index: e.index, total: e.total, done: e.done, input: e.input };
          if (e.report) ev.report = report(e.report, dryRun);
          onProgress(ev);
        } catch {
          // A UI callback must not take the conversion down.
        }
      }
    : null;
  try {
    const out = await native().convert(specs, nopts, cb, signal ?? null);
    return out.map((r) => report(r, dryRun));
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'E_CANCELLED') {
      const raw = (e as { reports?: NativeFileReport[] }).reports ?? [];
      throw cancelled(raw.map((r) => report(r, dryRun)));
    }
    // Aborted before the work started: napi cancels the queued task with its own error.
    if (signal?.aborted) throw cancelled([]);
    throw e;
  }
}

/** The batch form; the same function as {@link convert}. */
export const convertMany = convert;

/** The inputs {@link convert} would process (sorted), optionally one worker's share. */
export function discoverInputs(patterns: string | string[], opts: { shardIndex?: number; shardCount?: number } = {}): string[] {
  const specs = typeof patterns === 'string' ? [patterns] : patterns;
  return native().discoverInputs(specs, count('shardIndex', opts.shardIndex), count('shardCount', opts.shardCount));
}

/** Bytes in a size string (`5GB` = 5e9, `500MiB`). */
export function parseSize(size: string | number): number {
  return typeof size === 'number' ? size : native().parseSize(size);
}

/** What {@link inspectMany} found. */
export interface InspectSummary {
  /** The files looked at (after expanding folders and globs). */
  files: string[];
  /** Files read successfully. */
  count: number;
  /** Format (`zip`, `legacy`, `safetensors`, `hf-index`, ...) → files. */
  formats: Record<string, number>;
  /** dtype → tensors and their bytes. */
  dtypes: Record<
    string,
    {
      /** Tensors of this dtype. */
      tensors: number;
      /** Their bytes. */
      bytes: number;
    }
  >;
  /** Tensors in all the files read. */
  tensors: number;
  /** Bytes of the files read (shards included). */
  totalBytes: number;
  /** Bytes of tensor values (each distinct tensor once). */
  tensorBytes: number;
  /** Files that could not be read. */
  errors: {
    /** The file. */
    path: string;
    /** Why it could not be read. */
    code: TorchsaveErrorCode;
    /** The error's message. */
    message: string;
  }[];
}

/** Summarises many files (files, folders, globs) off the event loop. Nothing in them is
 * executed; `weightsOnly` additionally rejects what torch's weights-only loader rejects. */
export async function inspectMany(paths: string | string[], opts: { weightsOnly?: boolean } = {}): Promise<InspectSummary> {
  const specs = typeof paths === 'string' ? [paths] : paths;
  const s = await native().inspectMany(specs, opts.weightsOnly);
  return {
    files: s.files,
    count: s.count,
    formats: Object.fromEntries(s.formats.map((f) => [f.name, f.files])),
    dtypes: Object.fromEntries(s.dtypes.map((d) => [d.dtype, { tensors: d.tensors, bytes: d.bytes }])),
    tensors: s.tensors,
    totalBytes: s.totalBytes,
    tensorBytes: s.tensorBytes,
    errors: s.errors.map((e) => ({ path: e.path, code: e.code as TorchsaveErrorCode, message: e.message })),
  };
}

/**
 * The `inspect --json` document (ARCHITECTURE.md schema) of one file or its bytes, as a JSON
 * string; `sha256` adds a digest per tensor. Nothing in the file is executed; `weightsOnly`
 * additionally rejects what torch's weights-only loader rejects.
 * @internal The CLI's; not exported from the package.
 */
export function inspectJson(source: string | Uint8Array, opts: { sha256?: boolean; weightsOnly?: boolean } = {}): string {
  return native().inspect(source, opts);
}

/** {@link diff}'s answer. Keys are tensor paths (`fc.weight`, `model_state_dict/fc.weight`). */
export interface DiffResult {
  /** Only in `b`. */
  added: string[];
  /** Only in `a`. */
  removed: string[];
  /** In both, different (in `a`'s order). `maxAbsDiff`: largest |a-b| when both are real
   * numbers of one shape (NaN when a NaN faces a number), else null. */
  changed: {
    /** The state-dict key. */
    key: string;
    /** What differs first: dtype, then shape, then values. */
    reason: 'dtype' | 'shape' | 'values';
    /** Largest |a-b|, or null (see above). */
    maxAbsDiff: number | null;
  }[];
  /** Keys identical in both. */
  same: number;
}

/** Compares two checkpoints of any supported format (a `.pt` and the `.safetensors`
 * converted from it compare equal), off the event loop. */
export async function diff(a: string, b: string, opts: { weightsOnly?: boolean } = {}): Promise<DiffResult> {
  const d = await native().diff(a, b, opts.weightsOnly);
  return {
    added: d.added,
    removed: d.removed,
    changed: d.changed.map((c) => ({ key: c.key, reason: c.reason, maxAbsDiff: c.maxAbsDiff ?? null })),
    same: d.same,
  };
}

/** True when two checkpoints hold the same tensors. */
export function isSame(d: DiffResult): boolean {
  return d.added.length === 0 && d.removed.length === 0 && d.changed.length === 0;
}
