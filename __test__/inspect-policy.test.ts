/**
 * inspect's `weights_only_ok` is the weights-only policy's verdict, and it must equal real
 * torch 2.11's: on EVERY fixture (generated interop fixtures, attacks, the core's pickle,
 * container and writer fixtures), `weights_only_ok` is true exactly when
 * `torch.load(path, weights_only=True)` succeeds. All files go to ONE Python process
 * (`__test__/python/policy/weights_only_verdict.py`, which never loads with
 * weights_only=False). Where torchsave cannot read a file at all, torch must refuse it too
 * (for damage or policy), unless the file is on the short list of limits torchsave keeps on
 * purpose; where torch refuses a file for damage (no verdict), torchsave must refuse it too or
 * have it on the short list of files it reads beyond torch.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { native } from '../ts/raw/native';
import { REPO_ROOT, ensureFixtures, pythonPath } from './helpers/python';

const VERDICT = join(REPO_ROOT, '__test__', 'python', 'policy', 'weights_only_verdict.py');

/** Files torch refuses for damage that torchsave reads on purpose (documented extensions). */
const READ_BEYOND_TORCH: Record<string, string> = {
  'crate/core/tests/pickles/py2_strings.pkl':
    "Python 2 str that is not UTF-8 decodes as latin-1 (StrEncoding::Utf8); torch's utf-8 decode raises",
};

/** Files torch loads that torchsave refuses on purpose: its limits, not the policy. */
const STRICTER_THAN_TORCH: Record<string, string> = {
  '__test__/fixtures/generated/attacks/pickle_deep_nesting.pt': 'Limits::max_depth',
  '__test__/fixtures/generated/attacks/pickle_deep_tuples.pt': 'Limits::max_depth',
  '__test__/fixtures/generated/attacks/zip_bomb_deflate.pt': 'the zip-bomb ratio check',
  '__test__/fixtures/generated/attacks/zip_duplicate_names.pt': 'duplicate zip names are ambiguous',
  'crate/core/tests/pickles/deep_nesting.pkl': 'Limits::max_depth',
  'crate/core/tests/pickles/protocol_6.pkl': 'pickle protocol 6 does not exist (CPython refuses it too)',
};

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, keep));
    else if (keep(name)) out.push(p);
  }
  return out;
}

interface Verdict {
  verdict: boolean | null;
  error?: string;
}

function torchVerdicts(paths: string[]): Verdict[] {
  const r = spawnSync(pythonPath(), ['-W', 'ignore', VERDICT], {
    input: JSON.stringify(paths),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`weights_only_verdict.py exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Verdict[];
}

/** inspect's verdict, or the error code when torchsave cannot read the file at all. */
function ourVerdict(path: string): boolean | string {
  try {
    const doc = JSON.parse(native().inspect(path, { sha256: false, weightsOnly: false })) as { weights_only_ok: boolean };
    return doc.weights_only_ok;
  } catch (e) {
    return String((e as { code?: string }).code ?? e);
  }
}

describe("inspect's weights_only_ok", () => {
  let files: string[] = [];
  beforeAll(() => {
    const generated = ensureFixtures();
    const data = (n: string) => !n.startsWith('.') && !n.endsWith('.json') && !n.endsWith('.md');
    files = [
      ...filesUnder(generated, data),
      ...filesUnder(join(REPO_ROOT, 'crate', 'core', 'tests', 'pickles'), (n) => n.endsWith('.pkl')),
      ...filesUnder(join(REPO_ROOT, 'crate', 'core', 'tests', 'containers'), (n) => n.endsWith('.pt')),
      ...filesUnder(join(REPO_ROOT, 'crate', 'core', 'tests', 'writer', 'fixtures'), (n) => n.endsWith('.pt')),
    ].sort();
  }, 600_000);

  it('equals real torch 2.11 torch.load(weights_only=True) on every fixture', () => {
    expect(files.length).toBeGreaterThan(150);
    const theirs = torchVerdicts(files);
    const disagree: string[] = [];
    files.forEach((f, i) => {
      const name = relative(REPO_ROOT, f);
      const t = theirs[i]!;
      const ours = ourVerdict(f);
      if (typeof ours === 'string') {
        // torchsave cannot read it: torch must refuse it too, or it is one of our limits.
        if (t.verdict === true && !(name in STRICTER_THAN_TORCH)) {
          disagree.push(`${name}: torch loads it, torchsave refuses it (${ours})`);
        }
        return;
      }
      if (t.verdict === null) {
        // Damage for torch: torchsave refuses too, or reads it on purpose.
        if (typeof ours === 'boolean' && !(name in READ_BEYOND_TORCH)) {
          disagree.push(`${name}: torch refuses for damage (${t.error}), torchsave reads it (weights_only_ok ${ours})`);
        }
        return;
      }
      if (ours !== t.verdict) disagree.push(`${name}: torch ${t.verdict} (${t.error ?? 'loads'}), torchsave ${ours}`);
    });
    expect(disagree).toEqual([]);
  }, 600_000);

  it('is false for a protocol-4 file (FRAME), which torch refuses', () => {
    const p = join(REPO_ROOT, 'crate', 'core', 'tests', 'pickles', 'frame_p4_weights_only.pkl');
    expect(ourVerdict(p)).toBe(false);
    expect(torchVerdicts([p])[0]!.verdict).toBe(false);
  }, 120_000);
});
