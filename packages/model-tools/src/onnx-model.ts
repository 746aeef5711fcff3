/**
 * ONNX model files as data: read and written as the ONNX protobuf (onnx-proto's generated
 * classes), with no runtime involved. What a graph takes and gives (names, element types,
 * symbolic or fixed dims), its initializers as float32 arrays (inline, fp16, or external data
 * files), and a small builder for new graphs. The fixture generator and weight-conversion tools
 * build on it; onnxruntime only ever sees the bytes.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { onnx } from 'onnx-proto';
import { fromFloat16, toFloat16 } from './float16';

export type ElementType = 'float32' | 'float16' | 'int32' | 'int64';
/** A fixed size, or a symbolic dimension's name. */
export type Dim = number | string;

export interface ValueSignature {
  name: string;
  type: ElementType;
  dims: Dim[];
}

export type ModelProto = onnx.ModelProto;
export type TensorProto = onnx.TensorProto;

const CODES: Record<ElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
};

export function elementCode(type: ElementType): number {
  return CODES[type];
}

export function elementType(code: number): ElementType {
  const found = (Object.keys(CODES) as ElementType[]).find((k) => CODES[k] === code);
  if (!found) throw new Error(`ONNX element type ${code} is not one of ${Object.keys(CODES).join(', ')}`);
  return found;
}

export function readModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function readModelFile(file: string): ModelProto {
  return readModel(readFileSync(file));
}

export function writeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

function signature(info: onnx.IValueInfoProto): ValueSignature {
  const tensor = info.type?.tensorType;
  if (!tensor) throw new Error(`${info.name} is not a tensor`);
  const dims = (tensor.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue ?? 0)));
  return { name: info.name ?? '', type: elementType(tensor.elemType ?? 0), dims };
}

/** A graph's inputs (initializers excluded) and outputs. */
export function graphSignature(model: ModelProto): { inputs: ValueSignature[]; outputs: ValueSignature[] } {
  const graph = model.graph!;
  const initialized = new Set((graph.initializer ?? []).map((t) => t.name));
  return {
    inputs: (graph.input ?? []).filter((i) => !initialized.has(i.name ?? '')).map(signature),
    outputs: (graph.output ?? []).map(signature),
  };
}

/** `length` bytes (or all that follow) at `offset` of an external data file, read without loading the rest. */
function readExternal(file: string, offset: number, length?: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const size = length !== undefined ? Number(length) : fstatSync(fd).size - offset;
    const bytes = new Uint8Array(size);
    let read = 0;
    while (read < size) read += readSync(fd, bytes, read, size - read, offset + read);
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** An initializer's values as float32 (float32, float16 or integer data; inline or external, relative to `dir`). */
export function tensorValues(tensor: onnx.ITensorProto, dir = '.'): Float32Array {
  const type = elementType(tensor.dataType ?? 0);
  let raw = tensor.rawData && tensor.rawData.length > 0 ? tensor.rawData : null;
  const external = tensor.externalData ?? [];
  if (external.length > 0) {
    const entry = (key: string) => external.find((e) => e.key === key)?.value;
    raw = readExternal(path.join(dir, entry('location')!), Number(entry('offset') ?? 0), entry('length') ?? undefined);
  }
  if (raw) {
    const copy = new Uint8Array(raw); // a fresh, aligned copy (protobufjs hands out Buffer views)
    switch (type) {
      case 'float32':
        return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
      case 'float16':
        return fromFloat16(new Uint16Array(copy.buffer, copy.byteOffset, copy.byteLength / 2));
      case 'int32':
        return Float32Array.from(new Int32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4));
      case 'int64':
        return Float32Array.from(new BigInt64Array(copy.buffer, copy.byteOffset, copy.byteLength / 8), Number);
    }
  }
  if (type === 'float32') return Float32Array.from(tensor.floatData ?? []);
  // fp16 values without raw data are stored as their bit patterns in int32_data.
  if (type === 'float16') return fromFloat16(Uint16Array.from(tensor.int32Data ?? []));
  if (type === 'int32') return Float32Array.from(tensor.int32Data ?? []);
  return Float32Array.from((tensor.int64Data ?? []) as (number | { toNumber(): number })[], (v) => (typeof v === 'number' ? v : v.toNumber()));
}

/** A tensor of `values` stored inline as `type`. */
export function makeTensor(name: string, type: ElementType, dims: readonly number[], values: ArrayLike<number>): onnx.TensorProto {
  const data = Float32Array.from(values);
  let raw: Uint8Array;
  switch (type) {
    case 'float32':
      raw = new Uint8Array(data.buffer);
      break;
    case 'float16':
      raw = new Uint8Array(toFloat16(data).buffer);
      break;
    case 'int32':
      raw = new Uint8Array(Int32Array.from(data).buffer);
      break;
    case 'int64':
      raw = new Uint8Array(BigInt64Array.from(data, (v) => BigInt(Math.trunc(v))).buffer);
      break;
  }
  return onnx.TensorProto.create({ name, dataType: CODES[type], dims: [...dims], rawData: raw });
}

function valueInfo({ name, type, dims }: ValueSignature): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: CODES[type],
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

type AttributeValue = number | string | number[];

function attribute(name: string, value: AttributeValue): onnx.AttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return onnx.AttributeProto.create({ name, type: A.STRING, s: new TextEncoder().encode(value) });
  if (Array.isArray(value)) {
    return value.every(Number.isInteger)
      ? onnx.AttributeProto.create({ name, type: A.INTS, ints: value })
      : onnx.AttributeProto.create({ name, type: A.FLOATS, floats: value });
  }
  return Number.isInteger(value) && !name.match(/alpha|beta|epsilon|scale/)
    ? onnx.AttributeProto.create({ name, type: A.INT, i: value })
    : onnx.AttributeProto.create({ name, type: A.FLOAT, f: value });
}

/** Builds a graph node by node; `build()` gives the model (opset 14 by default, as Optimum's SD exports). */
export class GraphBuilder {
  private readonly inputs: onnx.ValueInfoProto[] = [];
  private readonly outputs: onnx.ValueInfoProto[] = [];
  private readonly initializers: onnx.TensorProto[] = [];
  private readonly nodes: onnx.NodeProto[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  input(value: ValueSignature): string {
    this.inputs.push(valueInfo(value));
    return value.name;
  }

  output(value: ValueSignature): void {
    this.outputs.push(valueInfo(value));
  }

  /** A constant tensor (an initializer); returns its name. */
  constant(type: ElementType, dims: readonly number[], values: ArrayLike<number>, name = `const_${this.counter++}`): string {
    this.initializers.push(makeTensor(name, type, dims, values));
    return name;
  }

  /** One node; returns its first output's name (generated unless given). */
  node(op: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs?: string[]): string {
    const outs = outputs ?? [`${op.toLowerCase()}_${this.counter++}`];
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        input: inputs,
        output: outs,
        name: `${op}_${this.counter++}`,
        attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs[0];
  }

  build(opset = 14): ModelProto {
    return onnx.ModelProto.create({
      irVersion: 7,
      producerName: 'farm-model-tools',
      opsetImport: [{ domain: '', version: opset }],
      graph: { name: this.name, input: this.inputs, output: this.outputs, initializer: this.initializers, node: this.nodes },
    });
  }
}

/** Inputs ONNX requires in float32 whatever the graph computes in: Resize's roi and scales. */
const FLOAT32_ONLY: Readonly<Record<string, readonly number[]>> = { Resize: [1, 2] };

/**
 * The same graph computing in `to` where it computed in `from`: its inputs, outputs, intermediate
 * value types, initializers (external data read from `dir` and inlined), Constant nodes and Casts
 * (but for the inputs ONNX requires in float32). float16 → float32 is what diffusers'
 * `force_upcast` does to the SDXL VAE, for an exported graph; float32 → float16 makes a GPU copy.
 */
export function convertFloats(model: ModelProto, from: 'float16' | 'float32', to: 'float16' | 'float32', dir = '.'): ModelProto {
  const copy = readModel(writeModel(model));
  const graph = copy.graph!;
  const [FROM, TO] = [CODES[from], CODES[to]];
  const kept = new Set<string>();
  for (const node of graph.node ?? []) (FLOAT32_ONLY[node.opType ?? ''] ?? []).forEach((slot) => node.input?.[slot] && kept.add(node.input[slot]));
  for (const info of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    const tensor = info.type?.tensorType;
    if (tensor && tensor.elemType === FROM && !kept.has(info.name ?? '')) tensor.elemType = TO;
  }
  const convert = (t: onnx.ITensorProto, name = t.name ?? ''): onnx.TensorProto =>
    t.dataType === FROM && !kept.has(name) ? makeTensor(t.name ?? '', to, (t.dims ?? []).map(Number), tensorValues(t, dir)) : (t as onnx.TensorProto);
  graph.initializer = (graph.initializer ?? []).map((t) => convert(t));
  for (const node of graph.node ?? []) {
    for (const attr of node.attribute ?? []) {
      if (node.opType === 'Cast' && attr.name === 'to' && Number(attr.i) === FROM && !kept.has(node.output?.[0] ?? '')) attr.i = TO;
      if (attr.t) attr.t = convert(attr.t, node.output?.[0]);
    }
  }
  return copy;
}

/** The same graph computing in float32 where it computed in float16 (see convertFloats). */
export function upcastFloat16(model: ModelProto, dir = '.'): ModelProto {
  return convertFloats(model, 'float16', 'float32', dir);
}

/** Above this many bytes of initializers a saved model keeps them in an external data file (protobuf's 2 GB limit). */
const EXTERNAL_TOTAL = 1.5 * 2 ** 30;

/**
 * Writes `model` to `file`; when its initializers pass `externalAbove` bytes (1.5 GB), their data
 * goes to `<file>_data` (ONNX external data, 64-byte aligned), as exporters do for large UNets.
 * Returns the files written.
 */
export function saveModel(model: ModelProto, file: string, externalAbove = EXTERNAL_TOTAL): string[] {
  const graph = model.graph!;
  const total = (graph.initializer ?? []).reduce((n, t) => n + (t.rawData?.length ?? 0), 0);
  if (total < externalAbove) {
    writeFileSync(file, writeModel(model));
    return [file];
  }
  const location = `${path.basename(file)}_data`;
  const fd = openSync(path.join(path.dirname(file), location), 'w');
  try {
    let offset = 0;
    for (const tensor of graph.initializer ?? []) {
      const raw = tensor.rawData;
      if (!raw || raw.length < 1024) continue;
      offset = Math.ceil(offset / 64) * 64;
      writeSync(fd, raw, 0, raw.length, offset);
      tensor.externalData = [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ];
      tensor.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      tensor.rawData = new Uint8Array(0);
      offset += raw.length;
    }
  } finally {
    closeSync(fd);
  }
  writeFileSync(file, writeModel(model));
  return [file, path.join(path.dirname(file), location)];
}
