/**
 * What a Stable Diffusion folder needs from the farm, derived from its ONNX sessions' inputs and
 * outputs (names, element types, ranks, widths) and its configs — and the check that refuses, at
 * load, a model the farm cannot serve, with one sentence naming what is missing. Pure: the
 * signatures come from onnxruntime's metadata or from the ONNX files themselves.
 *
 * What it recognises (optimum's exporters/onnx/model_configs.py):
 * - text encoders: `last_hidden_state` (SD 1.x/2.x), or for SDXL the penultimate `hidden_states.N`
 *   of both encoders, concatenated, and `text_embeds` (pooled) of text_encoder_2;
 * - UNet `timestep`: [steps] int64 (Optimum ≤ 1.23, one per sample) or rank 0 float (≥ 1.24,
 *   one per call); extra conditioning `text_embeds`, `time_ids` (SDXL), `timestep_cond` (LCM);
 * - VAE encoder: `latent_sample` (≤ 1.22, sampled) or `latent_parameters` (mean ‖ log-variance);
 * - ControlNet (the community's ONNX convention: onnx-web, the TensorRT demo): `controlnet/model.onnx`
 *   takes `sample`, `timestep`, `encoder_hidden_states` and `controlnet_cond` (RGB [b, 3, H, W] in
 *   0…1) and gives the down-block residuals then the mid-block residual; a UNet that accepts them
 *   takes `down_block_0 … down_block_N-1` and `mid_block_additional_residual`.
 */
import type { Dim, ElementType, ValueSignature } from '@farm/model-tools';

export type Part = 'text_encoder' | 'text_encoder_2' | 'unet' | 'vae_decoder' | 'vae_encoder' | 'controlnet';

export interface PartSignature {
  inputs: readonly ValueSignature[];
  outputs: readonly ValueSignature[];
}

export interface TextEncoderUse {
  part: 'text_encoder' | 'text_encoder_2';
  /** The output whose [b, L, width] rows join the context. */
  hidden: string;
  width: number;
  /** The pooled output the UNet takes as `text_embeds` (SDXL), if any. */
  pooled?: string;
}

/** An extra UNet input: one row of `width` values per sample. */
export interface ExtraInput {
  name: 'text_embeds' | 'time_ids' | 'timestep_cond';
  width: number;
}

/** One ControlNet residual: the UNet input it is added through, its channels, the ControlNet output giving it. */
export interface ControlResidual {
  input: string;
  channels: number;
  /** Null when the folder has no controlnet/ (the UNet then gets zeros). */
  output: string | null;
}

export interface ModelSignature {
  textEncoders: TextEncoderUse[];
  /** Width of the UNet's encoder_hidden_states (the encoders' widths summed). */
  contextWidth: number;
  /** `per-sample`: [b] timesteps, lanes of any step share a call; `per-call`: one scalar, one step per call. */
  timestep: { shared: boolean; type: ElementType };
  extras: ExtraInput[];
  latentChannels: number;
  /** The VAE encoder's output and its kind (null when the folder has none). */
  encoderOutput: { name: string; kind: 'sample' | 'parameters' } | null;
  /** Float type of the VAE decoder (fp16 ones are upcast when their config asks, as diffusers' force_upcast). */
  decoderType: ElementType;
  /** The UNet's ControlNet residual inputs, down blocks in order then the mid block (empty: it takes none). */
  controlResiduals: ControlResidual[];
}

/** A model the farm cannot serve; its message is one sentence naming what is missing. */
export class UnsupportedModelError extends Error {
  override readonly name = 'UnsupportedModelError';
}

const fail = (sentence: string): never => {
  throw new UnsupportedModelError(sentence);
};

const find = (values: readonly ValueSignature[], name: string) => values.find((v) => v.name === name);
const lastDim = (v: ValueSignature): Dim => v.dims[v.dims.length - 1];

function requireInput(part: Part, sig: PartSignature, name: string, rank?: number): ValueSignature {
  const value = find(sig.inputs, name) ?? fail(`${part}/model.onnx has no input "${name}", which the farm feeds`);
  if (rank !== undefined && value.dims.length !== rank) fail(`${part}/model.onnx input "${name}" has rank ${value.dims.length}, the farm feeds rank ${rank}`);
  return value;
}

function fixedWidth(part: Part, value: ValueSignature, fallback?: number): number {
  const w = lastDim(value);
  if (typeof w === 'number' && w > 0) return w;
  if (fallback) return fallback;
  return fail(`${part}/model.onnx output "${value.name}" has no fixed width`);
}

/** The penultimate hidden state (diffusers' hidden_states[-2]) among `hidden_states.0 … N`. */
function penultimate(part: Part, sig: PartSignature): ValueSignature {
  const layers = sig.outputs.filter((o) => /^hidden_states\.\d+$/.test(o.name)).map((o) => Number(o.name.split('.')[1]));
  if (layers.length < 2) fail(`${part}/model.onnx has no hidden_states.* outputs (SDXL needs the penultimate layer; export it with Optimum)`);
  return find(sig.outputs, `hidden_states.${Math.max(...layers) - 1}`)!;
}

/**
 * The signature of the folder's sessions, or UnsupportedModelError. `hiddenSizes` are the text
 * encoders' config `hidden_size` (used when an output's width is symbolic).
 */
export function deriveModelSignature(parts: Partial<Record<Part, PartSignature>>, hiddenSizes: Partial<Record<Part, number>> = {}): ModelSignature {
  const unet = parts.unet ?? fail('unet/model.onnx is missing');
  const decoder = parts.vae_decoder ?? fail('vae_decoder/model.onnx is missing');
  const textEncoder = parts.text_encoder ?? fail('text_encoder/model.onnx is missing');

  // 1. The UNet's inputs.
  const sample = requireInput('unet', unet, 'sample', 4);
  const latentChannels = typeof sample.dims[1] === 'number' ? sample.dims[1] : fail('unet/model.onnx input "sample" has no fixed channel count');
  const timestep = requireInput('unet', unet, 'timestep');
  if (timestep.dims.length > 1) fail(`unet/model.onnx input "timestep" has rank ${timestep.dims.length}; the farm feeds rank 0 or 1`);
  const context = requireInput('unet', unet, 'encoder_hidden_states', 3);
  const contextWidth = typeof lastDim(context) === 'number' ? (lastDim(context) as number) : fail('unet/model.onnx input "encoder_hidden_states" has no fixed width');
  const known = new Set(['sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids', 'timestep_cond']);
  const unknown = unet.inputs.find((i) => !known.has(i.name) && !isResidualInput(i.name));
  if (unknown) fail(`unet/model.onnx takes "${unknown.name}", which the farm cannot supply`);
  const extras: ExtraInput[] = (['text_embeds', 'time_ids', 'timestep_cond'] as const)
    .map((name) => find(unet.inputs, name))
    .filter((v): v is ValueSignature => v !== undefined)
    .map((v) => {
      if (v.dims.length !== 2) fail(`unet/model.onnx input "${v.name}" has rank ${v.dims.length}, the farm feeds rank 2`);
      return { name: v.name as ExtraInput['name'], width: fixedWidth('unet', v) };
    });
  const timeIds = extras.find((e) => e.name === 'time_ids');
  if (timeIds && timeIds.width !== 6) fail(`unet/model.onnx takes time_ids of width ${timeIds.width} (an aesthetic-score refiner); the farm supplies SDXL's 6`);

  // 2. Text encoders: SDXL (the UNet takes text_embeds) needs both, penultimate layers joined.
  const pooledInput = extras.find((e) => e.name === 'text_embeds');
  const textEncoders: TextEncoderUse[] = [];
  if (pooledInput) {
    const second = parts.text_encoder_2 ?? fail('text_encoder_2/model.onnx is missing (this is an SDXL export: its UNet takes text_embeds and time_ids)');
    for (const [part, sig] of [['text_encoder', textEncoder], ['text_encoder_2', second]] as const) {
      const hidden = penultimate(part, sig);
      textEncoders.push({ part, hidden: hidden.name, width: fixedWidth(part, hidden, hiddenSizes[part]) });
    }
    const pooled = find(second.outputs, 'text_embeds') ?? fail('text_encoder_2/model.onnx has no output "text_embeds" (the pooled embedding the UNet takes)');
    textEncoders[1].pooled = pooled.name;
    const pooledWidth = typeof lastDim(pooled) === 'number' && pooled.dims.length === 2 ? (lastDim(pooled) as number) : pooledInput.width;
    if (pooledWidth !== pooledInput.width) fail(`text_encoder_2's text_embeds are ${pooledWidth} wide but the UNet takes ${pooledInput.width}`);
  } else {
    const hidden = find(textEncoder.outputs, 'last_hidden_state') ?? fail('text_encoder/model.onnx has no output "last_hidden_state"');
    textEncoders.push({ part: 'text_encoder', hidden: hidden.name, width: fixedWidth('text_encoder', hidden, hiddenSizes.text_encoder) });
  }
  for (const { part } of textEncoders) requireInput(part, parts[part]!, 'input_ids', 2);
  const width = textEncoders.reduce((sum, e) => sum + e.width, 0);
  if (width !== contextWidth) {
    fail(`the UNet's context is ${contextWidth} wide but the text encoder${textEncoders.length > 1 ? 's give' : ' gives'} ${width}${textEncoders.length === 1 && contextWidth > width ? ' (is text_encoder_2 missing?)' : ''}`);
  }

  // 3. VAE: the decoder takes the UNet's latent channels; the encoder gives them (or twice them).
  const latentIn = requireInput('vae_decoder', decoder, 'latent_sample', 4);
  if (latentIn.dims[1] !== latentChannels) fail(`vae_decoder takes ${latentIn.dims[1]} latent channels but the UNet ${latentChannels}`);
  let encoderOutput: ModelSignature['encoderOutput'] = null;
  if (parts.vae_encoder) {
    requireInput('vae_encoder', parts.vae_encoder, 'sample', 4);
    const params = find(parts.vae_encoder.outputs, 'latent_parameters');
    const sampled = find(parts.vae_encoder.outputs, 'latent_sample');
    const out = params ?? sampled ?? fail('vae_encoder/model.onnx has neither "latent_parameters" nor "latent_sample"');
    const expected = params ? 2 * latentChannels : latentChannels;
    if (out.dims[1] !== expected) fail(`vae_encoder's ${out.name} has ${out.dims[1]} channels, the UNet's latents need ${expected}`);
    encoderOutput = { name: out.name, kind: params ? 'parameters' : 'sample' };
  }

  return {
    textEncoders,
    contextWidth,
    timestep: { shared: timestep.dims.length === 0, type: timestep.type },
    extras,
    latentChannels,
    encoderOutput,
    decoderType: latentIn.type,
    controlResiduals: controlResiduals(unet, parts.controlnet),
  };
}

const isResidualInput = (name: string) => /^down_block_\d+$/.test(name) || name === 'mid_block_additional_residual';

/** The UNet's residual inputs (down_block_0…N-1, mid_block_additional_residual) matched to the ControlNet's outputs in order. */
function controlResiduals(unet: PartSignature, controlnet?: PartSignature): ControlResidual[] {
  const index = (name: string) => (name.startsWith('down_block_') ? Number(name.slice('down_block_'.length)) : Infinity);
  const inputs = unet.inputs.filter((i) => isResidualInput(i.name)).sort((a, b) => index(a.name) - index(b.name));
  const expected = [...Array.from({ length: inputs.length - 1 }, (_, i) => `down_block_${i}`), 'mid_block_additional_residual'];
  if (inputs.length > 0 && inputs.map((i) => i.name).join() !== expected.join()) {
    fail(`unet/model.onnx takes ControlNet residuals ${inputs.map((i) => i.name).join(', ')}; the farm feeds down_block_0 … down_block_N-1 and mid_block_additional_residual`);
  }
  if (controlnet) {
    if (inputs.length === 0) fail('controlnet/model.onnx is present but unet/model.onnx takes no ControlNet residuals');
    for (const name of ['sample', 'timestep', 'encoder_hidden_states']) requireInput('controlnet', controlnet, name);
    const cond = requireInput('controlnet', controlnet, 'controlnet_cond', 4);
    if (cond.dims[1] !== 3) fail(`controlnet/model.onnx takes ${cond.dims[1]}-channel control images; the farm feeds RGB`);
    if (controlnet.outputs.length !== inputs.length) fail(`controlnet/model.onnx gives ${controlnet.outputs.length} residuals but the UNet takes ${inputs.length}`);
  }
  return inputs.map((input, i) => {
    const channels = typeof input.dims[1] === 'number' ? input.dims[1] : fail(`unet/model.onnx input "${input.name}" has no fixed channel count`);
    const output = controlnet ? controlnet.outputs[i] : null;
    if (output && output.dims[1] !== channels) fail(`controlnet/model.onnx output "${output.name}" has ${output.dims[1]} channels but the UNet's ${input.name} ${channels}`);
    return { input: input.name, channels, output: output?.name ?? null };
  });
}
