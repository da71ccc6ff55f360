/** `torch.distributed`: only what works in one process, `checkpoint` (distributed checkpoints). */
export * as checkpoint from './checkpoint';
