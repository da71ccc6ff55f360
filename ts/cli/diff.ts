/**
 * `torchsave diff A B [--json]`: tensors added (only in B), removed (only in A) and changed
 * (dtype, shape or values, with the largest absolute difference), for any pair of supported
 * formats (a `.pt` and the `.safetensors` converted from it compare equal).
 *
 * Exit codes, like diff(1): 0 same tensors, 1 different, 2 usage error or a file that could
 * not be read (`CODE: message` on stderr).
 */
import { type CliIO, type Command, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, parseOptions } from './io';
import { type DiffResult, diff, isSame } from '../convert';

function num(x: number | null): string {
  if (x === null) return '';
  if (Number.isNaN(x)) return '  max |a-b| = nan';
  return `  max |a-b| = ${x.toPrecision(4)}`;
}

export function diffLines(d: DiffResult): string[] {
  const out: string[] = [];
  for (const k of d.removed) out.push(`- ${k}`);
  for (const k of d.added) out.push(`+ ${k}`);
  for (const c of d.changed) out.push(`~ ${c.key}  ${c.reason}${num(c.maxAbsDiff)}`);
  out.push(`${d.same} same, ${d.changed.length} changed, ${d.added.length} added, ${d.removed.length} removed`);
  return out;
}

export const diffCommand: Command = {
  summary: 'compare two checkpoints tensor by tensor (exit 0 same, 1 different, 2 error)',
  usage: 'torchsave diff A B [--json] [--weights-only]',
  options: [
    { flag: '--json', help: 'one JSON document {identical, added, removed, changed, same}' },
    { flag: '--weights-only', help: "read both files with torch's weights-only policy" },
  ],
  exitCodes: [
    [EXIT_OK, 'the same tensors (keys, dtypes, shapes, values)'],
    [EXIT_ERROR, 'different'],
    [EXIT_USAGE, 'usage error, or a file that could not be read (CODE: message on stderr)'],
  ],
  async run(args: string[], io: CliIO): Promise<number> {
    const { values, positional } = parseOptions(args, { json: { type: 'boolean' }, 'weights-only': { type: 'boolean' } } as const);
    if (positional.length !== 2) throw new UsageError('diff takes exactly two files');
    let d: DiffResult;
    try {
      d = await diff(positional[0]!, positional[1]!, { weightsOnly: values['weights-only'] === true });
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      io.stderr(`${typeof code === 'string' ? code : 'E_INTERNAL'}: ${e instanceof Error ? e.message : String(e)}\n`);
      return EXIT_USAGE;
    }
    const same = isSame(d);
    if (values.json) {
      // NaN is not JSON: a NaN difference is written as the string "nan".
      const doc = { identical: same, ...d, changed: d.changed.map((c) => ({ ...c, maxAbsDiff: c.maxAbsDiff !== null && Number.isNaN(c.maxAbsDiff) ? 'nan' : c.maxAbsDiff })) };
      io.stdout(JSON.stringify(doc, null, 2) + '\n');
    } else {
      io.stdout(diffLines(d).join('\n') + '\n');
    }
    return same ? EXIT_OK : EXIT_ERROR;
  },
};
