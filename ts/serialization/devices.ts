/**
 * Where loaded storages go: recorded locations parsed as devices, whether a device is usable
 * here (the libtorch addon and a GPU), the one-time CPU fallback warning, and the copies of
 * host bytes onto a device (one per storage, or batched off the event loop).
 */
import { torchsaveError } from '../errors';
import { loadLibtorch, lt, type NativeTensor } from '../libtorch/addon';
import type { UntypedStorage } from '../tensor';
import { Device } from '../values';

export function isCpu(d: Device): boolean {
  return d.type === 'cpu';
}

let warnedDeviceFallback = false;
export function warnDeviceFallbackOnce(loc: string): void {
  if (warnedDeviceFallback) return;
  warnedDeviceFallback = true;
  process.emitWarning(
    `tensors saved on '${loc}' were loaded on the CPU: that device is not available here ` +
      `(torchsave computes on the CPU without the libtorch addon). Pass mapLocation to choose; ` +
      `a re-save keeps the recorded location.`,
    { code: 'TORCHSAVE_DEVICE_FALLBACK' },
  );
}

/** A recorded location (`cpu`, `cuda:0`, `cuda`, `mps`) as a Device. */
export function parseLocation(loc: string): Device {
  try {
    return new Device(loc);
  } catch {
    throw torchsaveError('E_DEVICE_UNAVAILABLE', `unknown storage location '${loc}'`);
  }
}

export interface PendingDeviceStorage {
  storage: UntypedStorage;
  bytes: Uint8Array;
  device: string;
}

/** Whether storages can be placed on `d` here (the libtorch addon and, for CUDA, a GPU). */
export function deviceUsable(d: Device): boolean {
  if (d.type !== 'cuda') return false;
  const addon = loadLibtorch().addon;
  if (!addon) return false;
  const info = addon.buildInfo();
  return info.cudaAvailable && (d.index ?? 0) < info.cudaDeviceCount;
}

/** Synchronous placement: one copy per storage. */
export function placeOnDevicesSync(pending: PendingDeviceStorage[]): void {
  const addon = lt('loading onto a device');
  for (const p of pending) {
    const host = addon.NativeTensor.fromStorage(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
    p.storage._nt = host.to(undefined, p.device, false, true);
  }
}

/**
 * Async placement: every storage of one device in one worker-thread pass, streamed through
 * pinned buffers (the read of the mmapped file overlaps the transfer). `pending` keeps the
 * host memory referenced until the copies are done.
 */
export async function placeOnDevices(pending: PendingDeviceStorage[]): Promise<void> {
  const addon = lt('loading onto a device');
  const byDevice = new Map<string, PendingDeviceStorage[]>();
  for (const p of pending) {
    const list = byDevice.get(p.device);
    if (list) list.push(p);
    else byDevice.set(p.device, [p]);
  }
  for (const [device, list] of byDevice) {
    const out: NativeTensor[] = await addon.copyToDevice(list.map((p) => p.bytes), device);
    list.forEach((p, i) => (p.storage._nt = out[i]));
  }
}

