/**
 * Locks the public TS surface of load/save/repr: `npm run typecheck` fails when a signature
 * drifts (and `vitest --typecheck` runs these as tests).
 */
import { expectTypeOf, test } from 'vitest';
import * as torch from '../ts/index';
import { TheModelClass } from '../ts/demo/seed';

test('load / loadAsync', () => {
  expectTypeOf(torch.load).parameters.toEqualTypeOf<[f: string | Uint8Array, opts?: torch.LoadOptions]>();
  expectTypeOf(torch.load<Map<string, torch.Tensor>>('x')).toEqualTypeOf<Map<string, torch.Tensor>>();
  expectTypeOf(torch.loadAsync('x')).toEqualTypeOf<Promise<unknown>>();
  expectTypeOf(torch.loadAsync).parameters.toEqualTypeOf<[f: string | Uint8Array, opts?: torch.LoadAsyncOptions]>();
  expectTypeOf<torch.LoadAsyncOptions>().toHaveProperty('signal').toEqualTypeOf<AbortSignal | undefined>();
  expectTypeOf<torch.LoadAsyncOptions>().toMatchTypeOf<torch.LoadOptions>();
  expectTypeOf(torch.loadWithInfo('x').info.format).toEqualTypeOf<'zip' | 'legacy' | 'tar' | 'pickle' | 'torchscript' | 'dcp' | 'safetensors'>();
  expectTypeOf(torch.distributed.checkpoint.save({}, 'd', { writers: 2 })).toEqualTypeOf<torch.distributed.checkpoint.DcpWritten>();
  expectTypeOf(torch.distributed.checkpoint.load('d')).toEqualTypeOf<unknown>();
  expectTypeOf(torch.jit.load('x').stateDict()).toEqualTypeOf<torch.OrderedDict<string, torch.Tensor>>();
  expectTypeOf(torch.jit.loadAsync('x')).toEqualTypeOf<Promise<torch.jit.ScriptArchiveModule>>();
  expectTypeOf(torch.jit.load('x').namedChildren()).toEqualTypeOf<[string, torch.jit.ScriptModule][]>();
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
  expectTypeOf(torch.saveAsync(1, 'x.pt', { signal: AbortSignal.timeout(1) })).toEqualTypeOf<Promise<void>>();
  expectTypeOf<torch.SaveAsyncOptions>().toHaveProperty('signal').toEqualTypeOf<AbortSignal | undefined>();
  expectTypeOf<torch.ConvertRunOptions>().toHaveProperty('signal').toEqualTypeOf<AbortSignal | undefined>();
  expectTypeOf<torch.CancelledError>().toHaveProperty('code').toEqualTypeOf<'E_CANCELLED'>();
  expectTypeOf<torch.CancelledError>().toHaveProperty('settled').toEqualTypeOf<Promise<void>>();
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

test('typed state-dict loading and guards', () => {
  expectTypeOf(torch.loadStateDict('x.pt')).toEqualTypeOf<torch.OrderedDict<string, torch.Tensor>>();
  expectTypeOf(torch.loadStateDict('x.pt', { key: 'model_state_dict', mmap: true })).toEqualTypeOf<torch.OrderedDict<string, torch.Tensor>>();
  expectTypeOf(torch.loadStateDictAsync('x.pt', { signal: AbortSignal.timeout(1) })).toEqualTypeOf<Promise<torch.OrderedDict<string, torch.Tensor>>>();
  expectTypeOf<torch.LoadStateDictOptions>().toHaveProperty('key').toEqualTypeOf<string | undefined>();
  const v: unknown = torch.load('x.pt');
  if (torch.isStateDict(v)) expectTypeOf(v).toEqualTypeOf<Map<string, torch.Tensor>>();
  if (torch.isTensor(v)) expectTypeOf(v).toEqualTypeOf<torch.Tensor>();
});

test('Module.call and forward carry the layer types', () => {
  const { nn } = torch;
  const x = torch.zeros([1]);
  expectTypeOf(new nn.Linear(2, 3).call(x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(new nn.Linear(2, 3).call).parameters.toEqualTypeOf<[input: torch.Tensor]>();
  expectTypeOf(new nn.Conv2d(3, 6, 5).call(x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(new nn.Bilinear(2, 2, 3).call(x, x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(new nn.CrossEntropyLoss().call(x, x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(new nn.LSTM(2, 3).call(x)).toEqualTypeOf<[torch.Tensor, [torch.Tensor, torch.Tensor]]>();
  expectTypeOf(new nn.GRU(2, 3).call(x)).toEqualTypeOf<[torch.Tensor, torch.Tensor]>();
  expectTypeOf(new TheModelClass().call(x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(new nn.DataParallel(new TheModelClass()).call(x)).toEqualTypeOf<torch.Tensor>();
  expectTypeOf(nn.parallel.dataParallel(new nn.Linear(2, 3), [x])).toEqualTypeOf<torch.Tensor>();
  class Mine extends nn.Module {
    fc = new nn.Linear(2, 2);
    override forward(a: torch.Tensor, scale: number): { y: torch.Tensor } {
      return { y: this.fc.call(a).mul(scale) };
    }
  }
  expectTypeOf(new Mine().call(x, 2)).toEqualTypeOf<{ y: torch.Tensor }>();
  // @ts-expect-error: call checks forward's arguments
  new Mine().call(x);
  // @ts-expect-error: a Linear takes one tensor
  new nn.Linear(2, 3).call(x, x);
  // Untyped: the base class and containers whose layers vary.
  const m: torch.nn.Module = new Mine();
  expectTypeOf(m.call(x)).toEqualTypeOf<unknown>();
  expectTypeOf(new nn.Sequential(new nn.Linear(2, 3)).call(x)).toEqualTypeOf<unknown>();
});
