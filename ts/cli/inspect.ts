/**
 * `torchsave inspect FILE [--json] [--sha256] [--weights-only]` (FILE may be a distributed
 * checkpoint folder: `.metadata` + `*.distcp`, read as the state dict it describes)
 *
 * Human output mirrors what the seed prints in Python:
 * * a state dict (a dict of tensors): `key \t torch.Size([...])` per entry, like
 *   `for k in sd: print(k, "\t", sd[k].size())`;
 * * an optimizer state dict: `state \t {...}` and `param_groups \t [...]` in Python's repr;
 * * anything else (a checkpoint): a tree of keys, with tensor sizes and scalar reprs.
 * `--json` prints the core's `inspect` document (ARCHITECTURE.md schema); `--sha256` adds
 * per-tensor digests to it.
 *
 * Several paths, a folder or a glob: a summary over every checkpoint found (files, formats,
 * dtypes, tensors, bytes; files that could not be read with their codes), `--json` for the
 * same as a document. Exit 1 when any file could not be read.
 */
import { existsSync, statSync } from 'node:fs';
import { type CliIO, type Command, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, formatBytes, parseFlags } from './io';
import { type InspectSummary, inspectJson, inspectMany } from '../convert';
import { repr } from '../repr';
import { load } from '../serialization';
import { isCheckpoint } from '../distributed/checkpoint';
import { Tensor } from '../tensor';
import { PyObject, PyTuple } from '../values';
import { SparseTensor } from '../sparse';

function isStateDict(v: unknown): v is Map<unknown, Tensor> {
  if (!(v instanceof Map) || v.size === 0) return false;
  for (const x of v.values()) if (!(x instanceof Tensor)) return false;
  return true;
}

function isOptimizerStateDict(v: unknown): v is Map<string, unknown> {
  return v instanceof Map && v.size === 2 && v.has('state') && v.has('param_groups');
}

function keyText(k: unknown): string {
  return typeof k === 'string' ? k : repr(k);
}

function tensorText(t: Tensor): string {
  return `${t.size().toString()} ${t.dtype}`;
}

/** Lines describing `v`, indented by `indent`. */
export function describeHuman(v: unknown, indent = ''): string[] {
  if (isStateDict(v)) return [...v].map(([k, t]) => `${indent}${keyText(k)} \t ${t.size().toString()}`);
  if (isOptimizerStateDict(v)) return [...v].map(([k, x]) => `${indent}${k} \t ${repr(x)}`);
  if (v instanceof Tensor) return [`${indent}${tensorText(v)}`];
  if (v instanceof Map) {
    const out: string[] = [];
    for (const [k, x] of v) out.push(...entry(keyText(k), x, indent));
    return out;
  }
  if (v instanceof PyObject && v.state instanceof Map) {
    return [`${indent}<${v.fullName}>`, ...describeHuman(v.state, indent + '  ')];
  }
  return [`${indent}${repr(v)}`];
}

function entry(label: string, x: unknown, indent: string): string[] {
  if (x instanceof Tensor) return [`${indent}${label}: ${tensorText(x)}`];
  if (x instanceof SparseTensor) return [`${indent}${label}: ${repr(x)}`];
  if (x instanceof Map && x.size > 0) return [`${indent}${label}:`, ...describeHuman(x, indent + '  ')];
  if (x instanceof PyObject) {
    const inner = x.state instanceof Map ? describeHuman(x.state, indent + '  ') : [];
    return [`${indent}${label}: <${x.fullName}>`, ...inner];
  }
  if (Array.isArray(x) && !(x instanceof PyTuple) && x.some((e) => e instanceof Tensor)) {
    return [`${indent}${label}:`, ...x.flatMap((e, i) => entry(String(i), e, indent + '  '))];
  }
  return [`${indent}${label}: ${repr(x)}`];
}

/** The human form of a many-file summary. */
export function summaryLines(s: InspectSummary): string[] {
  const formats = Object.entries(s.formats)
    .map(([f, n]) => `${f} ${n}`)
    .join(', ');
  const out = [
    `files: ${s.count}${formats ? ` (${formats})` : ''}, ${formatBytes(s.totalBytes)}`,
    `tensors: ${s.tensors}, ${formatBytes(s.tensorBytes)} of values`,
  ];
  const dts = Object.entries(s.dtypes);
  if (dts.length) {
    out.push('dtypes:');
    const w = Math.max(...dts.map(([d]) => d.length));
    for (const [d, st] of dts) out.push(`  ${d.padEnd(w)}  ${String(st.tensors).padStart(7)} tensors  ${formatBytes(st.bytes)}`);
  }
  if (s.errors.length) {
    out.push(`unreadable: ${s.errors.length}`);
    for (const e of s.errors) out.push(`  ${e.code}: ${e.message}`);
  }
  return out;
}

function isSingleFile(positional: string[]): boolean {
  if (positional.length !== 1) return false;
  const p = positional[0]!;
  // A missing path stays on the single-file path so its E_IO reads as before; a distributed
  // checkpoint folder is one checkpoint.
  if (existsSync(p) && isCheckpoint(p)) return true;
  return !existsSync(p) ? !/[*?[]/.test(p) : !statSync(p).isDirectory();
}

async function inspectSummary(paths: string[], json: boolean, weightsOnly: boolean, io: CliIO): Promise<number> {
  const s = await inspectMany(paths, { weightsOnly });
  io.stdout(json ? JSON.stringify(s, null, 2) + '\n' : summaryLines(s).join('\n') + '\n');
  return s.errors.length ? EXIT_ERROR : EXIT_OK;
}

export const inspectCommand: Command = {
  summary: 'print what a checkpoint holds; with a folder, glob or several files, a summary of them all',
  usage: 'torchsave inspect FILE [--json] [--sha256] [--weights-only]  |  torchsave inspect DIR|GLOB|FILES... [--json]',
  options: [
    { flag: '--json', help: 'one FILE: the inspect document (format, tensors, globals, weights_only_ok); many: the summary as JSON' },
    { flag: '--sha256', help: "with --json and one FILE: each tensor's sha256 (contiguous little-endian values)" },
    { flag: '--weights-only', help: "read with torch's weights-only policy: refuse what torch.load(weights_only=True) refuses" },
  ],
  exitCodes: [
    [EXIT_OK, 'printed'],
    [EXIT_ERROR, 'a file could not be read (CODE: message on stderr; many files: listed as unreadable)'],
    [EXIT_USAGE, 'usage: unknown option, no path, --sha256 without --json or with many files'],
  ],
  run(args: string[], io: CliIO): number | Promise<number> {
    const { flags, positional } = parseFlags(args, ['--json', '--sha256', '--weights-only']);
    if (positional.length === 0) throw new UsageError('inspect takes a FILE, or folders, globs or several files');
    if (!isSingleFile(positional)) {
      if (flags.has('--sha256')) throw new UsageError('--sha256 goes with a single FILE');
      return inspectSummary(positional, flags.has('--json'), flags.has('--weights-only'), io);
    }
    const file = positional[0]!;
    const weightsOnly = flags.has('--weights-only');
    if (flags.has('--json')) {
      const doc = inspectJson(file, { sha256: flags.has('--sha256'), weightsOnly });
      io.stdout(doc.endsWith('\n') ? doc : doc + '\n');
      return EXIT_OK;
    }
    if (flags.has('--sha256')) throw new UsageError('--sha256 goes with --json');
    const value = load(file, { weightsOnly, mapLocation: 'cpu' });
    io.stdout(describeHuman(value).join('\n') + '\n');
    return EXIT_OK;
  },
};
