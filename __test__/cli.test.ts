/**
 * The `torchsave` CLI: exit codes, the seed-style human output (compared with what Python
 * prints for the same file) and `inspect --json` (compared with the oracle's inspect-json).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { commands, runCli } from '../ts/cli';
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
    expect(r.out).toContain('--version');
  });

  it('--version and -V print the package version, exit 0', async () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cli(flag);
      expect(r.code).toBe(0);
      expect(r.out).toBe(`${pkg.version}\n`);
    }
  });

  it.each(['inspect', 'convert', 'diff'])('%s --help and -h print every option with a description, exit 0', async (name) => {
    const cmd = commands[name]!;
    for (const flag of ['--help', '-h']) {
      // Help wins over anything else on the line, even a usage error.
      const r = await cli(name, 'whatever.pt', flag, '--bogus');
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe('');
      const lines = r.out.split('\n');
      for (const o of [...cmd.options, { flag: '--help', help: '' }]) {
        const line = lines.find((l) => new RegExp(`^ +(-\\w, )? *${o.flag}( |$)`).test(l));
        expect(line, `${name} ${o.flag}`).toBeDefined();
        // A description after the flag (on the same line or the next).
        const text = line!.replace(/^ +(-\w, )? *\S+( [A-Z'=>]+)?/, '').trim() || lines[lines.indexOf(line!) + 1]!.trim();
        expect(text.length, `${name} ${o.flag}`).toBeGreaterThan(10);
      }
      for (const [code] of cmd.exitCodes) expect(r.out).toMatch(new RegExp(`^ +${code}  \\S`, 'm'));
    }
    // Every option the parser accepts is in the help: an unknown one is a usage error, a listed
    // switch is not "unknown option".
    const unknown = await cli(name, '--definitely-not-an-option');
    expect(unknown.code).toBe(2);
  });

  it('convert: every option parseArgs knows has help (and --skip-existing is one)', async () => {
    const flags = commands.convert!.options.map((o) => o.flag);
    expect(flags).toContain('--skip-existing');
    expect(flags).toContain('--force');
    expect((await cli('convert', 'x.pt', '--force', '--skip-existing')).code).toBe(2);
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
    const help = spawnSync(process.execPath, [bin, 'convert', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--skip-existing');
    const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const missing = spawnSync(process.execPath, [bin, 'inspect', join(REPO_ROOT, 'nope.pt')], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^E_IO: /);
  });
});
