/**
 * A minimal Python `repr()` for the values nn/optim print (state dicts, param groups), so
 * that `print(optimizer.state_dict()[k])` has an exact TypeScript twin. The project-wide
 * `torch.repr` (ts/repr.ts) supersedes this when present; this one covers numbers (Python's
 * float repr rules), bool/None, str, list/tuple/dict/set, torch.Size and tensors.
 */
import { Tensor } from '../tensor';
import { PyFloat, PyTuple, Size } from '../values';

/** Python's `repr(float)`: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const sign = neg ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

function strRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else out += ch;
  }
  return q + out + q;
}

/** `repr(value)` as Python prints it. Integral JS numbers print as ints; wrap floats in PyFloat. */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return strRepr(value);
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (value instanceof Size) return value.toString();
  if (value instanceof Tensor) return value.toString();
  if (value instanceof PyTuple) {
    const items = Array.from(value, pyRepr);
    return `(${items.join(', ')}${items.length === 1 ? ',' : ''})`;
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (value instanceof Map) {
    const items = Array.from(value, ([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`);
    return `{${items.join(', ')}}`;
  }
  if (value instanceof Set) return value.size === 0 ? 'set()' : `{${Array.from(value, pyRepr).join(', ')}}`;
  return String(value);
}

/** Python's `print(*args)`: items joined by spaces, strings unquoted, others as `str()`. */
export function pyPrintLine(...args: unknown[]): string {
  return args.map((a) => (typeof a === 'string' ? a : pyRepr(a))).join(' ');
}
