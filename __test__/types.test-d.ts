/**
 * Locks the public TS surface of load/save/repr: `npm run typecheck` fails when a signature
 * drifts (and `vitest --typecheck` runs these as tests).
 */
import { expectTypeOf, test } from 'vitest';
import * as torch from '../ts/index';

test('load / loadAsync', () => {
  expectTypeOf(torch.load).parameters.toEqualTypeOf<[f: string | Uint8Array, opts?: torch.LoadOptions]>();
  expectTypeOf(torch.load<Map<string, torch.Tensor>>('x')).toEqualTypeOf<Map<string, torch.Tensor>>();
  expectTypeOf(torch.loadAsync('x')).toEqualTypeOf<Promise<unknown>>();
  expectTypeOf(torch.loadWithInfo('x').info.format).toEqualTypeOf<'zip' | 'legacy' | 'tar' | 'pickle' | 'safetensors'>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('weightsOnly').toEqualTypeOf<boolean | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('mmap').toEqualTypeOf<boolean | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('externalBuffers').toEqualTypeOf<boolean | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('encoding').toEqualTypeOf<'utf8' | 'latin1' | 'bytes' | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('mapLocation').toEqualTypeOf<torch.MapLocation | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('safeGlobals').toEqualTypeOf<(string | torch.NamedPyClass)[] | undefined>();
  expectTypeOf<torch.LoadOptions>().toHaveProperty('classes').toEqualTypeOf<Record<string, torch.PyClass> | false | undefined>();
});

test('save / saveAsync', () => {
  expectTypeOf(torch.save(1, 'x.pt')).toEqualTypeOf<void>();
  expectTypeOf(torch.save(1, null)).toEqualTypeOf<Buffer>();
  expectTypeOf(torch.save(1)).toEqualTypeOf<Buffer>();
  expectTypeOf(torch.save(1, 3, { format: 'legacy' })).toEqualTypeOf<void>();
  expectTypeOf(torch.saveAsync(1, 'x.pt')).toEqualTypeOf<Promise<void>>();
  expectTypeOf(torch.saveAsync(1)).toEqualTypeOf<Promise<Buffer>>();
  expectTypeOf<torch.SaveOptions>().toHaveProperty('format').toEqualTypeOf<'zip' | 'legacy' | undefined>();
  expectTypeOf<torch.SaveOptions>().toHaveProperty('pickleProtocol').toEqualTypeOf<number | undefined>();
  expectTypeOf<torch.SaveOptions>().toHaveProperty('compact').toEqualTypeOf<boolean | undefined>();
  expectTypeOf<torch.SaveOptions>().toHaveProperty('durable').toEqualTypeOf<boolean | undefined>();
});

test('errors, repr, devices, dtypes', () => {
  expectTypeOf<torch.TorchsaveError>().toHaveProperty('code').toEqualTypeOf<torch.TorchsaveErrorCode>();
  expectTypeOf(torch.repr).toEqualTypeOf<(value: unknown) => string>();
  expectTypeOf(torch.cuda.isAvailable()).toEqualTypeOf<boolean>();
  expectTypeOf(torch.cuda.deviceCount()).toEqualTypeOf<number>();
  expectTypeOf(torch.backends.libtorch.isAvailable()).toEqualTypeOf<torch.BackendAvailability>();
  expectTypeOf(torch.float32).toEqualTypeOf<'float32'>();
  expectTypeOf(torch.long).toEqualTypeOf<'int64'>();
  expectTypeOf(torch.float32).toMatchTypeOf<torch.DType>();
});

test('every code torchsave throws is in TorchsaveErrorCode', () => {
  const check = (e: torch.TorchsaveError): boolean => e.code === 'E_STATE_DICT_MISMATCH' || e.code === 'E_UNSUPPORTED_CLASS';
  expectTypeOf(check).returns.toEqualTypeOf<boolean>();
  expectTypeOf<'E_STATE_DICT_MISMATCH'>().toMatchTypeOf<torch.TorchsaveErrorCode>();
  expectTypeOf<'E_UNSUPPORTED_CLASS'>().toMatchTypeOf<torch.TorchsaveErrorCode>();
});
