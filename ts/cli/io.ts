import { parseArgs } from 'node:util';

/** Where a CLI command writes, so commands can run in-process (tests) or in a real process. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** stderr is a terminal: long commands draw a progress bar there. */
  stderrIsTTY?: boolean;
  /** Terminal width for the progress bar (default 80). */
  columns?: number;
  /** Aborted on Ctrl-C: long commands stop starting new work and exit 130. */
  signal?: AbortSignal;
}

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong. `convert` adds
 * 3 (every file failed) and 130 (interrupted); see docs/convert.md. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_ALL_FAILED = 3;
export const EXIT_INTERRUPTED = 130;

export class UsageError extends Error {}

/** One option in a command's `--help`. */
export interface OptionHelp {
  /** `--out`, `--strip-prefix`. */
  flag: string;
  /** `-o`. */
  short?: string;
  /** What follows the flag (`DIR`, `N`), absent for a switch. */
  value?: string;
  /** One line. */
  help: string;
}

export interface Command {
  /** One line for the help text. */
  summary: string;
  /** The synopsis (`torchsave convert <files|dirs|globs...> [options]`). */
  usage: string;
  /** Every option the command takes, for `--help` (`-h, --help` is added). */
  options: readonly OptionHelp[];
  /** Exit codes and what they mean, for `--help`. */
  exitCodes: readonly (readonly [code: number, meaning: string])[];
  run(args: string[], io: CliIO): Promise<number> | number;
}

/** Help options every command has; `torchsave <cmd> --help` / `-h` print the help, exit 0. */
export const HELP_OPTION: OptionHelp = { flag: '--help', short: '-h', help: 'print this help and exit' };

/** True when `args` ask for help (`--help` or `-h` before a `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** The option table: `  -o, --out DIR    what it does`. */
export function optionLines(options: readonly OptionHelp[]): string[] {
  const left = options.map((o) => `${o.short ? `${o.short}, ` : '    '}${o.flag}${o.value ? ` ${o.value}` : ''}`);
  const w = Math.min(Math.max(...left.map((l) => l.length)) + 2, 34);
  return options.map((o, i) => {
    const l = left[i]!;
    return l.length + 2 > w ? `  ${l}\n  ${' '.repeat(w)}${o.help}` : `  ${l.padEnd(w)}${o.help}`;
  });
}

/** `torchsave <name> --help`. */
export function commandHelp(name: string, c: Command): string {
  const lines = [`usage: ${c.usage}`, '', `${c.summary}.`, '', 'options:', ...optionLines([...c.options, HELP_OPTION]), '', 'exit codes:'];
  for (const [code, meaning] of c.exitCodes) lines.push(`  ${String(code).padStart(3)}  ${meaning}`);
  lines.push('', `More: docs/convert.md (torchsave ${name}, exit codes, retry recipes).`);
  return lines.join('\n') + '\n';
}

/** Splits `--flag`s from positionals; unknown flags are usage errors. */
export function parseFlags(args: string[], known: readonly string[]): { flags: Set<string>; positional: string[] } {
  const flags = new Set<string>();
  const positional: string[] = [];
  let onlyPositional = false;
  for (const a of args) {
    if (!onlyPositional && a === '--') onlyPositional = true;
    else if (!onlyPositional && a.startsWith('-') && a !== '-') {
      if (!known.includes(a)) throw new UsageError(`unknown option '${a}'`);
      flags.add(a);
    } else positional.push(a);
  }
  return { flags, positional };
}

/** Options with values, via node:util's parseArgs; unknown or malformed options are usage
 * errors. `multiple` options come back as arrays. */
export function parseOptions<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
): { values: ParsedValues<T>; positional: string[] } {
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: r.values as ParsedValues<T>, positional: r.positionals };
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message.split('\n')[0]! : String(e));
  }
}

type ParseArgsOptionsConfig = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>;
type ParsedValues<T extends ParseArgsOptionsConfig> = {
  [K in keyof T]?: T[K]['type'] extends 'string' ? (T[K]['multiple'] extends true ? string[] : string) : T[K]['multiple'] extends true ? boolean[] : boolean;
};

/** `1.2 GB` style (powers of 1000, like `5GB` in --shard-size). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}
