/**
 * `LSTM` / `GRU`: torch's flat weight names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
 * `bias_hh_l0`, `_reverse` for the backward direction, `weight_hr_l0` with `projSize`) and the
 * pickled attributes `RNNBase.__setstate__` relies on (`_flat_weights_names`, `_all_weights`,
 * `_flat_weights`; `__getstate__` drops `_flat_weight_refs`, so we never write it).
 */
import { torchsaveError } from '../errors';
import { Parameter, Tensor, empty, zeros } from '../tensor';
import * as init from './init';
import { Module, type PyAttrSpec } from './module';
import type { FactoryOpts } from './layers';

export interface RNNOptions extends FactoryOpts {
  /** `num_layers`: stacked recurrent layers (default 1). */
  numLayers?: number;
  /** Whether the layers have `b_ih`/`b_hh` biases (default true). */
  bias?: boolean;
  /** `batch_first`: inputs and outputs are `[batch, seq, feature]` (default false: `[seq, batch, feature]`). */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last, in training (default 0). */
  dropout?: number;
  /** Run each layer both ways (default false). */
  bidirectional?: boolean;
  /** `proj_size`: LSTM only, project the hidden state to this size (default 0: none). */
  projSize?: number;
}

export abstract class RNNBase extends Module {
  static override pyModule = 'torch.nn.modules.rnn';
  static override pyAttrs: readonly PyAttrSpec[] = [
    { py: 'mode', js: 'mode', kind: 'str' },
    { py: 'input_size', js: 'inputSize', kind: 'int' },
    { py: 'hidden_size', js: 'hiddenSize', kind: 'int' },
    { py: 'num_layers', js: 'numLayers', kind: 'int' },
    { py: 'bias', js: 'bias', kind: 'bool' },
    { py: 'batch_first', js: 'batchFirst', kind: 'bool' },
    { py: 'dropout', js: 'dropout', kind: 'float' },
    { py: 'bidirectional', js: 'bidirectional', kind: 'bool' },
    { py: 'proj_size', js: 'projSize', kind: 'int' },
    { py: '_flat_weights_names', js: 'flatWeightsNames', kind: 'raw' },
    { py: '_all_weights', js: 'allWeights', kind: 'raw' },
    { py: '_flat_weights', kind: 'raw', get: (m) => (m as RNNBase).flatWeights() },
  ];
  /** `mode`: `LSTM` or `GRU`. */
  declare mode: string;
  /** `input_size`: features of each input step. */
  declare inputSize: number;
  /** `hidden_size`: features of the hidden state. */
  declare hiddenSize: number;
  /** `num_layers`: stacked layers. */
  declare numLayers: number;
  /** `bias`: whether the biases exist. */
  declare bias: boolean;
  /** `batch_first`: batch is dim 0 of inputs and outputs. */
  declare batchFirst: boolean;
  /** `dropout`: between layers, in training. */
  declare dropout: number;
  /** `bidirectional`: each layer runs both ways. */
  declare bidirectional: boolean;
  /** `proj_size`: LSTM projection size, 0 for none. */
  declare projSize: number;
  /** `_flat_weights_names`: the parameter names in cuDNN's flat order (`weight_ih_l0`, ...). */
  declare flatWeightsNames: string[];
  /** `_all_weights`: the parameter names per layer and direction. */
  declare allWeights: string[][];

  /** For subclasses: checks the options, stores the attributes and allocates the per-layer weights; bad sizes or dropout throw `E_INVALID_ARGUMENT`. */
  protected setupRnn(mode: string, gateSize: number, inputSize: number, hiddenSize: number, opts: RNNOptions): void {
    const numLayers = opts.numLayers ?? 1;
    const projSize = opts.projSize ?? 0;
    const dropout = opts.dropout ?? 0;
    if (dropout < 0 || dropout > 1) throw torchsaveError('E_INVALID_ARGUMENT', 'dropout should be a number in range [0, 1] representing the probability of an element being zeroed');
    if (hiddenSize <= 0) throw torchsaveError('E_INVALID_ARGUMENT', 'hidden_size must be greater than zero');
    if (numLayers <= 0) throw torchsaveError('E_INVALID_ARGUMENT', 'num_layers must be greater than zero');
    if (projSize < 0) throw torchsaveError('E_INVALID_ARGUMENT', 'proj_size should be a positive integer or zero to disable projections');
    if (projSize >= hiddenSize) throw torchsaveError('E_INVALID_ARGUMENT', 'proj_size has to be smaller than hidden_size');
    if (projSize > 0 && mode !== 'LSTM') throw torchsaveError('E_INVALID_ARGUMENT', 'proj_size argument is only supported for LSTM, not RNN or GRU');
    this.mode = mode;
    this.inputSize = inputSize;
    this.hiddenSize = hiddenSize;
    this.numLayers = numLayers;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = dropout;
    this.bidirectional = opts.bidirectional ?? false;
    this.projSize = projSize;
    const dirs = this.bidirectional ? 2 : 1;
    const realHidden = projSize > 0 ? projSize : hiddenSize;
    const dtype = opts.dtype ?? 'float32';
    const flat: string[] = [];
    const all: string[][] = [];
    for (let layer = 0; layer < numLayers; layer++) {
      for (let d = 0; d < dirs; d++) {
        const layerIn = layer === 0 ? inputSize : realHidden * dirs;
        const sfx = d === 1 ? '_reverse' : '';
        const p: [string, number[]][] = [
          [`weight_ih_l${layer}${sfx}`, [gateSize, layerIn]],
          [`weight_hh_l${layer}${sfx}`, [gateSize, realHidden]],
        ];
        if (this.bias) p.push([`bias_ih_l${layer}${sfx}`, [gateSize]], [`bias_hh_l${layer}${sfx}`, [gateSize]]);
        if (projSize > 0) p.push([`weight_hr_l${layer}${sfx}`, [projSize, hiddenSize]]);
        for (const [name, shape] of p) this.registerParameter(name, new Parameter(empty(shape, { dtype })));
        const names = p.map(([n]) => n);
        flat.push(...names);
        all.push(names);
      }
    }
    this.flatWeightsNames = flat;
    this.allWeights = all;
    this.resetParameters();
  }

  /** The parameters in `_flat_weights_names` order (None where missing), as Python pickles them. */
  flatWeights(): (Parameter | null)[] {
    const params = (this as unknown as { _parameters: Map<string, Parameter | null> })._parameters;
    return (this.flatWeightsNames ?? []).map((n) => params.get(n) ?? null);
  }

  /** `reset_parameters()`: every weight and bias from U(-1/√hidden_size, 1/√hidden_size). */
  resetParameters(): void {
    const stdv = this.hiddenSize > 0 ? 1 / Math.sqrt(this.hiddenSize) : 0;
    for (const w of this.parameters()) init.uniform_(w, -stdv, stdv);
  }

  protected override _afterPyLoad(): void {
    const self = this as unknown as Record<string, unknown>;
    // Files from torch < 1.8 have no proj_size; RNNBase.__setstate__ sets it to 0.
    if (self.projSize === undefined) this.projSize = 0;
  }

  /**
   * `rnn(input, hx)`: libtorch's fused LSTM/GRU (what nn.LSTM calls), so outputs match.
   * Returns `[output, h_n]`, for LSTM `[output, [h_n, c_n]]`; `hx` defaults to zeros.
   * An unbatched (2-d) input gives unbatched outputs, as in PyTorch.
   */
  override forward(input: Tensor, hx?: Tensor | [Tensor, Tensor] | null): [Tensor, Tensor | [Tensor, Tensor]] {
    const batched = input.dim() === 3;
    if (!batched && input.dim() !== 2) throw torchsaveError('E_INVALID_ARGUMENT', `${this.mode}: Expected input to be 2D or 3D, got ${input.dim()}D instead`);
    const batchDim = this.batchFirst ? 0 : 1;
    const x = batched ? input : input.unsqueeze(batchDim);
    const dirs = this.bidirectional ? 2 : 1;
    const batch = x.size(batchDim);
    const realHidden = this.projSize > 0 ? this.projSize : this.hiddenSize;
    const opts = { dtype: input.dtype, device: input.device };
    let hs: Tensor[];
    if (hx === undefined || hx === null) {
      hs = [zeros([this.numLayers * dirs, batch, realHidden], opts)];
      if (this.mode === 'LSTM') hs.push(zeros([this.numLayers * dirs, batch, this.hiddenSize], opts));
    } else {
      hs = Array.isArray(hx) ? [...hx] : [hx];
      if (!batched) hs = hs.map((h) => h.unsqueeze(1));
    }
    const params = this.flatWeights().filter((p): p is Parameter => p !== null).map((p) => p.native());
    const xn = x.native();
    const hn = hs.map((h) => h.native());
    const outs = xn.rnn(this.mode, hn, params, this.bias, this.numLayers, this.dropout, this.training, this.bidirectional, this.batchFirst).map((o) =>
      Tensor.fromNative(o),
    );
    let out = outs[0]!;
    let states = outs.slice(1);
    if (!batched) {
      out = out.squeeze(batchDim);
      states = states.map((h) => h.squeeze(1));
    }
    return [out, this.mode === 'LSTM' ? [states[0]!, states[1]!] : states[0]!];
  }

  override extraRepr(): string {
    let s = `${this.inputSize}, ${this.hiddenSize}`;
    if (this.projSize !== 0) s += `, proj_size=${this.projSize}`;
    if (this.numLayers !== 1) s += `, num_layers=${this.numLayers}`;
    if (!this.bias) s += ', bias=False';
    if (this.batchFirst) s += ', batch_first=True';
    if (this.dropout !== 0) s += `, dropout=${this.dropout}`;
    if (this.bidirectional) s += ', bidirectional=True';
    return s;
  }
}

export class LSTM extends RNNBase {
  static override pyModule = 'torch.nn.modules.rnn';
  static override pyName = 'LSTM';
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super();
    this.setupRnn('LSTM', 4 * hiddenSize, inputSize, hiddenSize, opts);
  }
  /** `lstm(input, (h_0, c_0))`: returns `[output, [h_n, c_n]]` (RNNBase.forward, typed for LSTM). */
  override forward(input: Tensor, hx?: [Tensor, Tensor] | null): [Tensor, [Tensor, Tensor]] {
    return super.forward(input, hx) as [Tensor, [Tensor, Tensor]];
  }
}

export class GRU extends RNNBase {
  static override pyModule = 'torch.nn.modules.rnn';
  static override pyName = 'GRU';
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super();
    this.setupRnn('GRU', 3 * hiddenSize, inputSize, hiddenSize, opts);
  }
  /** `gru(input, h_0)`: returns `[output, h_n]` (RNNBase.forward, typed for GRU). */
  override forward(input: Tensor, hx?: Tensor | null): [Tensor, Tensor] {
    return super.forward(input, hx) as [Tensor, Tensor];
  }
}
