/**
 * `torchsave convert <files|dirs|globs...> [--out DIR] [options]` — see docs/convert.md.
 *
 * Output: one line per input on stdout (`ok`, `dry-run` or `FAIL CODE`) and a summary, or
 * with `--json` one document `{summary, reports}`; a progress bar on stderr when it is a
 * terminal (never with `--json` or `--no-progress`).
 * Exit codes (also in `--help`): 0 every file converted or skipped (or nothing to do), 1 some
 * files failed, 2 usage (bad options), 3 every file failed or the inputs could not be listed,
 * 130 interrupted (Ctrl-C: files in flight finish, the rest are not started).
 * `--skip-existing` resumes a batch: inputs whose outputs exist and pass a cheap check are
 * reported `skip` and count as success.
 */
import {
  type CliIO,
  type Command,
  EXIT_ALL_FAILED,
  EXIT_ERROR,
  EXIT_INTERRUPTED,
  EXIT_OK,
  EXIT_USAGE,
  type OptionHelp,
  UsageError,
  formatBytes,
  parseOptions,
} from './io';
import { ProgressBar } from './progress';
import { type ConvertCancelledError, type ConvertOptions, type ConvertReport, convert } from '../convert';

const OPTIONS = {
  out: { type: 'string', short: 'o' },
  to: { type: 'string' },
  select: { type: 'string' },
  'strip-prefix': { type: 'string', multiple: true },
  'strip-dataparallel': { type: 'boolean' },
  rename: { type: 'string', multiple: true },
  dtype: { type: 'string' },
  'drop-optimizer': { type: 'boolean' },
  compact: { type: 'boolean' },
  'shard-size': { type: 'string' },
  jobs: { type: 'string', short: 'j' },
  'dry-run': { type: 'boolean' },
  verify: { type: 'boolean' },
  force: { type: 'boolean', short: 'f' },
  'skip-existing': { type: 'boolean' },
  'no-durable': { type: 'boolean' },
  'keep-tree': { type: 'boolean' },
  'shard-index': { type: 'string' },
  'shard-count': { type: 'string' },
  'no-weights-only': { type: 'boolean' },
  json: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
} as const;

/** `--help` for every option above (the type makes a missing one a compile error). */
const HELP: Record<keyof typeof OPTIONS, readonly [value: string, help: string]> = {
  out: ['DIR', 'output folder (created when missing); default: next to each input'],
  to: ['FORMAT', 'output format: safetensors (default), pt (torch.save zip), pt-legacy (pre-1.6) or dcp (a torch.distributed.checkpoint folder)'],
  select: ['PATH', "convert this sub-object (model_state_dict, a/b/0); safetensors picks a checkpoint's state dict itself"],
  'strip-prefix': ['P', 'remove this key prefix (repeatable, applied in order)'],
  'strip-dataparallel': ['', "remove every leading 'module.' (nested DataParallel / DDP wrappers)"],
  rename: ["'RE=>REPL'", 'rename keys: Rust regex, JS replacement ($1, $<name>, $&); repeatable, in order'],
  dtype: ['DTYPE', 'cast floating tensors to float16, bfloat16, float32 or float64'],
  'drop-optimizer': ['', 'remove optimizer state (optimizer, optimizer_state_dict, ...) from checkpoints'],
  compact: ['', 'pt targets: each storage keeps only the bytes its tensors reach'],
  'shard-size': ['SIZE', 'split outputs into shards of at most SIZE (5GB, 500MiB), Hugging Face layout + index'],
  jobs: ['N', 'files converted at once (default: the number of cores)'],
  'dry-run': ['', 'do everything except writing; print what would be written'],
  verify: ['', 'read every output back and compare each tensor (with --skip-existing: read existing outputs in full)'],
  force: ['', 'overwrite existing outputs'],
  'skip-existing': ['', 'resume: skip inputs whose outputs exist and are valid (size and header checked); exit 0 when all are'],
  'no-durable': ['', 'skip the fsyncs (outputs stay atomic: temporary file + rename)'],
  'keep-tree': ['', "mirror the inputs' folders under --out"],
  'shard-index': ['I', "this worker's share: every N-th input from I (0-based), with --shard-count; one input with --shard-size: every N-th output shard"],
  'shard-count': ['N', 'the number of workers sharing the input list, with --shard-index'],
  'no-weights-only': ['', "read inputs without torch's weights-only policy (still never executes anything)"],
  json: ['', 'print one JSON document {summary, reports} instead of lines'],
  'no-progress': ['', 'no progress bar on stderr'],
};

const TARGETS = ['pt', 'pt-legacy', 'safetensors', 'dcp'] as const;
const DTYPES = ['float16', 'bfloat16', 'float32', 'float64'] as const;

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
  return Number(v);
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

/** The command line → convert's options (usage errors for malformed values). */
export function convertOptionsFromArgs(args: string[]): { inputs: string[]; opts: ConvertOptions; json: boolean; progress: boolean } {
  const { values: v, positional } = parseOptions(args, OPTIONS);
  if (positional.length === 0) throw new UsageError('convert needs at least one file, folder or glob');
  const opts: ConvertOptions = {};
  if (v.out !== undefined) opts.out = v.out;
  const to = oneOf('to', v.to, TARGETS);
  if (to) opts.to = to;
  if (v.select !== undefined) opts.select = v.select;
  if (v['strip-prefix']) opts.stripPrefix = v['strip-prefix'];
  if (v['strip-dataparallel']) opts.stripDataParallel = true;
  // 'regex=>replacement', parsed by the core (a malformed one is E_INVALID_ARGUMENT: exit 2).
  if (v.rename) opts.rename = v.rename;
  const dtype = oneOf('dtype', v.dtype, DTYPES);
  if (dtype) opts.dtype = dtype;
  if (v['drop-optimizer']) opts.dropOptimizer = true;
  if (v.compact) opts.compact = true;
  if (v['shard-size'] !== undefined) opts.shardSize = /^\d+$/.test(v['shard-size']) ? Number(v['shard-size']) : v['shard-size'];
  const jobs = int('jobs', v.jobs, 1);
  if (jobs !== undefined) opts.jobs = jobs;
  if (v['dry-run']) opts.dryRun = true;
  if (v.verify) opts.verify = true;
  if (v.force) opts.force = true;
  if (v['skip-existing']) {
    if (v.force) throw new UsageError('--force (overwrite outputs) and --skip-existing (keep them) exclude each other');
    opts.skipExisting = true;
  }
  if (v['no-durable']) opts.durable = false;
  if (v['keep-tree']) opts.keepTree = true;
  if (v['keep-tree'] && v.out === undefined) throw new UsageError('--keep-tree needs --out');
  const si = int('shard-index', v['shard-index'], 0);
  const sc = int('shard-count', v['shard-count'], 1);
  if ((si === undefined) !== (sc === undefined)) throw new UsageError('--shard-index and --shard-count go together');
  if (si !== undefined && sc !== undefined) {
    if (si >= sc) throw new UsageError(`--shard-index must be below --shard-count (${si} >= ${sc})`);
    opts.shardIndex = si;
    opts.shardCount = sc;
  }
  if (v['no-weights-only']) opts.weightsOnly = false;
  return { inputs: positional, opts, json: v.json === true, progress: v['no-progress'] !== true };
}

function line(r: ConvertReport, dryRun: boolean): string {
  if (r.error) return `FAIL ${r.input}: ${r.error.code}: ${r.error.message}`;
  const outs = r.outputs.length === 1 ? r.outputs[0]! : `${r.outputs.length} files (${r.outputs[0] ?? ''} ...)`;
  if (r.status === 'skipped') return `skip ${r.input} -> ${outs} (exists)`;
  const size = dryRun ? (r.bytesOut > 0 ? `, ${formatBytes(r.bytesOut)}` : '') : `, ${formatBytes(r.bytesOut)}`;
  const verified = r.verified ? ', verified' : '';
  const notes = r.notes.length ? ` [${r.notes.join('; ')}]` : '';
  return `${dryRun ? 'would write' : 'ok'} ${r.input} -> ${outs} (${r.tensors} tensors${size}, ${r.millis} ms${verified})${notes}`;
}

/** The exit code for a finished batch. */
export function exitCodeFor(reports: readonly ConvertReport[]): number {
  const failed = reports.filter((r) => r.error).length;
  if (failed === 0) return EXIT_OK;
  return failed === reports.length ? EXIT_ALL_FAILED : EXIT_ERROR;
}

function summaryOf(reports: readonly ConvertReport[], seconds: number, dryRun: boolean) {
  const failed = reports.filter((r) => r.error).length;
  const skipped = reports.filter((r) => r.status === 'skipped').length;
  return {
    total: reports.length,
    converted: reports.length - failed - skipped,
    skipped,
    failed,
    dryRun,
    bytesIn: reports.reduce((a, r) => a + r.bytesIn, 0),
    bytesOut: reports.reduce((a, r) => a + r.bytesOut, 0),
    seconds: Math.round(seconds * 1000) / 1000,
    exitCode: exitCodeFor(reports),
  };
}

export const convertCommand: Command = {
  summary: 'convert many checkpoints (pt <-> safetensors, key edits, dtype casts, sharding) in parallel',
  usage: 'torchsave convert <files|dirs|globs...> [--out DIR] [options]',
  options: Object.entries(HELP).map(([name, [value, help]]) => {
    const o: OptionHelp = { flag: `--${name}`, help };
    const short = (OPTIONS[name as keyof typeof OPTIONS] as { short?: string }).short;
    if (short) o.short = `-${short}`;
    if (value) o.value = value;
    return o;
  }),
  exitCodes: [
    [EXIT_OK, 'every file converted or skipped (--skip-existing), or nothing to do'],
    [EXIT_ERROR, 'some files failed (FAIL lines on stderr), the others were converted'],
    [EXIT_USAGE, 'usage: unknown option, bad value, --force with --skip-existing'],
    [EXIT_ALL_FAILED, 'every file failed, or the inputs could not be listed'],
    [EXIT_INTERRUPTED, 'interrupted (Ctrl-C): files in flight finished, the rest were not started'],
  ],
  async run(args: string[], io: CliIO): Promise<number> {
    const { inputs, opts, json, progress } = convertOptionsFromArgs(args);
    const bar = progress && !json && io.stderrIsTTY ? new ProgressBar(io.stderr, 0, io.columns ?? 80) : null;
    const t0 = Date.now();
    let reports: ConvertReport[];
    let interrupted = false;
    try {
      const run: Parameters<typeof convert>[1] = { ...opts };
      if (bar) {
        run.onProgress = (e) => {
          if (e.report) bar.finishedFile(e.total, e.done, e.report.bytesIn);
          else bar.started(e.total, e.input);
        };
      }
      if (io.signal) run.signal = io.signal;
      reports = await convert(inputs, run);
    } catch (e) {
      bar?.finish();
      const code = (e as { code?: unknown }).code;
      if (code === 'E_CANCELLED') {
        reports = (e as ConvertCancelledError).reports;
        interrupted = true;
      } else if (code === 'E_INVALID_ARGUMENT') {
        throw new UsageError(e instanceof Error ? e.message : String(e));
      } else {
        // The inputs could not be listed (a missing file, a bad glob): nothing was converted.
        io.stderr(`${typeof code === 'string' ? code : 'E_INTERNAL'}: ${e instanceof Error ? e.message : String(e)}\n`);
        return EXIT_ALL_FAILED;
      }
    }
    bar?.finish();
    const dryRun = opts.dryRun === true;
    const summary = summaryOf(reports, (Date.now() - t0) / 1000, dryRun);
    const exit = interrupted ? EXIT_INTERRUPTED : summary.exitCode;
    if (json) {
      io.stdout(JSON.stringify({ summary: { ...summary, interrupted, exitCode: exit }, reports }, null, 2) + '\n');
      return exit;
    }
    for (const r of reports) (r.error ? io.stderr : io.stdout)(line(r, dryRun) + '\n');
    const verb = dryRun ? 'checked' : 'converted';
    let s = `${verb} ${summary.converted} of ${summary.total} files in ${summary.seconds.toFixed(1)} s (${formatBytes(summary.bytesIn)} read`;
    s += dryRun ? ')' : `, ${formatBytes(summary.bytesOut)} written)`;
    if (summary.skipped) s += `; ${summary.skipped} skipped (outputs exist)`;
    if (summary.failed) s += `; ${summary.failed} failed`;
    if (interrupted) s += '; interrupted';
    io.stdout(s + '\n');
    return exit;
  },
};
