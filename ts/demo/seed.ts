/**
 * The seed tutorial (PyTorch save/load notes) end to end in TypeScript, on files it writes.
 * Run: `node dist/demo/seed.js [outDir]` (default: a fresh temp dir). Each step is exported
 * so __test__/seed.test.ts runs exactly what the demo runs.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as nn from '../nn';
import * as optim from '../optim';
import { pyPrintLine, pyRepr } from '../nn/pyrepr';
import { type Tensor, randn, tensor } from '../tensor';
import { backends } from '../backends';
import { noGrad } from '../autograd';
import { tidy } from '../scope';
import * as F from '../nn/functional';
import { OrderedDict } from '../values';

/** The part of ts/serialization the demo uses (`torch.save` / `torch.load`). */
export interface TorchIO {
  save(obj: unknown, path: string, opts?: object): void;
  load(pathOrBytes: string | Uint8Array, opts?: { weightsOnly?: boolean; mapLocation?: unknown; classes?: Record<string, unknown> }): unknown;
}

/** Loads ts/serialization at run time (it is written alongside this module). */
export function defaultIO(): TorchIO {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../serialization') as TorchIO;
}

// # Define model
export class TheModelClass extends nn.Module {
  conv1 = new nn.Conv2d(3, 6, 5);
  pool = new nn.MaxPool2d(2, 2);
  conv2 = new nn.Conv2d(6, 16, 5);
  fc1 = new nn.Linear(16 * 5 * 5, 120);
  fc2 = new nn.Linear(120, 84);
  fc3 = new nn.Linear(84, 10);

  // def forward(self, x): ... (runs on libtorch's kernels through the libtorch addon)
  override forward(x: Tensor): Tensor {
    x = this.pool.forward(F.relu(this.conv1.forward(x)));
    x = this.pool.forward(F.relu(this.conv2.forward(x)));
    x = x.view(-1, 16 * 5 * 5);
    x = F.relu(this.fc1.forward(x));
    x = F.relu(this.fc2.forward(x));
    x = this.fc3.forward(x);
    return x;
  }
}

export const CLASSES = { '__main__.TheModelClass': TheModelClass };

/** The seed's first listing: prints both state dicts exactly as Python prints them. */
export function printStateDicts(model: nn.Module, optimizer: optim.Optimizer): string[] {
  const lines: string[] = [];
  // print("Model's state_dict:"); for param_tensor in model.state_dict(): print(param_tensor, "\t", size)
  lines.push("Model's state_dict:");
  const sd = model.stateDict();
  for (const paramTensor of sd.keys()) lines.push(pyPrintLine(paramTensor, '\t', sd.get(paramTensor)!.size()));
  // print("Optimizer's state_dict:"); for var_name in optimizer.state_dict(): print(var_name, "\t", value)
  lines.push("Optimizer's state_dict:");
  const osd = optimizer.stateDict();
  for (const varName of osd.keys()) lines.push(`${varName} \t ${pyRepr(osd.get(varName))}`);
  return lines;
}

function sameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, t] of a) if (!b.get(k)?.equal(t)) return false;
  return true;
}

/** torch.save(model.state_dict(), PATH); model = TheModelClass(); model.load_state_dict(torch.load(PATH)); model.eval() */
export function stateDictForInference(io: TorchIO, dir: string, model: TheModelClass): { path: string; model: TheModelClass } {
  const PATH = join(dir, 'state_dict.pt');
  io.save(model.stateDict(), PATH);
  const loaded = new TheModelClass();
  loaded.loadStateDict(io.load(PATH) as Map<string, Tensor>);
  loaded.eval();
  if (!sameTensors(loaded.stateDict(), model.stateDict())) throw new Error('state dict round trip changed the weights');
  return { path: PATH, model: loaded };
}

/** torch.save(model, PATH); model = torch.load(PATH, weights_only=False); model.eval() */
export function wholeModel(io: TorchIO, dir: string, model: TheModelClass): { path: string; model: TheModelClass } {
  const PATH = join(dir, 'model.pt');
  io.save(model, PATH);
  const loaded = nn.expectModule<TheModelClass>(io.load(PATH, { weightsOnly: false, classes: CLASSES }));
  loaded.eval();
  if (!(loaded instanceof TheModelClass)) throw new Error('whole-model load did not rebuild TheModelClass');
  if (!sameTensors(loaded.stateDict(), model.stateDict())) throw new Error('whole-model round trip changed the weights');
  return { path: PATH, model: loaded };
}

/** The general checkpoint: {epoch, model_state_dict, optimizer_state_dict, loss}. */
export function checkpoint(io: TorchIO, dir: string, model: TheModelClass, optimizer: optim.SGD): { path: string; epoch: number; loss: number } {
  const PATH = join(dir, 'checkpoint.tar');
  io.save(
    new Map<string, unknown>([
      ['epoch', 5],
      ['model_state_dict', model.stateDict()],
      ['optimizer_state_dict', optimizer.stateDict()],
      ['loss', 0.4242],
    ]),
    PATH,
  );
  const model2 = new TheModelClass();
  const optimizer2 = new optim.SGD(model2.parameters(), { lr: 0.001, momentum: 0.9 });
  const ck = io.load(PATH) as Map<string, unknown>;
  model2.loadStateDict(ck.get('model_state_dict') as Map<string, Tensor>);
  optimizer2.loadStateDict(ck.get('optimizer_state_dict') as Map<string, unknown>);
  model2.train();
  if (pyRepr(optimizer2.stateDict()) !== pyRepr(optimizer.stateDict())) throw new Error('optimizer state changed in the round trip');
  return { path: PATH, epoch: Number(ck.get('epoch')), loss: Number(ck.get('loss')) };
}

/** DataParallel: save the wrapped model, load it wrapped, then strip the prefixes to load plain. */
export function dataParallel(io: TorchIO, dir: string): string[] {
  const log: string[] = [];
  const PATH = join(dir, 'dp.pt');
  const model = new nn.DataParallel(new TheModelClass());
  io.save(model.stateDict(), PATH);
  log.push(`saved DataParallel state dict: first key ${[...model.stateDict().keys()][0]}`);

  const wrapped = new nn.DataParallel(new TheModelClass());
  wrapped.loadStateDict(io.load(PATH) as Map<string, Tensor>);
  wrapped.eval();
  log.push('loaded it into DataParallel(TheModelClass()) as saved');

  try {
    new TheModelClass().loadStateDict(io.load(PATH) as Map<string, Tensor>);
  } catch (e) {
    log.push(`loading it into the plain model fails with ${(e as { code?: string }).code} (keys start with "module.")`);
  }

  // The seed's loop: for k, v in state_dict.items(): new_state_dict[k[7:]] = v
  const stateDict = io.load(PATH) as OrderedDict<string, Tensor>;
  const newStateDict = new OrderedDict<string, Tensor>();
  for (const [k, v] of stateDict) newStateDict.set(k.slice(7), v);
  const plain = new TheModelClass();
  plain.loadStateDict(newStateDict);
  log.push(`seed loop (k[7:]) -> plain model loads: first key ${[...newStateDict.keys()][0]}`);

  // The doubly wrapped case from the seed: two rounds of k[7:], or one stripModulePrefix.
  const PATH2 = join(dir, 'dp2.pt');
  const twice = new nn.DataParallel(new nn.DataParallel(new TheModelClass()));
  io.save(twice.stateDict(), PATH2);
  const sd2 = io.load(PATH2) as OrderedDict<string, Tensor>;
  const once = new OrderedDict<string, Tensor>();
  for (const [k, v] of sd2) once.set(k.slice(7), v);
  const twoStateDict = new OrderedDict<string, Tensor>();
  for (const [k, v] of once) twoStateDict.set(k.slice(7), v);
  new nn.DataParallel(new TheModelClass()).loadStateDict(once);
  new TheModelClass().loadStateDict(twoStateDict);
  log.push(`double DataParallel: first key ${[...sd2.keys()][0]}; one k[7:] loads into DataParallel(model), two into the plain model`);
  const stripped = nn.utils.stripModulePrefix(io.load(PATH2) as OrderedDict<string, Tensor>);
  new TheModelClass().loadStateDict(stripped);
  log.push('nn.utils.stripModulePrefix strips every level at once (keys and _metadata)');
  const consumed = io.load(PATH) as OrderedDict<string, Tensor>;
  nn.utils.consumePrefixInStateDictIfPresent(consumed, 'module.');
  new TheModelClass().loadStateDict(consumed);
  log.push("nn.utils.consumePrefixInStateDictIfPresent(sd, 'module.') does the same as PyTorch's helper");
  return log;
}

/**
 * The seed's `model.eval()` is for inference and `model.train()` for resuming: with the
 * libtorch addon, run both. The reloaded models must give the original's outputs, and one
 * SGD step from the checkpoint must lower the loss on its batch.
 */
export function runTheModels(original: TheModelClass, fromStateDict: TheModelClass, whole: TheModelClass, checkpointPath: string, io: TorchIO): string[] {
  const avail = backends.libtorch.isAvailable();
  if (!avail.available) return [`forward passes skipped: ${avail.reason}`];
  const x = randn([4, 3, 32, 32]);
  original.eval();
  const [y0, y1, y2] = noGrad(() => [original.forward(x), fromStateDict.forward(x), whole.forward(x)]);
  if (!y0.equal(y1) || !y0.equal(y2)) throw new Error('a reloaded model computes different outputs');
  const lines = [`inference (model.eval(), torch.noGrad): outputs ${y0.size()} identical for the original, state-dict and whole-model copies`];
  // The checkpoint's resume path: model.train(), then keep training.
  const ck = io.load(checkpointPath) as Map<string, unknown>;
  const model = new TheModelClass();
  model.loadStateDict(ck.get('model_state_dict') as Map<string, Tensor>);
  const optimizer = new optim.SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
  optimizer.loadStateDict(ck.get('optimizer_state_dict') as Map<string, unknown>);
  model.train();
  const labels = tensor([3, 7, 1, 0]);
  const criterion = new nn.CrossEntropyLoss();
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    // torch.tidy frees the step's activations when it returns, as Python's refcounting does;
    // parameters, gradients and optimizer state survive it.
    const loss = tidy(() => {
      optimizer.zeroGrad();
      const l = criterion.forward(model.forward(x), labels);
      l.backward();
      optimizer.step();
      return Number(l.item());
    });
    losses.push(loss);
  }
  lines.push(`resumed training (model.train(), SGD momentum 0.9, each step in torch.tidy): loss ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
  return lines;
}

/** Runs the whole seed; returns the printed lines. */
export function runSeed(outDir?: string, io: TorchIO = defaultIO()): string[] {
  const dir = outDir ?? mkdtempSync(join(tmpdir(), 'torchsave-seed-'));
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  // # Initialize model / optimizer
  const model = new TheModelClass();
  const optimizer = new optim.SGD(model.parameters(), { lr: 0.001, momentum: 0.9 });
  out.push(...printStateDicts(model, optimizer));
  out.push('');
  const a = stateDictForInference(io, dir, model);
  out.push(`saved and reloaded the state dict for inference: ${a.path}`);
  const b = wholeModel(io, dir, model);
  out.push(`saved and reloaded the whole model (${b.model.pyGlobal().join('.')}): ${b.path}`);
  const c = checkpoint(io, dir, model, optimizer);
  out.push(`saved and reloaded a checkpoint (epoch ${c.epoch}, loss ${c.loss}): ${c.path}`);
  out.push(...dataParallel(io, dir));
  out.push(...runTheModels(model, a.model, b.model, c.path, io));
  return out;
}

if (require.main === module) {
  for (const line of runSeed(process.argv[2])) console.log(line);
}
