/**
 * `torch.load` and its variants: the user's options → the binding's, one native call, then
 * the raw tree → TS values (`./from-raw`). safetensors paths go through the same conversion.
 */
import { torchsaveError } from '../errors';
import { native, type NativeLoadOptions } from '../raw/native';
import type { RawLoaded } from '../raw/tree';
import { disposable } from '../scope';
import { fromRaw, fromRawAsync } from './from-raw';
import { abortable, isAborted } from './cancel';
import type { LoadAsyncOptions, LoadInfo, LoadOptions } from './options';

function nativeLoadOptions(opts: LoadOptions): NativeLoadOptions {
  const safeGlobals = opts.safeGlobals?.map((g) => {
    if (typeof g === 'string') return g;
    if (g && typeof g.pyName === 'string') return g.pyName;
    throw torchsaveError('E_INVALID_ARGUMENT', 'safeGlobals entries must be "module.qualname" strings or classes with a static pyName');
  });
  const out: NativeLoadOptions = {};
  if (opts.weightsOnly !== undefined) out.weightsOnly = opts.weightsOnly;
  if (opts.mmap !== undefined) out.mmap = opts.mmap;
  if (safeGlobals) out.safeGlobals = safeGlobals;
  if (opts.encoding !== undefined) out.encoding = opts.encoding;
  if (opts.externalBuffers !== undefined) out.externalBuffers = opts.externalBuffers;
  if (opts.verifyCrc !== undefined) out.verifyCrc = opts.verifyCrc;
  return out;
}

function checkSource(f: unknown): asserts f is string | Uint8Array {
  if (typeof f !== 'string' && !(f instanceof Uint8Array)) {
    throw torchsaveError('E_INVALID_ARGUMENT', 'torch.load expects a path (string) or the file bytes (Uint8Array/Buffer)');
  }
}

function label(f: string | Uint8Array): string {
  return typeof f === 'string' ? f : '<buffer>';
}

function infoOf(raw: RawLoaded): LoadInfo {
  const i = raw.info;
  return i ? { ...i, globals: [...i.globals] } : { format: 'zip', globals: [], bigEndian: false, pickleProtocol: 2 };
}

/**
 * `torch.load`: reads what `torch.save` wrote (zip, legacy, tar, bare pickle).
 * Never executes anything from the file; with `weightsOnly` (the default) it accepts only
 * what PyTorch's weights-only loader accepts.
 */
export function load<T = unknown>(f: string | Uint8Array, opts: LoadOptions = {}): T {
  return loadWithInfo<T>(f, opts).value;
}

/** True for paths read as safetensors (by name, as the `safetensors` package does). */
export function isSafetensorsPath(f: unknown): f is string {
  return typeof f === 'string' && /\.safetensors$/i.test(f);
}

/** Reads a safetensors file through the same raw → TS conversion as torch files: an
 * OrderedDict name → Tensor, plus the `__metadata__`. */
export function loadSafetensorsWithInfo<T = unknown>(path: string, opts: LoadOptions = {}): { value: T; info: LoadInfo } {
  // restoreAliases: the binding's default (true) applies.
  const raw = native().loadSafetensors(path, nativeLoadOptions(opts));
  const info: LoadInfo = { format: 'safetensors', globals: [], bigEndian: false, pickleProtocol: 0, metadata: Object.fromEntries(raw.metadata) };
  return { value: disposable(fromRaw(raw, opts, path)) as T, info };
}

/** {@link load}, plus facts about the file (format, globals, protocol). */
export function loadWithInfo<T = unknown>(
  f: string | Uint8Array,
  opts: LoadOptions = {},
): {
  /** What {@link load} returns. */
  value: T;
  /** The file's format, globals and pickle protocol. */
  info: LoadInfo;
} {
  checkSource(f);
  if (isSafetensorsPath(f)) return loadSafetensorsWithInfo<T>(f, opts);
  const raw = native().load(f, nativeLoadOptions(opts));
  return { value: disposable(fromRaw(raw, opts, label(f))) as T, info: infoOf(raw) };
}

/**
 * `torch.load` off the event loop: reading and parsing run on a worker thread. `signal`
 * cancels it (`E_CANCELLED`; see {@link LoadAsyncOptions.signal}).
 */
export async function loadAsync<T = unknown>(f: string | Uint8Array, opts: LoadAsyncOptions = {}): Promise<T> {
  checkSource(f);
  const { signal, ...loadOpts } = opts;
  const nopts = nativeLoadOptions(loadOpts);
  return abortable(signal, `loadAsync(${label(f)})`, async () => {
    // safetensors parsing is a header read (the data stays mmapped), so the sync path is cheap.
    if (isSafetensorsPath(f)) return loadSafetensorsWithInfo<T>(f, loadOpts).value;
    const raw = await native().loadAsync(f, nopts);
    // Aborted while the worker ran: the caller has its E_CANCELLED; build no JS values.
    if (isAborted(signal)) return undefined as T;
    return disposable(await fromRawAsync(raw, loadOpts, label(f))) as T;
  });
}
