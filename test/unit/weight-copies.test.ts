import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, copyModelFolder, quantizePerChannel, quantizeWeights, readModelFile, saveModel, writeModel } from '@farm/model-tools';
import { DiffusionPipeline } from '@farm/pipeline';
import { ModelFixtures } from '../support/model-fixtures';

const random = (n: number, seed: number) => {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 2);
};

/** x [1, 8, 6, 6] → Conv (16 × 8 × 3 × 3) → flattened [36, 16] → MatMul (16 × 24): two weights, one per axis convention. */
function smallGraph() {
  const g = new GraphBuilder('small');
  const x = g.input({ name: 'x', type: 'float32', dims: [1, 8, 6, 6] });
  const conv = g.node('Conv', [x, g.constant('float32', [16, 8, 3, 3], random(16 * 8 * 9, 1), 'conv_w')], { pads: [1, 1, 1, 1] });
  const rows = g.node('Transpose', [g.node('Reshape', [conv, g.constant('int64', [2], [16, 36])])], { perm: [1, 0] });
  g.node('MatMul', [rows, g.constant('float32', [16, 24], random(16 * 24, 2), 'fc_w')], {}, ['y']);
  g.output({ name: 'y', type: 'float32', dims: [36, 24] });
  return g.build(17);
}

async function run(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ x: new ort.Tensor('float32', x, [1, 8, 6, 6]) });
  await session.release();
  return out.y.data as Float32Array;
}

describe('int8 weight-only copies', () => {
  it('quantizes each output channel to int8 with its own scale (largest magnitude → ±127)', () => {
    const values = Float32Array.from([0.5, -1, 0.25, 4, -2, 1]); // [2 rows, 3 columns]
    const rows = quantizePerChannel(values, [2, 3], 0);
    expect(Array.from(rows.scales)).toEqual([1 / 127, 4 / 127].map(Math.fround));
    expect(Array.from(rows.data)).toEqual([64, -127, 32, 127, -64, 32]);
    const columns = quantizePerChannel(values, [2, 3], 1);
    expect(Array.from(columns.scales)).toEqual([4 / 127, 2 / 127, 1 / 127].map(Math.fround));
    expect(Array.from(columns.data)).toEqual([16, -64, 32, 127, -127, 127]);
  });

  it('computes what the original graph computes, from int8 weights behind DequantizeLinear', async () => {
    const model = smallGraph();
    const quantized = quantizeWeights(model, '.', { minElements: 64 });
    const graph = quantized.graph!;
    expect(graph.node!.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.output![0]).sort()).toEqual(['conv_w', 'fc_w']);
    expect(graph.initializer!.filter((t) => t.dataType === 3).map((t) => t.name).sort()).toEqual(['conv_w_int8', 'fc_w_int8']); // 3: INT8
    const x = random(8 * 36, 3);
    const [want, got] = await Promise.all([run(writeModel(model), x), run(writeModel(quantized), x)]);
    const range = Math.max(...want.map(Math.abs));
    const worst = Math.max(...want.map((v, i) => Math.abs(v - got[i])));
    expect(worst).toBeGreaterThan(0); // it is a different graph…
    expect(worst / range).toBeLessThan(0.01); // …within 8-bit rounding of the weights
  });
});

describe('model folder copies', () => {
  const fixtures = new ModelFixtures();
  const out = mkdtempSync(path.join(os.tmpdir(), 'weight-copies-'));
  afterAll(() => {
    fixtures.remove();
    rmSync(out, { recursive: true, force: true });
  });

  it('copies an Optimum export whose weights are external data, and the farm renders the copy', async () => {
    const src = fixtures.dir('sd15', 'optimum-1.23');
    // Move the text encoder's weights (its token embedding) to an external data file, as large exports keep them.
    const encoder = path.join(src, 'text_encoder', 'model.onnx');
    expect(saveModel(readModelFile(encoder), encoder, 0)).toEqual([encoder, `${encoder}_data`]);
    const dst = path.join(out, 'sd15-int8');
    const copied = copyModelFolder(src, dst, 'int8');
    const text = copied.find((c) => c.part === 'text_encoder')!;
    expect(text.bytesBefore / text.bytesAfter).toBeGreaterThan(3.5);
    expect(readdirSync(path.join(dst, 'text_encoder')).sort()).toEqual(['config.json', 'model.onnx']);
    expect(readdirSync(path.join(dst, 'tokenizer')).sort()).toEqual(readdirSync(path.join(src, 'tokenizer')).sort());
    const pipeline = await DiffusionPipeline.load(dst);
    const image = await pipeline.generate({ id: 'copy', prompt: 'a red circle', width: 64, height: 64, steps: 2, guidanceScale: 1, seed: 1, format: 'png' });
    await pipeline.close();
    expect(image.rgb.length).toBe(64 * 64 * 3);
  });

  it('writes an fp16 copy (Resize scales stay float32) that the farm renders', async () => {
    const dst = path.join(out, 'sd15-fp16');
    const copied = copyModelFolder(fixtures.dir('sd15', 'optimum-onnx'), dst, 'fp16');
    const decoder = readModelFile(path.join(dst, 'vae_decoder', 'model.onnx')).graph!;
    expect(decoder.input![0].type!.tensorType!.elemType).toBe(10); // FLOAT16
    const resize = decoder.node!.find((n) => n.opType === 'Resize')!;
    expect(decoder.initializer!.find((t) => t.name === resize.input![2])!.dataType).toBe(1); // FLOAT
    expect(copied.every((c) => statSync(path.join(dst, c.part, 'model.onnx')).size > 0)).toBe(true);
    const pipeline = await DiffusionPipeline.load(dst);
    const image = await pipeline.generate({ id: 'fp16', prompt: 'a red circle', width: 64, height: 64, steps: 2, guidanceScale: 1, seed: 1, format: 'png' });
    await pipeline.close();
    expect(image.rgb.length).toBe(64 * 64 * 3);
  });
});
