/**
 * A ControlNet added to a fake-weight Optimum fixture, with the community's ONNX signatures:
 * controlnet/model.onnx (`sample`, `timestep`, `encoder_hidden_states`, `controlnet_cond` →
 * `down_block_res_sample_0…2`, `mid_block_res_sample`) and a UNet that also takes `down_block_0…2`
 * and `mid_block_additional_residual`. Cheap stand-ins: the residuals are the control image's
 * brightness per latent cell (times 1, 2, 3, 4 for each), and the UNet adds down_block_0's
 * channel mean to its output — so a lane's control shows in its own image, where the control is white.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder, readModelFile, writeModel } from '@farm/model-tools';

const CHANNELS = [8, 8, 16, 16];

/** Adds controlnet/ (types: "edges") to an fp32 SD 1.5 fixture of optimum-1.23 (int64 [b] timesteps), in place. */
export function addControlNet(dir: string): string {
  const c = new GraphBuilder('controlnet');
  c.input({ name: 'sample', type: 'float32', dims: ['batch_size', 4, 'height', 'width'] });
  c.input({ name: 'timestep', type: 'int64', dims: ['steps'] });
  c.input({ name: 'encoder_hidden_states', type: 'float32', dims: ['batch_size', 'sequence_length', 768] });
  const cond = c.input({ name: 'controlnet_cond', type: 'float32', dims: ['batch_size', 3, 'image_height', 'image_width'] });
  const outputs = CHANNELS.map((channels, i) => {
    const level = i === CHANNELS.length - 1 ? 16 : 8; // the mid block at half the latent size
    const pooled = c.node('AveragePool', [cond], { kernel_shape: [level, level], strides: [level, level] });
    const weight = c.constant('float32', [channels, 3, 1, 1], new Array(channels * 3).fill((i + 1) / 3));
    const name = i === CHANNELS.length - 1 ? 'mid_block_res_sample' : `down_block_res_sample_${i}`;
    c.node('Conv', [pooled, weight], {}, [name]);
    c.output({ name, type: 'float32', dims: ['batch_size', channels, `${name}_height`, `${name}_width`] });
    return name;
  });
  mkdirSync(path.join(dir, 'controlnet'), { recursive: true });
  writeFileSync(path.join(dir, 'controlnet', 'model.onnx'), writeModel(c.build()));
  writeFileSync(path.join(dir, 'controlnet', 'config.json'), JSON.stringify({ _class_name: 'ControlNetModel', conditioning_types: ['edges'], outputs }));

  // The fixture's UNet, plus the residual inputs; down_block_0's channel mean is added to out_sample.
  const unet = readModelFile(path.join(dir, 'unet', 'model.onnx'));
  const graph = unet.graph!;
  const u = new GraphBuilder('residuals');
  const names = [...CHANNELS.slice(0, -1).map((_, i) => `down_block_${i}`), 'mid_block_additional_residual'];
  names.forEach((name, i) => u.input({ name, type: 'float32', dims: [`${name}_batch`, CHANNELS[i], `${name}_height`, `${name}_width`] }));
  const fed = u.node('ReduceMean', ['down_block_0'], { axes: [1], keepdims: 1 }, ['control_mean']);
  const residualGraph = u.build().graph!;
  const out = graph.node!.find((n) => n.output![0] === 'out_sample')!;
  out.output = ['out_before_control'];
  graph.input!.push(...residualGraph.input!);
  graph.initializer!.push(...residualGraph.initializer!);
  graph.node!.push(...residualGraph.node!, { opType: 'Add', input: ['out_before_control', fed], output: ['out_sample'], name: 'add_control' });
  writeFileSync(path.join(dir, 'unet', 'model.onnx'), writeModel(unet));
  return dir;
}
