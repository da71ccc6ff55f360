/**
 * What this process can compute on. The default addon is CPU-only serialization; device
 * placement, forward passes and CUDA need the optional libtorch addon, which is not bundled.
 * These answers let code written for PyTorch (`if (torch.cuda.isAvailable()) ...`) run
 * unchanged.
 */

export interface BackendAvailability {
  available: boolean;
  /** Why not, and what to do about it. */
  reason?: string;
}

const LIBTORCH_MISSING =
  'the libtorch addon (@torchsave/libtorch) is not installed; torchsave loads and saves on the CPU without it, ' +
  'but device placement, CUDA and forward passes need it';

export const backends = {
  libtorch: {
    /** Whether the optional libtorch addon is loaded. */
    isAvailable(): BackendAvailability {
      return { available: false, reason: LIBTORCH_MISSING };
    },
  },
} as const;

export const cuda = {
  /** `torch.cuda.is_available()`: false without the libtorch addon. */
  isAvailable(): boolean {
    return backends.libtorch.isAvailable().available && false;
  },
  /** `torch.cuda.device_count()`. */
  deviceCount(): number {
    return 0;
  },
} as const;
