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

export interface Command {
  /** One line for the help text. */
  summary: string;
  usage: string;
  run(args: string[], io: CliIO): Promise<number> | number;
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
