/**
 * Smaller copies of ONNX graphs' weights:
 *  - int8 weight-only: every large float32 weight of a Conv, ConvTranspose, MatMul, Gemm or Gather
 *    is stored as int8 with one float32 scale per output channel (symmetric, zero point 0: the
 *    channel's largest magnitude becomes ±127) and restored by a DequantizeLinear node in front of
 *    its users, so the graph computes as before on weights rounded to 8 bits;
 *  - fp16: every float32 tensor of the graph (inputs, outputs, weights, constants, casts) in
 *    float16, but for the few inputs ONNX requires in float32 (Resize's roi and scales).
 * Inputs and outputs keep their names and shapes, so a worker serves either copy unchanged.
 */
import { onnx } from 'onnx-proto';
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ModelProto, convertFloats, elementCode, readModel, readModelFile, saveModel, tensorValues, writeModel } from './onnx-model';

/** int8 values and one scale per channel along `axis`: value ≈ q · scale. */
export interface ChannelQuantized {
  data: Int8Array;
  scales: Float32Array;
}

/** Symmetric per-channel int8 quantization of a tensor of `dims` along `axis`. */
export function quantizePerChannel(values: Float32Array, dims: readonly number[], axis: number): ChannelQuantized {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = values.length / (channels * inner);
  const scales = new Float32Array(channels);
  const index = (o: number, c: number, i: number) => (o * channels + c) * inner + i;
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < inner; i++) scales[c] = Math.max(scales[c], Math.abs(values[index(o, c, i)]));
    }
  }
  for (let c = 0; c < channels; c++) scales[c] = scales[c] > 0 ? scales[c] / 127 : 1;
  const data = new Int8Array(values.length);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < inner; i++) {
        const at = index(o, c, i);
        data[at] = Math.max(-127, Math.min(127, Math.round(values[at] / scales[c])));
      }
    }
  }
  return { data, scales };
}

/** The output-channel axis of a weight at input `slot` of `node`, or null when it is not a weight. */
function weightAxis(node: onnx.INodeProto, slot: number, rank: number): number | null {
  const attr = (name: string) => Number(node.attribute?.find((a) => a.name === name)?.i ?? 0);
  switch (node.opType) {
    case 'Conv':
      return slot === 1 ? 0 : null;
    case 'ConvTranspose':
      return slot === 1 ? 1 : null;
    case 'MatMul':
      return slot === 1 && rank >= 2 ? rank - 1 : null;
    case 'Gemm':
      return slot === 1 ? (attr('transB') ? 0 : 1) : null;
    case 'Gather':
      return slot === 0 && attr('axis') === 0 && rank === 2 ? 0 : null;
    default:
      return null;
  }
}

export interface QuantizeOptions {
  /** Weights with fewer elements stay float32 (default 1024). */
  minElements?: number;
}

/**
 * The graph with its large float32 weights stored as per-channel int8 behind DequantizeLinear
 * (opset 13 or later, for per-axis scales). External data is read from `dir` and inlined.
 */
export function quantizeWeights(model: ModelProto, dir = '.', options: QuantizeOptions = {}): ModelProto {
  const opset = Number(model.opsetImport?.find((o) => !o.domain)?.version ?? 0);
  if (opset < 13) throw new Error(`per-channel DequantizeLinear needs opset 13 or later; this graph is opset ${opset}`);
  const copy = readModel(writeModel(model));
  const graph = copy.graph!;
  const minElements = options.minElements ?? 1024;
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const axes = new Map<string, number>();
  for (const node of graph.node ?? []) {
    (node.input ?? []).forEach((name, slot) => {
      const tensor = initializers.get(name);
      if (!tensor || axes.has(name) || tensor.dataType !== elementCode('float32')) return;
      const dims = (tensor.dims ?? []).map(Number);
      const axis = weightAxis(node, slot, dims.length);
      if (axis !== null && dims.reduce((a, b) => a * b, 1) >= minElements) axes.set(name, axis);
    });
  }
  const dequantize: onnx.NodeProto[] = [];
  const kept: onnx.ITensorProto[] = [];
  for (const tensor of graph.initializer ?? []) {
    const name = tensor.name ?? '';
    const axis = axes.get(name);
    if (axis === undefined) {
      kept.push(tensor);
      continue;
    }
    const dims = (tensor.dims ?? []).map(Number);
    const { data, scales } = quantizePerChannel(tensorValues(tensor, dir), dims, axis);
    kept.push(
      onnx.TensorProto.create({ name: `${name}_int8`, dataType: onnx.TensorProto.DataType.INT8, dims, rawData: new Uint8Array(data.buffer) }),
      onnx.TensorProto.create({ name: `${name}_scale`, dataType: elementCode('float32'), dims: [scales.length], rawData: new Uint8Array(scales.buffer) }),
    );
    dequantize.push(
      onnx.NodeProto.create({
        opType: 'DequantizeLinear',
        name: `${name}_dequantize`,
        input: [`${name}_int8`, `${name}_scale`],
        output: [name],
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis }],
      }),
    );
  }
  graph.initializer = kept as onnx.TensorProto[];
  graph.node = [...dequantize, ...(graph.node ?? [])];
  // Old exports list initializers among the inputs; the float tensors are values now.
  graph.input = (graph.input ?? []).filter((i) => !axes.has(i.name ?? ''));
  return copy;
}



export type WeightFormat = 'int8' | 'fp16';

/** What a copy wrote: each graph's bytes before and after (model files and their external data). */
export interface CopiedGraph {
  part: string;
  bytesBefore: number;
  bytesAfter: number;
}

/** The bytes of a graph: its file and the external data files it names. */
function graphBytes(file: string): number {
  const model = readModelFile(file);
  const locations = new Set<string>();
  for (const t of model.graph?.initializer ?? []) {
    const location = t.externalData?.find((e) => e.key === 'location')?.value;
    if (location) locations.add(location);
  }
  return [...locations].reduce((n, l) => n + statSync(path.join(path.dirname(file), l)).size, statSync(file).size);
}

/**
 * A copy of a model folder (Optimum layout: one `<part>/model.onnx` per part) with every graph's
 * weights in `format`; configs, tokenizers and everything else copied as they are, external data
 * files replaced by the copies' own.
 */
export function copyModelFolder(src: string, dst: string, format: WeightFormat, options: QuantizeOptions = {}): CopiedGraph[] {
  const copied: CopiedGraph[] = [];
  mkdirSync(dst, { recursive: true });
  for (const entry of readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, entry.name);
    const to = path.join(dst, entry.name);
    if (!entry.isDirectory()) {
      copyFileSync(from, to);
      continue;
    }
    const graph = path.join(from, 'model.onnx');
    if (!statSync(graph, { throwIfNoEntry: false })) {
      copyModelFolder(from, to, format, options);
      continue;
    }
    mkdirSync(to, { recursive: true });
    const model = readModelFile(graph);
    const external = new Set((model.graph?.initializer ?? []).flatMap((t) => t.externalData?.filter((e) => e.key === 'location').map((e) => e.value ?? '') ?? []));
    for (const file of readdirSync(from)) {
      if (file !== 'model.onnx' && !external.has(file)) copyFileSync(path.join(from, file), path.join(to, file));
    }
    const converted = format === 'int8' ? quantizeWeights(model, from, options) : convertFloats(model, 'float32', 'float16', from);
    const written = saveModel(converted, path.join(to, 'model.onnx'));
    copied.push({ part: entry.name, bytesBefore: graphBytes(graph), bytesAfter: written.reduce((n, f) => n + statSync(f).size, 0) });
  }
  return copied;
}
