/**
 * {@link UntypedStorage}: a storage's bytes plus its device, and the registry that keeps one
 * UntypedStorage per libtorch storage (so views of one result share one storage object,
 * torch.save writes it once, and its host bytes are exposed once).
 */
import { type TorchsaveError, torchsaveError } from '../errors';
import { lt, type NativeTensor } from '../libtorch/addon';
import { native } from '../raw/native';
import { Device } from '../values';

/** The one freed-tensor error: a tensor or storage used after dispose / the end of its tidy scope. */
export function freedError(): TorchsaveError {
  return torchsaveError('E_INVALID_ARGUMENT', 'this tensor was freed (tensor.dispose(), torch.dispose() or the end of a torch.tidy scope); return it from the scope or torch.keep() it to use it later');
}

/**
 * @internal A buffer a load made (one per storage for eager loads, one per file for a mapped
 * one): given back (`releaseBuffer`: detached, then V8 frees it or the file is unmapped) when
 * the last storage on it is freed.
 */
export interface LoadBlock {
  buffer: ArrayBuffer;
  /** Storages on it not yet freed. */
  storages: number;
}

/** Releases wait while an async save reads storages on a worker thread. */
let savesInFlight = 0;
const deferred: ArrayBuffer[] = [];

/** @internal Holds releases until the returned function is called (an async save in flight). */
export function holdReleases(): () => void {
  savesInFlight++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--savesInFlight === 0) for (const b of deferred.splice(0)) native().releaseBuffer(b);
  };
}

function releaseBlock(b: LoadBlock): void {
  if (--b.storages > 0) return;
  if (savesInFlight > 0) deferred.push(b.buffer);
  else native().releaseBuffer(b.buffer);
}

/**
 * Raw bytes of a storage plus the device it belongs to. With the libtorch addon a storage may
 * also be (or only be) a libtorch storage: CUDA storages have no host bytes until `.cpu()`.
 */
export class UntypedStorage {
  /** Where the bytes live (`cpu`, or a libtorch device such as `cuda:0`). */
  readonly device: Device;
  private _bytes: Uint8Array | undefined;
  private readonly _nbytes: number;
  /** @internal The libtorch storage (a 1-D uint8 tensor over all of it), once made. */
  _nt?: NativeTensor;
  /** @internal The load's buffer this storage lives in (only storages a load made). */
  _block?: LoadBlock;
  /** @internal Tensors of the load viewing this storage that are not disposed yet. */
  _users?: number;
  private _freed?: boolean;
  constructor(
    /** The storage's bytes, little-endian. */
    bytes: Uint8Array,
    device: Device | string = 'cpu',
  ) {
    this.device = device instanceof Device ? device : new Device(device);
    this._bytes = bytes;
    this._nbytes = bytes.byteLength;
  }
  /** @internal A storage that libtorch owns (a result, or memory on a device). */
  static fromNative(storageTensor: NativeTensor | undefined, nbytes: number, device: string): UntypedStorage {
    const s = Object.create(UntypedStorage.prototype) as UntypedStorage;
    Object.assign(s, { device: new Device(device), _bytes: undefined, _nbytes: nbytes, _nt: storageTensor });
    return s;
  }
  /** @internal A device storage whose memory arrives later (a load's batched copy). */
  static pending(nbytes: number, device: string): UntypedStorage {
    return UntypedStorage.fromNative(undefined, nbytes, device);
  }
  /** The bytes (host memory). A libtorch CPU storage is exposed without a copy; a device storage throws: use `.cpu()`. */
  get bytes(): Uint8Array {
    if (this._freed) throw freedError();
    if (this._bytes) return this._bytes;
    if (this._nt && this.device.type === 'cpu') {
      const nt = this._nt;
      const bytes = new Uint8Array(nt.storageBuffer());
      // Under Electron's sandbox this is a copy: never cache it, libtorch may write the storage.
      if (!lt().NativeTensor.externalRefused()) this._bytes = bytes;
      return bytes;
    }
    if (this.device.type === 'meta') return new Uint8Array(0);
    throw torchsaveError('E_DEVICE_UNAVAILABLE', `this storage lives on ${this.device}: copy it to the host with .cpu() to read its bytes`);
  }
  /** The bytes on the host: the storage itself on the CPU, a copy from a device (for saving). */
  hostBytes(): Uint8Array {
    if (this.device.type === 'cpu' || this.device.type === 'meta' || this._bytes) return this.bytes;
    const nt = this.native();
    return new Uint8Array(nt.to(undefined, 'cpu', false, true).storageBuffer());
  }
  /** `torch.UntypedStorage.nbytes()`: the storage's size in bytes. */
  get nbytes(): number {
    if (this._freed) return this._nbytes;
    return this._bytes ? this._bytes.byteLength : this._nbytes;
  }
  /** True once {@link dispose} freed the memory (reads throw the freed-tensor error). */
  get isFreed(): boolean {
    return this._freed === true;
  }
  /**
   * Frees a loaded storage's memory now, as Python's `del` does when the last reference goes:
   * the buffer is detached (views of it read as empty, reads through tensors throw
   * `E_INVALID_ARGUMENT`) and given back (V8 frees an eager load's buffer; a mapped file is
   * unmapped once every storage on it is freed). Only storages a load made are freed; one
   * that libtorch borrowed (computed on) stays to the garbage collector, since libtorch may
   * still use it. Returns whether it was freed.
   */
  dispose(): boolean {
    if (this._freed) return true;
    const b = this._block;
    if (!b || this._nt) return false;
    this._freed = true;
    this._bytes = undefined;
    this._block = undefined;
    releaseBlock(b);
    return true;
  }
  /** @internal One loaded tensor on this storage is disposed; the storage goes with its last. */
  _dropUser(): void {
    if (this._users === undefined) return;
    if (--this._users <= 0) this.dispose();
  }
  /** Frees the storage now (as `torch.dispose` does), for TypeScript's `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** A storage of `nbytes` zero bytes. */
  static allocate(nbytes: number, device: Device | string = 'cpu'): UntypedStorage {
    return new UntypedStorage(new Uint8Array(nbytes), device);
  }
  /**
   * @internal The libtorch view of this storage (needs the addon): host memory is borrowed,
   * not copied, and kept alive while libtorch uses it.
   */
  native(): NativeTensor {
    if (this._nt) return this._nt;
    if (this._freed) throw freedError();
    const addon = lt('computing on tensors');
    if (this.device.type !== 'cpu') {
      throw torchsaveError('E_DEVICE_UNAVAILABLE', `a ${this.device} storage with host bytes cannot be computed on; load it with mapLocation`);
    }
    const b = this.bytes;
    const nt = addon.NativeTensor.fromStorage(b.buffer, b.byteOffset, b.byteLength);
    this._nt = nt;
    registerStorage(nt, this);
    return nt;
  }
}

// One UntypedStorage per libtorch storage, so views of one result share one storage object
// (torch.save then writes it once) and its host bytes are exposed once.
const storageRegistry = new Map<string, WeakRef<UntypedStorage>>();
const storageCleanup = new FinalizationRegistry<string>((key) => {
  const ref = storageRegistry.get(key);
  if (ref && ref.deref() === undefined) storageRegistry.delete(key);
});

function storageKey(info: { id: bigint; device: string }): string {
  return `${info.device}:${info.id.toString(16)}`;
}

function registerStorage(nt: NativeTensor, s: UntypedStorage): void {
  const key = storageKey(nt.storageInfo());
  storageRegistry.set(key, new WeakRef(s));
  storageCleanup.register(s, key);
}

/** @internal The UntypedStorage of a libtorch result (one per libtorch storage). */
export function storageOf(nt: NativeTensor): UntypedStorage {
  const info = nt.storageInfo();
  const key = storageKey(info);
  const hit = storageRegistry.get(key)?.deref();
  if (hit && hit.nbytes === info.nbytes) return hit;
  const s = UntypedStorage.fromNative(nt.storageTensor(), info.nbytes, info.device);
  storageRegistry.set(key, new WeakRef(s));
  storageCleanup.register(s, key);
  return s;
}
