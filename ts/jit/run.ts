/**
 * Running TorchScript on the libtorch addon: the JS side of crate/libtorch/src/jit.rs. Values
 * cross as a JSON tree with tensors by index (see that file): this module decides how a JS
 * value reads as a TorchScript value, once, in {@link encode}, and how a result comes back,
 * in {@link decode}.
 *
 * JS has one number type where TorchScript has `int` and `float`: an integral number is an
 * `int`, any other a `float`; wrap a number in `PyFloat` (`new torch.PyFloat(2)`) to pass
 * `2.0`, and pass a `bigint` for an int beyond 2^53. A `PyTuple` is a tuple, an array a list,
 * a `Map` (or a plain object) a dict.
 */
import { torchsaveError } from '../errors';
import { lt, type LibtorchAddon } from '../libtorch/addon';
import { Tensor } from '../tensor';
import { Device, PyFloat, PyTuple } from '../values';

type Addon = LibtorchAddon;
type NativeScript = InstanceType<Addon['NativeScriptModule']>;
type NativeTensor = InstanceType<Addon['NativeTensor']>;
type Tree = null | { [tag: string]: unknown };

/** A TorchScript value as the addon's tree, collecting tensors into `tensors`. */
export function encode(v: unknown, tensors: NativeTensor[]): Tree {
  if (v === null || v === undefined) return null;
  if (v instanceof Tensor) {
    tensors.push(v.native());
    return { tensor: tensors.length - 1 };
  }
  if (typeof v === 'boolean') return { bool: v };
  if (typeof v === 'bigint') return { int: v.toString() };
  if (typeof v === 'number') return Number.isInteger(v) ? { int: v.toString() } : { float: v };
  if (v instanceof PyFloat) return { float: v.value };
  if (typeof v === 'string') return { str: v };
  if (v instanceof Device) return { device: v.toString() };
  if (v instanceof PyTuple) return { tuple: [...v].map((x) => encode(x, tensors)) };
  if (Array.isArray(v)) return { list: v.map((x) => encode(x, tensors)) };
  if (v instanceof Map) return { dict: [...v].map(([k, x]) => [encode(k, tensors), encode(x, tensors)]) };
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return { dict: Object.entries(v).map(([k, x]) => [{ str: k }, encode(x, tensors)]) };
  }
  throw torchsaveError('E_INVALID_ARGUMENT', `cannot pass ${Object.prototype.toString.call(v)} to a TorchScript method`);
}

/** A result tree back as JS values: tensors, numbers (bigint beyond 2^53), PyTuple, arrays, Maps. */
export function decode(t: Tree, tensors: Tensor[]): unknown {
  if (t === null) return null;
  const [tag, x] = Object.entries(t)[0] ?? [];
  switch (tag) {
    case 'tensor':
      return tensors[x as number];
    case 'bool':
    case 'str':
      return x;
    case 'float':
      return x as number;
    case 'int': {
      const b = BigInt(x as string);
      return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
    case 'device':
      return new Device(x as string);
    case 'tuple':
      return PyTuple.fromItems((x as Tree[]).map((i) => decode(i, tensors)));
    case 'list':
      return (x as Tree[]).map((i) => decode(i, tensors));
    case 'dict':
      return new Map((x as [Tree, Tree][]).map(([k, v]) => [decode(k, tensors), decode(v, tensors)]));
    default:
      throw torchsaveError('E_INTERNAL', `unknown TorchScript value tag '${String(tag)}'`);
  }
}

/** Where a compiled module comes from: the path or bytes `torch.jit.load` was given. */
export type JitSource = string | Uint8Array;

/** libtorch's compiled module behind one `ScriptModule` (made on first use). */
export class CompiledModule {
  private handle: NativeScript | undefined;
  private dev: string;

  constructor(
    private readonly source: JitSource,
    device: string,
  ) {
    this.dev = device;
  }

  private native(what: string): NativeScript {
    if (this.handle) return this.handle;
    const addon = lt(what);
    this.handle =
      typeof this.source === 'string'
        ? addon.NativeScriptModule.load(this.source, this.dev)
        : addon.NativeScriptModule.loadBytes(this.source, this.dev);
    return this.handle;
  }

  /** Whether libtorch has compiled the module yet. */
  get compiled(): boolean {
    return this.handle !== undefined;
  }

  /** The device the module's tensors are (or will be) on. */
  get device(): string {
    return this.dev;
  }

  call(method: string, args: unknown[], training: boolean): unknown {
    const h = this.native(`ScriptModule.${method} (running TorchScript)`);
    h.setTraining(training);
    const tensors: NativeTensor[] = [];
    const tree = JSON.stringify(args.map((a) => encode(a, tensors)));
    const out = h.call(method, tree, tensors);
    return decode(JSON.parse(out.value) as Tree, out.tensors.map((nt) => Tensor.fromNative(nt)));
  }

  to(device: string): void {
    if (this.handle) this.handle.moveTo(device);
    this.dev = device;
  }

  /** `named_parameters()` of the compiled module: the tensors its methods use. */
  namedParameters(): [string, Tensor][] {
    return this.native('ScriptModule.namedParameters on libtorch')
      .namedParameters()
      .map((p) => [p.name, Tensor.fromNative(p.tensor)]);
  }

  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }
}
