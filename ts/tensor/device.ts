/**
 * Device checks shared by moves and factories: a clear `E_DEVICE_UNAVAILABLE` before
 * libtorch's own "no NVIDIA driver" error.
 */
import { torchsaveError } from '../errors';
import { lt } from '../libtorch/addon';
import type { Device } from '../values';

/** A clear E_DEVICE_UNAVAILABLE before libtorch's own "no NVIDIA driver" error. */
export function checkDevice(dev: Device): void {
  if (dev.type === 'cpu' || dev.type === 'meta') return;
  const info = lt(`moving a tensor to ${dev}`).buildInfo();
  if (dev.type === 'cuda' && (!info.cudaAvailable || (dev.index ?? 0) >= info.cudaDeviceCount)) {
    throw torchsaveError('E_DEVICE_UNAVAILABLE', `${dev} is not available: torch.cuda.isAvailable() is ${info.cudaAvailable}, deviceCount() is ${info.cudaDeviceCount}`);
  }
}
