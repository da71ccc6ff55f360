#!/usr/bin/env node
/**
 * The `torchsave` command. Subcommands live in ts/cli/ and register in `commands`; each
 * lists its options and exit codes, which `torchsave <command> --help` (or `-h`) prints.
 * `torchsave --version` (`-V`) prints the package version.
 * Exit codes: 0 ok, 1 error (`code: message` on stderr), 2 usage; `convert` adds 3 (every
 * file failed) and 130 (interrupted), `diff` exits 1 when the files differ (docs/convert.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CliIO,
  type Command,
  EXIT_ERROR,
  EXIT_OK,
  EXIT_USAGE,
  HELP_OPTION,
  type OptionHelp,
  UsageError,
  commandHelp,
  optionLines,
  wantsHelp,
} from './cli/io';
import { convertCommand } from './cli/convert';
import { diffCommand } from './cli/diff';
import { inspectCommand } from './cli/inspect';
import { scanCommand } from './cli/scan';

/** Subcommands by name. */
export const commands: Record<string, Command> = {
  inspect: inspectCommand,
  convert: convertCommand,
  diff: diffCommand,
  scan: scanCommand,
};

/** The package's version (package.json next to dist/ and ts/). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

const TOP_OPTIONS: readonly OptionHelp[] = [
  { flag: '--version', short: '-V', help: 'print the version and exit' },
  { ...HELP_OPTION, help: 'print this help and exit (torchsave <command> --help: that command\'s options)' },
];

function help(): string {
  const lines = ['usage: torchsave <command> [options]', '       torchsave <command> --help', '', 'commands:'];
  const w = Math.max(...Object.keys(commands).map((n) => n.length)) + 2;
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(w)}${c.summary}`);
  lines.push('', 'options:', ...optionLines(TOP_OPTIONS), '', 'exit codes:');
  lines.push(`  ${EXIT_OK}  success`, `  ${EXIT_ERROR}  the operation failed (CODE: message on stderr); convert: some files failed`);
  lines.push(`  ${EXIT_USAGE}  usage error (unknown command or option, bad value)`, '  3  convert: every file failed      130  convert: interrupted (Ctrl-C)');
  lines.push('  scan: 0 clean, 1 flagged, 2 a file without a verdict (docs/scan.md)');
  return lines.join('\n') + '\n';
}

/** Runs the CLI in-process; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout)(help());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`${packageVersion()}\n`);
    return EXIT_OK;
  }
  const cmd = commands[name];
  if (!cmd) {
    io.stderr(`torchsave: unknown ${name.startsWith('-') ? 'option' : 'command'} '${name}'\n\n${help()}`);
    return EXIT_USAGE;
  }
  if (wantsHelp(rest)) {
    io.stdout(commandHelp(name, cmd));
    return EXIT_OK;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`torchsave ${name}: ${e.message}\nusage: ${cmd.usage}\n(torchsave ${name} --help lists every option)\n`);
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
