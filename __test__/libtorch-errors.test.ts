/**
 * The libtorch addon's errors, called raw (no facade in between): coded JS errors (`.code`
 * from crate/core's ErrorCode, the message without an `E_...: ` prefix), and no entry point
 * panics into Node, a disposed handle included (`E_INVALID_ARGUMENT`).
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../ts/errors';
import { loadLibtorch, type NativeTensor } from '../ts/libtorch/addon';

function addon() {
  const s = loadLibtorch();
  if (!s.addon) throw new Error(`the libtorch addon is needed: ${s.reason}`);
  return s.addon;
}

function thrown(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
  throw new Error('expected a throw');
}

describe('libtorch addon errors (raw calls)', () => {
  it('an error libtorch raised is E_COMPUTE with libtorch\'s message and no code prefix', () => {
    const { NativeTensor: NT } = addon();
    const a = NT.ones([2, 3], 'float32', 'cpu');
    const b = NT.ones([4, 5], 'float32', 'cpu');
    const e = thrown(() => a.matmul(b));
    expect(e.code).toBe('E_COMPUTE');
    expect(e.message).not.toMatch(/^E_[A-Z_]+/);
    expect(e.message).toMatch(/mat1 and mat2 shapes cannot be multiplied|size mismatch|shapes/);
    // a failing scalar op (tch panics inside Scalar::drop) is caught, coded, unprefixed
    const c = NT.zeros([2], 'complex64', 'cpu');
    const s = thrown(() => c.ltScalar(0));
    expect(s.code).toBe('E_COMPUTE');
    expect(s.message).not.toMatch(/^E_[A-Z_]+/);
    const d = thrown(() => NT.ones([2], 'qint8', 'cpu'));
    expect(d.code).toBe('E_UNSUPPORTED_DTYPE');
    expect(d.message).not.toMatch(/^E_/);
    for (const x of [e, s, d]) expect(ERROR_CODES).toContain(x.code);
  });

  it('every raw method on a disposed handle throws E_INVALID_ARGUMENT instead of aborting Node', () => {
    const { NativeTensor: NT } = addon();
    const t = NT.ones([2, 2], 'float32', 'cpu');
    const other = NT.ones([2, 2], 'float32', 'cpu');
    t.dispose();
    const calls: [string, (x: NativeTensor) => unknown][] = [
      ['dtype', (x) => x.dtype],
      ['shape', (x) => x.shape],
      ['strides', (x) => x.strides],
      ['storageOffset', (x) => x.storageOffset],
      ['device', (x) => x.device],
      ['requiresGrad', (x) => x.requiresGrad],
      ['isLeaf', (x) => x.isLeaf],
      ['track', (x) => x.track()],
      ['storageInfo', (x) => x.storageInfo()],
      ['storageTensor', (x) => x.storageTensor()],
      ['storageBuffer', (x) => x.storageBuffer()],
      ['grad', (x) => x.grad()],
      ['setGrad', (x) => x.setGrad(null)],
      ['backward', (x) => x.backward()],
      ['setRequiresGrad', (x) => x.setRequiresGrad(true)],
      ['neg', (x) => x.neg()],
      ['mul', (x) => x.mul(other)],
      ['other side of mul', (x) => other.mul(x)],
      ['mulScalar', (x) => x.mulScalar(2)],
      ['add with alpha', (x) => other.add(x, 2)],
      ['sum', (x) => x.sum()],
      ['clone', (x) => x.clone()],
      ['to', (x) => x.to('float64')],
      ['viewAs', (x) => x.viewAs('float32', [1], [1], 0)],
      ['fill_', (x) => x.fill_(1)],
      ['copy_', (x) => x.copy_(other)],
      ['mulScalar_', (x) => x.mulScalar_(2)],
      ['item', (x) => x.item()],
      ['isPinned', (x) => x.isPinned()],
      ['cat', (x) => NT.cat([other, x], 0)],
    ];
    for (const [name, f] of calls) {
      const e = thrown(() => f(t));
      expect([name, e.code], e.message).toEqual([name, 'E_INVALID_ARGUMENT']);
      expect(e.message, name).toMatch(/freed/);
    }
    // the live tensor and libtorch are fine afterwards
    expect(other.sum().item()).toBe(4);
  });
});
