/**
 * Free memory of a CUDA device, read once at start-up from `nvidia-smi` (onnxruntime-node does
 * not report it). Null when it cannot be read; the caller then keeps the configured batch.
 */
import { execFile } from 'node:child_process';

export function freeGpuMemory(device: number): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits', `--id=${device}`], { timeout: 5000 }, (err, stdout) => {
      const mib = Number(stdout?.trim());
      resolve(err || !Number.isFinite(mib) ? null : mib * 1024 * 1024);
    });
  });
}
