/**
 * Sparse tensors as loaded: the layout and the data tuple exactly as pickled, so a re-save
 * writes the same `torch._utils._rebuild_sparse_tensor` call. Dense math on them needs the
 * libtorch addon; their component tensors (`indices`, `values`) are ordinary {@link Tensor}s.
 */
import { inspect } from 'node:util';
import { Tensor } from './tensor';

/**
 * A sparse tensor as `torch.load` found it (`torch.sparse_coo_tensor` & co.): kept as pickled
 * so a save writes it back unchanged; no math on it without the libtorch addon.
 */
export class SparseTensor {
  constructor(
    /** `sparse_coo`, `sparse_csr`, `sparse_csc`, `sparse_bsr`, `sparse_bsc`. */
    readonly layout: string,
    /**
     * The data tuple as pickled: COO `(indices, values, size[, is_coalesced])`, compressed
     * `(compressed_indices, plain_indices, values, size)`.
     */
    readonly args: unknown[],
    /** `requires_grad` as pickled. */
    public requiresGrad = false,
  ) {}

  /** The dense shape (the `size` entry of the data tuple). */
  size(): number[] {
    const s = this.layout === 'sparse_coo' ? this.args[2] : this.args[3];
    return Array.isArray(s) ? s.map((d) => Number(d)) : [];
  }

  /** The tensor of stored values. */
  values(): Tensor | undefined {
    const v = this.layout === 'sparse_coo' ? this.args[1] : this.args[2];
    return v instanceof Tensor ? v : undefined;
  }

  /** What `console.log` shows: layout and dense size. */
  [inspect.custom](): string {
    return `SparseTensor(layout=torch.${this.layout}, size=[${this.size().join(', ')}])`;
  }
}
