/**
 * `torchsave scan FILE|DIR|GLOB... [--strict] [--json | --sarif] [--all]`
 *
 * Runs torchsave's pickle VM over every pickle in each file (nothing is imported or executed)
 * and reports every global it would import or call, classified allowlist-first (docs/scan.md):
 * `dangerous` flags the file (exit 1), `unknown` only with `--strict`. Exit 2: a file could not
 * be given a verdict (unreadable, no pickle in it could be run, a limit hit). With several
 * files: a line per file, a summary, and a progress bar on a terminal.
 * `--json`: one scan document per file, one JSON object per line (JSON Lines).
 * `--sarif`: one SARIF 2.1.0 log for all files (CI code-scanning upload).
 */
import { type CliIO, type Command, EXIT_USAGE, UsageError, parseFlags } from './io';
import { ProgressBar } from './progress';
import { type ScanFinding, type ScanReport, scanAsync, scanDiscover } from '../scan';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';

const EXIT_CLEAN = 0;
const EXIT_FLAGGED = 1;
const EXIT_SCAN_ERROR = 2;

/** The exit code for many reports: 1 if any is flagged, else 2 if any has no verdict, else 0. */
export function overallExit(reports: readonly ScanReport[]): number {
  if (reports.some((r) => r.exit_code === EXIT_FLAGGED)) return EXIT_FLAGGED;
  if (reports.some((r) => r.exit_code === EXIT_SCAN_ERROR)) return EXIT_SCAN_ERROR;
  return EXIT_CLEAN;
}

function findingLine(f: ScanFinding): string {
  const where = f.offset === null ? f.record : `${f.record || '(file)'} @${f.offset} ${f.opcode ?? ''}`.trimEnd();
  const written = f.written ? ` (written ${f.written})` : '';
  const times = f.count > 1 ? ` x${f.count}` : '';
  return `  ${f.severity.padEnd(9)} ${f.kind.padEnd(7)} ${f.name}${written}${times}  [${where}]  ${f.reason}`;
}

/** The human lines for one report; `all` lists safe and data findings too. */
export function reportLines(r: ScanReport, all: boolean): string[] {
  const c = r.counts;
  const head = `${r.status.toUpperCase()} ${r.path} (${r.format}): ${c.dangerous} dangerous, ${c.unknown} unknown, ${c.data} data, ${c.safe} safe`;
  const out = [head];
  const shown = r.findings.filter((f) => all || f.severity === 'dangerous' || f.severity === 'unknown' || f.severity === 'info');
  for (const f of shown) out.push(findingLine(f));
  for (const n of r.notes) out.push(`  note: ${n}`);
  if (r.error) out.push(`  error: ${r.error.code}: ${r.error.message}`);
  return out;
}

const RULES = [
  { id: 'dangerous-global', level: 'error', text: 'The pickle would import or call an execution, import, file, network, process or attribute-access primitive.' },
  { id: 'unknown-global', level: 'warning', text: 'The pickle would import or call something not known to be harmless.' },
  { id: 'scan-error', level: 'error', text: 'No verdict could be given for the file.' },
] as const;

/** One SARIF 2.1.0 log for all reports: dangerous findings are errors, unknown ones warnings
 * (notes unless `strict`), files without a verdict are scan-error results. */
export function sarifLog(reports: readonly ScanReport[], version: string, strict: boolean): unknown {
  const results: unknown[] = [];
  const uri = (p: string) => (p === '<bytes>' ? p : `file://${resolve(p)}`);
  for (const r of reports) {
    for (const f of r.findings) {
      if (f.severity !== 'dangerous' && f.severity !== 'unknown') continue;
      const dangerous = f.severity === 'dangerous';
      results.push({
        ruleId: dangerous ? 'dangerous-global' : 'unknown-global',
        level: dangerous ? 'error' : strict ? 'warning' : 'note',
        message: { text: `${f.kind} ${f.name}${f.written ? ` (written ${f.written})` : ''} in ${f.record || 'the file'}: ${f.reason}` },
        locations: [{ physicalLocation: { artifactLocation: { uri: uri(r.path) }, ...(f.offset !== null && f.record === '' ? { region: { byteOffset: f.offset } } : {}) } }],
        properties: { record: f.record, offset: f.offset, opcode: f.opcode, kind: f.kind, name: f.name, count: f.count },
      });
    }
    if (r.error && r.exit_code === EXIT_SCAN_ERROR) {
      results.push({
        ruleId: 'scan-error',
        level: 'error',
        message: { text: `${r.error.code}: ${r.error.message}` },
        locations: [{ physicalLocation: { artifactLocation: { uri: uri(r.path) } } }],
      });
    }
  }
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'torchsave scan',
            version,
            informationUri: 'https://github.com/torchsave/torchsave/blob/main/docs/scan.md',
            rules: RULES.map((x) => ({ id: x.id, shortDescription: { text: x.text }, defaultConfiguration: { level: x.level } })),
          },
        },
        results,
      },
    ],
  };
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

export const scanCommand: Command = {
  summary: 'report every global the pickles in checkpoints would import or call; flag the dangerous ones (never runs anything)',
  usage: 'torchsave scan FILE|DIR|GLOB... [--strict] [--json | --sarif] [--all]',
  options: [
    { flag: '--strict', help: 'unknown globals (not known to be harmless) flag the file too' },
    { flag: '--json', help: 'one scan document per file, one JSON object per line (docs/scan.md)' },
    { flag: '--sarif', help: 'one SARIF 2.1.0 log for all files (CI code scanning)' },
    { flag: '--all', help: 'human output: list safe and data findings too' },
  ],
  exitCodes: [
    [EXIT_CLEAN, 'clean: nothing dangerous (nothing unknown with --strict)'],
    [EXIT_FLAGGED, 'flagged: a dangerous global (or, with --strict, an unknown one) in some file'],
    [EXIT_SCAN_ERROR, 'error: a file could not be given a verdict (unreadable, not a pickle or checkpoint); or usage'],
  ],
  async run(args: string[], io: CliIO): Promise<number> {
    const { flags, positional } = parseFlags(args, ['--strict', '--json', '--sarif', '--all']);
    if (positional.length === 0) throw new UsageError('scan takes files, folders or globs');
    if (flags.has('--json') && flags.has('--sarif')) throw new UsageError('--json and --sarif are exclusive');
    const strict = flags.has('--strict');
    let files: string[];
    try {
      files = scanDiscover(positional);
    } catch (e) {
      // A missing path or a bad glob: no verdict (exit 2, not the CLI's usual 1 = flagged here).
      const err = e as { code?: string; message?: string };
      io.stderr(`${err.code ?? 'E_IO'}: ${err.message ?? String(e)}\n`);
      return EXIT_SCAN_ERROR;
    }
    const bar = io.stderrIsTTY && files.length > 1 ? new ProgressBar(io.stderr, files.length, io.columns) : null;
    const reports: ScanReport[] = [];
    for (const [i, f] of files.entries()) {
      if (io.signal?.aborted) break;
      bar?.started(files.length, f);
      const r = await scanAsync(f, { strict });
      reports.push(r);
      bar?.clear();
      if (flags.has('--json')) io.stdout(JSON.stringify(r) + '\n');
      else if (!flags.has('--sarif') && (files.length === 1 || r.status !== 'clean' || flags.has('--all'))) {
        io.stdout(reportLines(r, flags.has('--all')).join('\n') + '\n');
      }
      bar?.finishedFile(files.length, i + 1, fileSize(f));
    }
    bar?.finish();
    if (flags.has('--sarif')) {
      const { packageVersion } = await import('../cli');
      io.stdout(JSON.stringify(sarifLog(reports, packageVersion(), strict), null, 2) + '\n');
    } else if (!flags.has('--json') && files.length > 1) {
      const n = (s: string) => reports.filter((r) => r.status === s).length;
      io.stdout(`scanned ${reports.length} files: ${n('clean')} clean, ${n('flagged')} flagged, ${n('error')} without a verdict${strict ? ' (strict)' : ''}\n`);
    }
    return files.length === 0 ? EXIT_USAGE : overallExit(reports);
  },
};
