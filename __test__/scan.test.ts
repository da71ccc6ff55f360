/**
 * `torch.scan` / `torchsave scan` against the attack corpus (`__test__/python/make_scan_attacks.py`:
 * one file per scanner-bypass family and per classic payload, made by real pickle/torch) and
 * against every benign fixture: each attack is flagged, `load(weightsOnly: true)` refuses it
 * with the manifest's code, `load(weightsOnly: false)` gives inert data (or the documented
 * damage code) and no payload ever runs (its marker file stays absent); every benign file has
 * no dangerous finding, and every benign file torchsave can load scans clean (exit 0).
 * The names real CPython's unpickler would import (recorded by the generator with a
 * `find_class` that imports nothing) are all among the scan's imports.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ts/cli';
import { load } from '../ts/serialization';
import { type ScanReport, scan, scanAsync } from '../ts/scan';
import { REPO_ROOT, ensureFixtures } from './helpers/python';

interface Attack {
  family: string;
  expect: string[];
  weights_only: string;
  unsafe: string;
  marker: string;
  python_resolves: [string, string][] | null;
}

let dir = '';
let attacks: Record<string, Attack> = {};

beforeAll(() => {
  dir = join(ensureFixtures(), 'scan-attacks');
  attacks = JSON.parse(readFileSync(join(dir, 'scan-attacks.json'), 'utf8')) as Record<string, Attack>;
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

/** The load's outcome: 'loads' or the error code. */
function outcome(path: string, weightsOnly: boolean): string {
  try {
    load(path, { weightsOnly, mapLocation: 'cpu' });
    return 'loads';
  } catch (e) {
    return String((e as { code?: string }).code ?? e);
  }
}

function filesUnder(d: string, keep: (p: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, keep));
    else if (keep(p)) out.push(p);
  }
  return out;
}

describe('scan: the attack corpus', () => {
  it('has one file per family the issue names', () => {
    const families = Object.values(attacks).map((a) => a.family).join('\n');
    for (const f of ['memo confusion', 'INST', 'importlib', 'marshal', 'pkgutil', 'getattr', 'BUILD', 'mailcap', 'os.system',
      'eval', 'exec', '__import__', 'subprocess', 'runpy', 'webbrowser', 'socket', 'pty', 'code.', 'pdb', 'cProfile', 'timeit',
      'profile', 'torch.hub', '_load_from_bytes', 'torch.fx', 'torch._dynamo', 'functools.partial', 'attrgetter', 'methodcaller',
      'numpy.load', 'legacy', 'tar', 'storages member', 'protocol 0', 'protocol 5', 'tensors', 'after its STOP', 'record', 'CRC']) {
      expect(families, f).toContain(f);
    }
  });

  it('flags every file, names what Python would import, and nothing runs when loading', () => {
    for (const [file, a] of Object.entries(attacks)) {
      const path = join(dir, file);
      const r = scan(path);
      expect(r.status, file).toBe('flagged');
      expect(r.exit_code, file).toBe(1);
      expect(r.counts.dangerous, file).toBeGreaterThan(0);
      const named = new Set(r.findings.filter((f) => f.severity !== 'safe').flatMap((f) => [f.name, f.written ?? '']));
      for (const n of a.expect) expect(named.has(n), `${file}: ${n} in ${[...named].join(', ')}`).toBe(true);
      const imports = new Set(r.findings.filter((f) => f.kind === 'import').flatMap((f) => [f.name, f.written ?? '']));
      for (const [m, n] of a.python_resolves ?? []) expect(imports.has(`${m}.${n}`), `${file}: python imports ${m}.${n}`).toBe(true);
      expect(outcome(path, true), `${file} weightsOnly: true`).toBe(a.weights_only);
      expect(outcome(path, false), `${file} weightsOnly: false`).toBe(a.unsafe);
      expect(existsSync(a.marker), `${file}: payload ran`).toBe(false);
    }
  });

  it('reports opcode offsets inside the record (the GLOBAL of posix.system in a bare pickle)', () => {
    const bytes = readFileSync(join(dir, 'protocol_0.pkl'));
    const f = scan(join(dir, 'protocol_0.pkl')).findings.find((x) => x.kind === 'import' && x.name === 'os.system');
    expect(f?.written).toBe('posix.system');
    expect(f?.record).toBe('');
    expect(String.fromCharCode(bytes[f!.offset!]!)).toBe('c'); // GLOBAL
    // Damaged containers are scanned from what is left, with a note.
    const cd = scan(join(dir, 'damaged_central_directory.pt'));
    expect(cd.notes.join(' ')).toContain('local entry headers');
    // A pickle nested in _load_from_bytes is reported under <record>@<offset>.
    const nested = scan(join(dir, 'classic_load_from_bytes.pt')).findings.find((x) => x.name === 'os.system');
    expect(nested?.record).toMatch(/data\.pkl@\d+\//);
  });

  it('the CLI: exit 1 on the corpus, --json lines, SARIF 2.1.0', async () => {
    const r = await cli('scan', dir);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`scanned ${Object.keys(attacks).length} files: 0 clean, ${Object.keys(attacks).length} flagged`);
    const j = await cli('scan', '--json', join(dir, 'bypass_inst.pt'), join(dir, 'protocol_3.pkl'));
    const docs = j.out.trim().split('\n').map((l) => JSON.parse(l) as ScanReport);
    expect(docs.map((d) => d.status)).toEqual(['flagged', 'flagged']);
    expect(j.code).toBe(1);
    const s = await cli('scan', '--sarif', join(dir, 'bypass_mailcap.pt'));
    const log = JSON.parse(s.out) as { version: string; runs: { results: { ruleId: string; level: string }[] }[] };
    expect(log.version).toBe('2.1.0');
    expect(log.runs[0]!.results.some((x) => x.ruleId === 'dangerous-global' && x.level === 'error')).toBe(true);
    expect((await cli('scan', join(dir, 'no-such-file.pt'))).code).toBe(2);
    expect((await cli('scan', '--json', '--sarif', dir)).code).toBe(2);
    expect((await scanAsync(join(dir, 'classic_pty.pt'))).status).toBe('flagged');
    // Many files on a terminal: a progress bar on stderr, erased at the end.
    let err = '';
    const code = await runCli(['scan', join(dir, 'protocol_1.pkl'), join(dir, 'protocol_2.pkl')], {
      stdout: () => {},
      stderr: (s) => (err += s),
      stderrIsTTY: true,
    });
    expect(code).toBe(1);
    expect(err).toContain('2/2 files');
    expect(err.endsWith('\r\x1b[K')).toBe(true);
  });
});

describe('scan: benign files', () => {
  /** Files made to be flagged or malformed on purpose. */
  const hostile = (p: string) =>
    /[/\\](attacks|scan-attacks)[/\\]/.test(p) || /attack_os_system\.pt$/.test(p) || /[/\\]evil_[^/\\]*$/.test(p);
  const data = (p: string) => !/\.(json|md|py|tsv|txt|rs)$/.test(p) && !/[/\\]\.[^/\\]*$/.test(p);

  it('no benign fixture has a dangerous finding; every loadable one scans clean (exit 0, unknown allowed)', () => {
    const files = [
      ...filesUnder(join(REPO_ROOT, '__test__', 'fixtures', 'generated'), data),
      ...filesUnder(join(REPO_ROOT, 'crate', 'core', 'tests'), (p) => data(p) && /\.(pt|pth|pkl|tar|bin|ckpt|safetensors)$/.test(p)),
      ...filesUnder(join(REPO_ROOT, '..', 'shared', 'peer-corpus'), data),
    ].filter((p) => !hostile(p));
    expect(files.length).toBeGreaterThan(200);
    const flagged: string[] = [];
    for (const p of files) {
      const r = scan(p);
      const name = relative(REPO_ROOT, p);
      // torch.package archives hold Python code: dangerous by definition (docs/scan.md).
      if (/torch_package\.pt$/.test(p)) {
        expect(r.findings.some((f) => f.kind === 'package' && f.severity === 'dangerous'), name).toBe(true);
        continue;
      }
      if (r.counts.dangerous > 0) flagged.push(`${name}: ${r.findings.filter((f) => f.severity === 'dangerous').map((f) => f.name).join(', ')}`);
      if (outcome(p, false) === 'loads') expect(r.exit_code, `${name} loads, so it scans clean`).toBe(0);
    }
    expect(flagged).toEqual([]);
  });

  it('--strict flags a whole pickled model (its own classes are unknown), not a state dict', async () => {
    const gen = join(REPO_ROOT, '__test__', 'fixtures', 'generated');
    expect((await cli('scan', join(gen, 'bn_dropout_whole_model.pt'))).code).toBe(0);
    expect((await cli('scan', '--strict', join(gen, 'bn_dropout_whole_model.pt'))).code).toBe(1);
    expect((await cli('scan', '--strict', join(gen, 'bn_dropout_state_dict.pt'))).code).toBe(0);
  });
});
