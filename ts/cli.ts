#!/usr/bin/env node
/**
 * The `torchsave` command. Subcommands live in ts/cli/ and register in `commands`.
 * Exit codes: 0 ok, 1 error (`code: message` on stderr), 2 usage; `convert` adds 3 (every
 * file failed) and 130 (interrupted), `diff` exits 1 when the files differ (docs/convert.md).
 */
import { type CliIO, type Command, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError } from './cli/io';
import { convertCommand } from './cli/convert';
import { diffCommand } from './cli/diff';
import { inspectCommand } from './cli/inspect';

/** Subcommands by name. */
export const commands: Record<string, Command> = {
  inspect: inspectCommand,
  convert: convertCommand,
  diff: diffCommand,
};

function help(): string {
  const lines = ['usage: torchsave <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`, `             ${c.usage}`);
  return lines.join('\n') + '\n';
}

/** Runs the CLI in-process; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout)(help());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const cmd = commands[name];
  if (!cmd) {
    io.stderr(`torchsave: unknown command '${name}'\n\n${help()}`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`torchsave ${name}: ${e.message}\nusage: ${cmd.usage}\n`);
      return EXIT_USAGE;
    }
    const code = (e as { code?: unknown }).code;
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr(`${typeof code === 'string' ? code : 'E_INTERNAL'}: ${msg}\n`);
    return EXIT_ERROR;
  }
}

if (require.main === module) {
  // Ctrl-C once: stop starting new work, let files in flight finish (convert exits 130);
  // twice: the default (immediate exit; outputs are atomic, so nothing half-written stays).
  const ac = new AbortController();
  const onSigint = (): void => {
    ac.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  const io: CliIO = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stderrIsTTY: process.stderr.isTTY === true,
    columns: process.stderr.columns,
    signal: ac.signal,
  };
  void runCli(process.argv.slice(2), io).then((code) => {
    process.exitCode = code;
    process.off('SIGINT', onSigint);
  });
}
