/** Where a CLI command writes, so commands can run in-process (tests) or in a real process. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes: 0 ok, 1 the operation failed, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

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
