/**
 * Errors: every failure torchsave reports is an `Error` with a stable `code`.
 *
 * Codes from the Rust core: `E_IO`, `E_TRUNCATED`, `E_UNKNOWN_FORMAT`, `E_BAD_ZIP`,
 * `E_BAD_CRC`, `E_MISSING_RECORD`, `E_BAD_MAGIC`, `E_UNSUPPORTED_VERSION`, `E_BAD_TAR`,
 * `E_BAD_PICKLE`, `E_UNKNOWN_OPCODE`, `E_UNSAFE_GLOBAL`, `E_BAD_RECONSTRUCT`,
 * `E_STORAGE_BOUNDS`, `E_STORAGE_SIZE`, `E_UNSUPPORTED_DTYPE`, `E_LIMIT_EXCEEDED`,
 * `E_UNSERIALIZABLE`, `E_INVALID_ARGUMENT`, `E_DEVICE_UNAVAILABLE`, `E_CANCELLED`,
 * `E_BAD_SAFETENSORS`, `E_BAD_INDEX` (a Hugging Face `*.index.json`), `E_OUTPUT_EXISTS`
 * (convert without `force`), `E_VERIFY_FAILED` (convert's read-back check).
 * Added by the binding/facade: `E_INTERNAL` (a bug: please report), `E_NATIVE_MISSING`
 * (the prebuilt addon could not be loaded).
 * From the libtorch addon: `E_COMPUTE` (libtorch refused an op: shapes, dtypes; the message is
 * libtorch's), and `E_DEVICE_UNAVAILABLE` when the addon or a device is missing.
 * `E_NOT_IMPLEMENTED`: a Module subclass without `forward` (PyTorch's NotImplementedError).
 * From nn: `E_STATE_DICT_MISMATCH` (`loadStateDict`, with `missingKeys`/`unexpectedKeys`),
 * `E_UNSUPPORTED_CLASS` (a value that is not an nn.Module where one is expected).
 */

export type TorchsaveErrorCode =
  | 'E_IO'
  | 'E_TRUNCATED'
  | 'E_UNKNOWN_FORMAT'
  | 'E_BAD_ZIP'
  | 'E_BAD_CRC'
  | 'E_MISSING_RECORD'
  | 'E_BAD_MAGIC'
  | 'E_UNSUPPORTED_VERSION'
  | 'E_BAD_TAR'
  | 'E_BAD_PICKLE'
  | 'E_UNKNOWN_OPCODE'
  | 'E_UNSAFE_GLOBAL'
  | 'E_BAD_RECONSTRUCT'
  | 'E_STORAGE_BOUNDS'
  | 'E_STORAGE_SIZE'
  | 'E_UNSUPPORTED_DTYPE'
  | 'E_LIMIT_EXCEEDED'
  | 'E_UNSERIALIZABLE'
  | 'E_INVALID_ARGUMENT'
  | 'E_DEVICE_UNAVAILABLE'
  | 'E_CANCELLED'
  | 'E_BAD_SAFETENSORS'
  | 'E_BAD_INDEX'
  | 'E_OUTPUT_EXISTS'
  | 'E_VERIFY_FAILED'
  | 'E_INTERNAL'
  | 'E_NATIVE_MISSING'
  | 'E_COMPUTE'
  | 'E_NOT_IMPLEMENTED'
  | 'E_STATE_DICT_MISMATCH'
  | 'E_UNSUPPORTED_CLASS';

/** The shape of every error torchsave throws. */
export interface TorchsaveError extends Error {
  code: TorchsaveErrorCode;
  /** The file, when the error concerns one. */
  path?: string;
  /** The record inside the container (`archive/data.pkl`, `data/3`). */
  record?: string;
  /** Byte offset in the record or stream. */
  offset?: number;
}

/**
 * The one constructor of torchsave's errors: an `Error` with `code` and any extra fields
 * (`path`, `record`, `offset`, or a caller's own such as `missingKeys`).
 */
export function torchsaveError(code: TorchsaveErrorCode, message: string, extra: Partial<TorchsaveError> & Record<string, unknown> = {}): TorchsaveError {
  return Object.assign(new Error(message), extra, { code }) as TorchsaveError;
}

/** True for errors thrown by torchsave (they carry an `E_...` code). */
export function isTorchsaveError(e: unknown): e is TorchsaveError {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('E_');
}
