/**
 * Errors: every failure torchsave reports is an `Error` with a stable `code`.
 *
 * The codes' one owner is crate/core/src/error.rs (`error_codes!`, whose doc comments say when
 * each happens): the core's format and policy codes, the bindings' `E_INTERNAL` (a bug: please
 * report), the libtorch addon's `E_COMPUTE` (libtorch refused an op; the message is
 * libtorch's), and the facade's `E_NATIVE_MISSING`, `E_NOT_IMPLEMENTED`,
 * `E_STATE_DICT_MISMATCH`, `E_UNSUPPORTED_CLASS`. `TorchsaveErrorCode` and `ERROR_CODES` are
 * generated from it (ts/generated/contract.ts, written by `npm run build`).
 */

import type { TorchsaveErrorCode } from './generated/contract';

export type { TorchsaveErrorCode } from './generated/contract';
export { ERROR_CODES } from './generated/contract';

/** The shape of every error torchsave throws. */
export interface TorchsaveError extends Error {
  /** The stable `E_...` code: assert on it, not on `message` (the codes are listed in {@link TorchsaveErrorCode}). */
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
