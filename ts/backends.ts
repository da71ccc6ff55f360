/**
 * What this process can compute on. The default addon is CPU-only serialization; device
 * placement, forward passes, autograd and CUDA need the optional libtorch addon
 * (`scripts/build-libtorch.sh`), loaded lazily on the first question or compute call.
 * These answers let code written for PyTorch (`if (torch.cuda.isAvailable()) ...`) run
 * unchanged.
 */
import { loadLibtorch, lt } from './libtorch/addon';

/** The answer of `torch.backends.libtorch.isAvailable()`. */
export interface BackendAvailability {
  /** Whether the libtorch addon is loaded. */
  available: boolean;
  /** Why not, and what to do about it. */
  reason?: string;
  /** Where the addon was loaded from. */
  path?: string;
}

/** `torch.backends`: which compute backends this process has. */
export const backends = {
  /** The optional libtorch addon (torchsave's compute backend). */
  libtorch: {
    /** Whether the optional libtorch addon is loaded (loading it on first call). */
    isAvailable(): BackendAvailability {
      const s = loadLibtorch();
      return s.addon ? { available: true, path: s.path } : { available: false, reason: s.reason };
    },
    /** libtorch's version and what it sees (CUDA devices, cuDNN, CPU threads); without the addon throws `E_DEVICE_UNAVAILABLE`. */
    info(): {
      /** libtorch's version (`2.11.0`). */
      libtorch: string;
      /** Whether libtorch sees a CUDA device. */
      cudaAvailable: boolean;
      /** How many. */
      cudaDeviceCount: number;
      /** Whether cuDNN is usable. */
      cudnnAvailable: boolean;
      /** libtorch's intra-op CPU threads. */
      numThreads: number;
    } {
      return lt('backends.libtorch.info()').buildInfo();
    },
  },
  /** `torch.backends.cudnn`. */
  cudnn: {
    /** `torch.backends.cudnn.is_available()`: false without the libtorch addon, a GPU or cuDNN. */
    isAvailable(): boolean {
      const a = loadLibtorch().addon;
      return a ? a.buildInfo().cudnnAvailable : false;
    },
  },
} as const;

/** `torch.cuda`: GPU availability and synchronisation (through the libtorch addon). */
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
  /** `torch.cuda.synchronize(device)`: waits for the device's queued work; without the addon throws `E_DEVICE_UNAVAILABLE`. */
  synchronize(device = 0): void {
    const a = lt('torch.cuda.synchronize');
    a.cudaSynchronize(device);
  },
} as const;

/** `torch.set_num_threads(n)`: libtorch's intra-op CPU threads. */
export function setNumThreads(n: number): void {
  lt('torch.setNumThreads').setNumThreads(n);
}
