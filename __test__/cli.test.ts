/**
 * The `torchsave` CLI: exit codes, the seed-style human output (compared with what Python
 * prints for the same file) and `inspect --json` (compared with the oracle's inspect-json).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ts/cli';
import { REPO_ROOT, ensureFixtures, fixturePath, pythonPath, runOracle } from './helpers/python';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

/** What Python prints for the file (the seed's loops). */
function pythonPrints(file: string, body: string, weightsOnly = true): string {
  const script = `import torch, sys\nobj = torch.load(sys.argv[1], weights_only=${weightsOnly ? 'True' : 'False'}, map_location='cpu')\n${body}`;
  const r = spawnSync(pythonPath(), ['-c', script, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

describe('command line', () => {
  it('exits 2 on usage errors', async () => {
    expect((await cli()).code).toBe(2);
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('inspect')).code).toBe(2);
    // Several paths are a summary (docs/convert.md); missing ones cannot be listed: E_IO, exit 1.
    expect((await cli('inspect', 'a.pt', 'b.pt')).code).toBe(1);
    expect((await cli('inspect', 'a.pt', '--bogus')).code).toBe(2);
    expect((await cli('inspect', 'a.pt', '--sha256')).code).toBe(2);
  });

  it('--help exits 0 and lists inspect', async () => {
    const r = await cli('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('inspect');
  });

  it('exits 1 with "code: message" on stderr when the file is missing', async () => {
    const r = await cli('inspect', join(REPO_ROOT, 'no-such-file.pt'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^E_IO: /);
    const j = await cli('inspect', join(REPO_ROOT, 'no-such-file.pt'), '--json');
    expect(j.code).toBe(1);
    expect(j.err).toMatch(/^E_IO: /);
  });
});

describe('inspect on real files', () => {
  beforeAll(() => {
    ensureFixtures();
  });

  it('prints a state dict like the seed: key \\t torch.Size([...])', async () => {
    const file = fixturePath('seed_state_dict.pt');
    const r = await cli('inspect', file);
    expect(r.code).toBe(0);
    expect(r.out).toBe(pythonPrints(file, 'for k in obj:\n    print(k, "\\t", obj[k].size())'));
  });

  it('prints an optimizer state dict like the seed: state / param_groups reprs', async () => {
    // param_groups is printed exactly as Python prints it; the state holds momentum tensors,
    // whose multi-line torch formatting we do not mimic, so only its shape is checked.
    const file = fixturePath('seed_optimizer.pt');
    const r = await cli('inspect', file);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    const py = pythonPrints(file, 'print("param_groups", "\\t", obj["param_groups"])').trimEnd();
    expect(lines.at(-1)).toBe(py);
    expect(lines[0]).toMatch(/^state \t \{0: \{'momentum_buffer': tensor\(/);
  });

  it('prints a checkpoint as a tree with the model sizes', async () => {
    const r = await cli('inspect', fixturePath('seed_checkpoint.pt'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('model_state_dict:');
    expect(r.out).toMatch(/ {2}conv1\.weight \t torch\.Size\(\[6, 3, 5, 5\]\)/);
  });

  it.each(['seed_state_dict.pt', 'seed_checkpoint.pt', 'views_offsets.pt', 'seed_whole_model.pt'])(
    'inspect --json --sha256 equals the oracle (%s)',
    async (name) => {
      const file = fixturePath(name);
      const r = await cli('inspect', file, '--json', '--sha256');
      expect(r.code, r.err).toBe(0);
      expect(JSON.parse(r.out)).toEqual(runOracle(['inspect-json', file]));
    },
  );

  it('--weights-only refuses a whole pickled model with E_UNSAFE_GLOBAL (exit 1)', async () => {
    const r = await cli('inspect', fixturePath('seed_whole_model.pt'), '--weights-only');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^E_UNSAFE_GLOBAL: /);
  });

  it('runs as the built bin (dist/cli.js) with the same output and exit codes', () => {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
    const bin = join(REPO_ROOT, 'dist', 'cli.js');
    expect(existsSync(bin)).toBe(true);
    const file = fixturePath('seed_state_dict.pt');
    const ok = spawnSync(process.execPath, [bin, 'inspect', file], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe(pythonPrints(file, 'for k in obj:\n    print(k, "\\t", obj[k].size())'));
    const usage = spawnSync(process.execPath, [bin, 'inspect'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    const missing = spawnSync(process.execPath, [bin, 'inspect', join(REPO_ROOT, 'nope.pt')], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^E_IO: /);
  });
});
