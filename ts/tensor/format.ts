/**
 * `String(tensor)` / `util.inspect`: PyTorch-like text, abbreviated for big tensors.
 */
import { type DType, isFloatingPoint } from '../dtype';
import { Parameter, type Tensor } from './tensor';

function formatScalar(v: unknown, dtype: DType): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Array.isArray(v)) return `${formatScalar(v[0], 'float32')}${v[1] < 0 ? '-' : '+'}${formatScalar(Math.abs(v[1] as number), 'float32')}j`;
  if (typeof v === 'bigint') return v.toString();
  const x = v as number;
  if (!isFloatingPoint(dtype)) return String(x);
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return Number.isInteger(x) ? `${x}.` : x.toFixed(4);
}

export function formatTensor(t: Tensor): string {
  const dtypeSuffix = t.dtype === 'float32' || t.dtype === 'int64' || t.dtype === 'bool' ? '' : `, dtype=torch.${t.dtype}`;
  const dev = t.device.type === 'cpu' ? '' : `, device='${t.device}'`;
  const grad = t.requiresGrad && !(t instanceof Parameter) ? ', requires_grad=True' : '';
  let body: string;
  if (t.device.type === 'meta') {
    // PyTorch: tensor(..., device='meta', size=(2, 3), dtype=torch.float16)
    const size = t.size();
    return `tensor(..., device='meta', size=(${size.join(', ')}${size.length === 1 ? ',' : ''})${dtypeSuffix}${grad})`;
  }
  if (t.numel() > 1000) {
    body = `[... ${t.numel()} elements, shape [${t.size().join(', ')}] ...]`;
  } else {
    const rec = (v: unknown): string => (Array.isArray(v) && !(t.isComplex() && typeof v[0] === 'number') ? `[${v.map(rec).join(', ')}]` : formatScalar(v, t.dtype));
    body = rec(t.toArray());
  }
  return `tensor(${body}${dev}${dtypeSuffix}${grad})`;
}
