/**
 * What this process can compute on. The default addon is CPU-only serialization; device
 * placement, forward passes, autograd and CUDA need the optional libtorch addon
 * (`scripts/build-libtorch.sh`), loaded lazily on the first question or compute call.
 * These answers let code written for PyTorch (`if (torch.cuda.isAvailable()) ...`) run
 * unchanged.
 */
import { loadLibtorch, lt } from './libtorch/addon';

export interface BackendAvailability {
  available: boolean;
  /** Why not, and what to do about it. */
  reason?: string;
  /** Where the addon was loaded from. */
  path?: string;
}

export const backends = {
  libtorch: {
    /** Whether the optional libtorch addon is loaded (loading it on first call). */
    isAvailable(): BackendAvailability {
      const s = loadLibtorch();
      return s.addon ? { available: true, path: s.path } : { available: false, reason: s.reason };
    },
    /** libtorch's version and what it sees (CUDA devices, cuDNN, CPU threads). */
    info(): { libtorch: string; cudaAvailable: boolean; cudaDeviceCount: number; cudnnAvailable: boolean; numThreads: number } {
      return lt('backends.libtorch.info()').buildInfo();
    },
  },
  cudnn: {
    isAvailable(): boolean {
      const a = loadLibtorch().addon;
      return a ? a.buildInfo().cudnnAvailable : false;
    },
  },
} as const;

export const cuda = {
  /** `torch.cuda.is_available()`: false without the libtorch addon or without a GPU. */
  isAvailable(): boolean {
    const a = loadLibtorch().addon;
    return a ? a.buildInfo().cudaAvailable : false;
  },
  /** `torch.cuda.device_count()`. */
  deviceCount(): number {
    const a = loadLibtorch().addon;
    return a ? a.buildInfo().cudaDeviceCount : 0;
  },
  /** `torch.cuda.synchronize(device)`. */
  synchronize(device = 0): void {
    const a = lt('torch.cuda.synchronize');
    a.cudaSynchronize(device);
  },
} as const;

/** `torch.set_num_threads(n)`: libtorch's intra-op CPU threads. */
export function setNumThreads(n: number): void {
  lt('torch.setNumThreads').setNumThreads(n);
}
