/**
 * {@link UntypedStorage}: a storage's bytes plus its device, and the registry that keeps one
 * UntypedStorage per libtorch storage (so views of one result share one storage object,
 * torch.save writes it once, and its host bytes are exposed once).
 */
import { torchsaveError } from '../errors';
import { lt, type NativeTensor } from '../libtorch/addon';
import { Device } from '../values';

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
    return this._bytes ? this._bytes.byteLength : this._nbytes;
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
