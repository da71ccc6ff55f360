/**
 * `repr()` as Python 3.11 prints it, for values loaded by torchsave: what
 * `print(optimizer.state_dict()[k])` shows in Python, so the seed's output can be reproduced
 * line for line (`{'lr': 0.001, 'momentum': 0.9, 'nesterov': False, 'params': [0, 1]}`).
 *
 * Numbers: a JS number is printed as a Python float when it is not an integer, when it is a
 * {@link PyFloat}, or when the container it came from recorded an integral Python float at
 * that position (see `serialization.ts`); otherwise as an int. Floats use Python's shortest
 * round-trip repr (`0.001`, `1e-08`, `1e+16`, `1.0`).
 */
import { Parameter, Tensor, UntypedStorage } from './tensor';
import { wasPyFloat } from './serialization';
import { SparseTensor } from './sparse';
import {
  Device,
  DTypeRef,
  Layout,
  NdArray,
  NpScalar,
  OrderedDict,
  PyByteArray,
  PyComplex,
  PyFloat,
  PyFrozenSet,
  PyGlobal,
  PyObject,
  PyTuple,
  Size,
} from './values';

/** Python's `repr(float)` (shortest round-trip digits, 'r' format). */
export function floatRepr(x: number, addDot0 = true): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return (Object.is(x, -0) ? '-0' : '0') + (addDot0 ? '.0' : '');
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expStr);
  const decpt = exp + 1;
  if (decpt <= -4 || decpt > 16) {
    const e = Math.abs(exp);
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  let body: string;
  if (decpt <= 0) body = `0.${'0'.repeat(-decpt)}${digits}`;
  else if (decpt < digits.length) body = `${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  else body = digits + '0'.repeat(decpt - digits.length) + (addDot0 ? '.0' : '');
  return sign + body;
}

function complexRepr(c: PyComplex): string {
  const im = floatRepr(c.im, false);
  if (c.re === 0 && !Object.is(c.re, -0)) return `${im}j`;
  const re = floatRepr(c.re, false);
  const imSigned = im.startsWith('-') ? im : `+${im}`;
  return `(${re}${imSigned}j)`;
}

/** Python's `repr(str)`: single quotes unless the text has ' and no ", Python escapes. */
export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp > 0x7f && !isPrintable(ch)) {
      if (cp <= 0xff) out += '\\x' + cp.toString(16).padStart(2, '0');
      else if (cp <= 0xffff) out += '\\u' + cp.toString(16).padStart(4, '0');
      else out += '\\U' + cp.toString(16).padStart(8, '0');
    } else out += ch;
  }
  return out + quote;
}

/** Python's `str.isprintable` for one non-ASCII character (approximated by Unicode class). */
function isPrintable(ch: string): boolean {
  return !/[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u.test(ch);
}

/** Python's `repr(bytes)`. */
export function bytesRepr(b: Uint8Array): string {
  let hasSingle = false;
  let hasDouble = false;
  for (const x of b) {
    if (x === 0x27) hasSingle = true;
    if (x === 0x22) hasDouble = true;
  }
  const quote = hasSingle && !hasDouble ? '"' : "'";
  let out = 'b' + quote;
  for (const x of b) {
    const ch = String.fromCharCode(x);
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (x === 0x09) out += '\\t';
    else if (x === 0x0a) out += '\\n';
    else if (x === 0x0d) out += '\\r';
    else if (x < 0x20 || x >= 0x7f) out += '\\x' + x.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

class Repr {
  private active = new Set<object>();

  num(x: number, container?: object, key?: unknown): string {
    // Beyond 2^53 an integral number can only be a float: Python ints that big load as bigint.
    const asFloat =
      !Number.isInteger(x) || Object.is(x, -0) || Math.abs(x) > Number.MAX_SAFE_INTEGER || (container !== undefined && wasPyFloat(container, key));
    return asFloat ? floatRepr(x) : String(x);
  }

  item(v: unknown, container: object, key: unknown): string {
    return typeof v === 'number' ? this.num(v, container, key) : this.repr(v);
  }

  seq(items: readonly unknown[], container: object): string[] {
    return items.map((x, i) => this.item(x, container, i));
  }

  repr(v: unknown): string {
    switch (typeof v) {
      case 'undefined':
        return 'undefined';
      case 'boolean':
        return v ? 'True' : 'False';
      case 'number':
        return this.num(v);
      case 'bigint':
        return v.toString();
      case 'string':
        return strRepr(v);
      case 'function':
        return `<function ${v.name || '<lambda>'}>`;
      case 'symbol':
        return v.toString();
    }
    if (v === null) return 'None';
    const o = v as object;
    if (o instanceof PyFloat) return floatRepr(o.value);
    if (o instanceof PyComplex) return complexRepr(o);
    if (o instanceof Parameter) return `Parameter containing:\n${Tensor.prototype.toString.call(o)}`;
    if (o instanceof Tensor) return o.toString();
    if (o instanceof Size) return o.toString();
    if (o instanceof Device) return o.index === null ? `device(type='${o.type}')` : `device(type='${o.type}', index=${o.index})`;
    if (o instanceof DTypeRef || o instanceof Layout) return o.toString();
    if (o instanceof PyByteArray) return `bytearray(${bytesRepr(o)})`;
    if (o instanceof Uint8Array) return bytesRepr(o);
    if (o instanceof UntypedStorage) return `<UntypedStorage of ${o.nbytes} bytes on ${o.device}>`;
    if (o instanceof SparseTensor) return `tensor(layout=torch.${o.layout}, size=(${o.size().join(', ')}))`;
    if (o instanceof PyGlobal) return `<class '${o.fullName}'>`;
    if (o instanceof NpScalar) return `np.${npName(o.descr)}(${String(o.value)})`;
    if (o instanceof NdArray) return `array(<${o.descr} ${o.shape.join('x')}>)`;
    if (this.active.has(o)) {
      if (o instanceof Map || (Object.getPrototypeOf(o) as unknown) === Object.prototype) return '{...}';
      return '[...]';
    }
    this.active.add(o);
    try {
      if (o instanceof PyTuple) {
        const parts = this.seq(o, o);
        return `(${parts.join(', ')}${parts.length === 1 ? ',' : ''})`;
      }
      if (Array.isArray(o)) return `[${this.seq(o, o).join(', ')}]`;
      if (o instanceof OrderedDict) {
        if (o.size === 0) return 'OrderedDict()';
        const parts: string[] = [];
        for (const [k, val] of o) parts.push(`(${this.repr(k)}, ${this.item(val, o, k)})`);
        return `OrderedDict([${parts.join(', ')}])`;
      }
      if (o instanceof Map) {
        const parts: string[] = [];
        for (const [k, val] of o) parts.push(`${this.repr(k)}: ${this.item(val, o, k)}`);
        return `{${parts.join(', ')}}`;
      }
      if (o instanceof PyFrozenSet) return o.size === 0 ? 'frozenset()' : `frozenset({${[...o].map((x) => this.repr(x)).join(', ')}})`;
      if (o instanceof Set) return o.size === 0 ? 'set()' : `{${[...o].map((x) => this.repr(x)).join(', ')}}`;
      if (o instanceof PyObject) {
        const st = o.state instanceof Map ? ' ' + this.repr(o.state) : '';
        return `<${o.fullName} object${st}>`;
      }
      const proto = Object.getPrototypeOf(o) as unknown;
      if (proto === Object.prototype || proto === null) {
        const parts = Object.entries(o).map(([k, val]) => `${strRepr(k)}: ${this.item(val, o, k)}`);
        return `{${parts.join(', ')}}`;
      }
      return `<${(o as { constructor?: { name?: string } }).constructor?.name ?? 'object'} object>`;
    } finally {
      this.active.delete(o);
    }
  }
}

function npName(descr: string): string {
  const code = descr.replace(/^[<>|=]/, '');
  const names: Record<string, string> = {
    f8: 'float64',
    f4: 'float32',
    f2: 'float16',
    i8: 'int64',
    i4: 'int32',
    i2: 'int16',
    i1: 'int8',
    u8: 'uint64',
    u4: 'uint32',
    u2: 'uint16',
    u1: 'uint8',
    b1: 'bool_',
  };
  return names[code] ?? code;
}

/** Python's `repr(value)` for a value torchsave loaded (or built). */
export function repr(value: unknown): string {
  return new Repr().repr(value);
}
