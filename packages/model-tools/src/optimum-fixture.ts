/**
 * Fake-weight Stable Diffusion folders with the exact ONNX signatures Hugging Face Optimum writes
 * (tensor names, element types, ranks, symbolic dim names, fixed widths) for each model family
 * and each export generation, with the families' published scheduler and tokenizer configs.
 * The graphs compute cheap stand-ins (an embedding lookup, a blend of the UNet's inputs, a
 * nearest-neighbour VAE) so a farm can run them end to end in milliseconds.
 *
 * Signatures follow optimum's exporters/onnx/model_configs.py and exporters/utils.py:
 *   v1.22: UNet timestep int64 ["steps"], vae_encoder → latent_sample (sampled), CLIPText input_ids int32;
 *   v1.23: vae_encoder → latent_parameters (mean ‖ logvar);
 *   v1.24/1.25: timestep rank 0, float (fp16 in fp16 exports), input_ids int64;
 *   v1.26+ and optimum-onnx: VAE dims named sample_height, "sample_height / 8", latent_height, "latent_height * 8".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Dim, ElementType, GraphBuilder, ModelProto, writeModel } from './onnx-model';

export const FAMILIES = ['sd15', 'sd21-base', 'sd-turbo', 'lcm-dreamshaper-v7', 'lcm-lora-sd15', 'sdxl-turbo'] as const;
export type Family = (typeof FAMILIES)[number];
export const GENERATIONS = ['optimum-1.22', 'optimum-1.23', 'optimum-1.24', 'optimum-onnx'] as const;
export type Generation = (typeof GENERATIONS)[number];

export interface FixtureOptions {
  family: Family;
  generation: Generation;
  dtype?: 'fp32' | 'fp16';
  /** Parts left out (e.g. "text_encoder_2"), to test refusals. */
  omit?: readonly string[];
}

interface FamilySpec {
  pipeline: string;
  /** Text encoders: hidden size, layers, projection (text_encoder_2 of SDXL). */
  encoders: { hidden: number; layers: number; projection?: number }[];
  context: number;
  downBlocks: number;
  sampleSize: number;
  scalingFactor: number;
  /** The UNet's guidance embedding width (LCM), if any. */
  timeCond?: number;
  scheduler: Record<string, unknown>;
  /** tokenizer(s)' pad token, per encoder. */
  pads: string[];
}

const SD_BETAS = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, trained_betas: null };
/** SD 1.5 and 2.1-base's published scheduler_config.json. */
const PNDM = { _class_name: 'PNDMScheduler', ...SD_BETAS, clip_sample: false, prediction_type: 'epsilon', set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1 };
/** SD-Turbo's (Euler) and SDXL-Turbo's (Euler Ancestral) published scheduler_config.json. */
const TURBO = { ...SD_BETAS, clip_sample: false, interpolation_type: 'linear', prediction_type: 'epsilon', sample_max_value: 1.0, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, timestep_spacing: 'trailing' };
/** LCM-Dreamshaper v7's published scheduler_config.json (also what an LCM-LoRA pipeline is saved with). */
const LCM = {
  _class_name: 'LCMScheduler', ...SD_BETAS, clip_sample: false, clip_sample_range: 1.0, dynamic_thresholding_ratio: 0.995, original_inference_steps: 50,
  prediction_type: 'epsilon', rescale_betas_zero_snr: false, sample_max_value: 1.0, set_alpha_to_one: true, steps_offset: 1, thresholding: false,
  timestep_scaling: 10.0, timestep_spacing: 'leading',
};
const CLIP_L = { hidden: 768, layers: 12 };
const OPEN_CLIP_H = { hidden: 1024, layers: 23 };

const SPECS: Record<Family, FamilySpec> = {
  sd15: { pipeline: 'ORTStableDiffusionPipeline', encoders: [CLIP_L], context: 768, downBlocks: 4, sampleSize: 64, scalingFactor: 0.18215, scheduler: PNDM, pads: ['<|endoftext|>'] },
  'sd21-base': { pipeline: 'ORTStableDiffusionPipeline', encoders: [OPEN_CLIP_H], context: 1024, downBlocks: 4, sampleSize: 64, scalingFactor: 0.18215, scheduler: PNDM, pads: ['!'] },
  'sd-turbo': { pipeline: 'ORTStableDiffusionPipeline', encoders: [OPEN_CLIP_H], context: 1024, downBlocks: 4, sampleSize: 64, scalingFactor: 0.18215, scheduler: { _class_name: 'EulerDiscreteScheduler', ...TURBO, use_karras_sigmas: false }, pads: ['!'] },
  'lcm-dreamshaper-v7': { pipeline: 'ORTLatentConsistencyModelPipeline', encoders: [CLIP_L], context: 768, downBlocks: 4, sampleSize: 96, scalingFactor: 0.18215, timeCond: 256, scheduler: LCM, pads: ['<|endoftext|>'] },
  'lcm-lora-sd15': { pipeline: 'ORTStableDiffusionPipeline', encoders: [CLIP_L], context: 768, downBlocks: 4, sampleSize: 64, scalingFactor: 0.18215, scheduler: LCM, pads: ['<|endoftext|>'] },
  'sdxl-turbo': {
    pipeline: 'ORTStableDiffusionXLPipeline', encoders: [CLIP_L, { hidden: 1280, layers: 32, projection: 1280 }], context: 2048, downBlocks: 3, sampleSize: 64, scalingFactor: 0.13025,
    scheduler: { _class_name: 'EulerAncestralDiscreteScheduler', ...TURBO }, pads: ['<|endoftext|>', '!'],
  },
};

/** A small CLIP BPE vocabulary: the byte-level alphabet, end-of-word forms of common letters, specials. */
function vocabulary(): Record<string, number> {
  const vocab: Record<string, number> = {};
  const add = (token: string) => {
    if (!(token in vocab)) vocab[token] = Object.keys(vocab).length;
  };
  add('!'); // id 0, as in CLIP's vocabulary: SD 2.x pads with it
  for (let c = 33; c < 127; c++) add(String.fromCharCode(c));
  for (let c = 97; c < 123; c++) add(`${String.fromCharCode(c)}</w>`);
  for (const word of ['a', 'red', 'blue', 'green', 'circle', 'square', 'on', 'background', 'cat', 'dog']) add(`${word}</w>`);
  add('<|startoftext|>');
  add('<|endoftext|>');
  return vocab;
}

function merges(vocab: Record<string, number>): string[] {
  // Merges that build the words above letter by letter ("r e", "re d</w>", …).
  const out: string[] = ['#version: 0.2'];
  for (const token of Object.keys(vocab)) {
    if (!token.endsWith('</w>') || token.length <= 5) continue;
    const word = token.slice(0, -4);
    for (let i = 1; i < word.length; i++) {
      const left = word.slice(0, i);
      const right = i === word.length - 1 ? `${word[i]}</w>` : word[i];
      out.push(`${left} ${right}`);
    }
  }
  return [...new Set(out)];
}

function writeTokenizer(dir: string, pad: string): number {
  mkdirSync(dir, { recursive: true });
  const vocab = vocabulary();
  const token = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(path.join(dir, 'merges.txt'), merges(vocab).join('\n') + '\n');
  // SD 2.x: tokenizer_config.json names <|endoftext|> as pad, special_tokens_map.json overrides it with "!".
  writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ add_prefix_space: false, bos_token: token('<|startoftext|>'), do_lower_case: true, eos_token: token('<|endoftext|>'), errors: 'replace', model_max_length: 77, pad_token: '<|endoftext|>', tokenizer_class: 'CLIPTokenizer', unk_token: token('<|endoftext|>') }, null, 2),
  );
  writeFileSync(
    path.join(dir, 'special_tokens_map.json'),
    JSON.stringify({ bos_token: token('<|startoftext|>'), eos_token: token('<|endoftext|>'), pad_token: pad === '!' ? '!' : token('<|endoftext|>'), unk_token: token('<|endoftext|>') }, null, 2),
  );
  return Object.keys(vocab).length;
}

/** A deterministic pseudo-random table (no weights are shipped; values only need to vary). */
function table(n: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (((s >>> 0) / 0xffffffff) * 2 - 1) * scale;
  }
  return out;
}

function textEncoder(spec: FamilySpec['encoders'][number], index: number, generation: Generation, float: ElementType, vocabSize: number, sdxl: boolean): ModelProto {
  const g = new GraphBuilder(index === 0 ? 'text_encoder' : 'text_encoder_2');
  const withProjection = spec.projection !== undefined;
  // CLIPTextOnnxConfig cast input_ids to int32 until optimum 1.24; CLIPTextWithProjection never did.
  const ids = g.input({ name: 'input_ids', type: !withProjection && (generation === 'optimum-1.22' || generation === 'optimum-1.23') ? 'int32' : 'int64', dims: ['batch_size', 'sequence_length'] });
  const H = spec.hidden;
  const emb = g.node('Gather', [g.constant(float, [vocabSize, H], table(vocabSize * H, 7 + index, 1)), ids], { axis: 0 });
  const seq: Dim[] = ['batch_size', 'sequence_length', H];
  const pooled = g.node('ReduceMean', [emb], { axes: [1], keepdims: 0 });
  if (withProjection) {
    g.node('MatMul', [pooled, g.constant(float, [H, spec.projection!], table(H * spec.projection!, 11, 0.05))], {}, ['text_embeds']);
    g.output({ name: 'text_embeds', type: float, dims: ['batch_size', 'sequence_length'] });
  }
  g.node('Mul', [emb, g.constant(float, [], [0.9])], {}, ['last_hidden_state']);
  g.output({ name: 'last_hidden_state', type: float, dims: seq });
  if (!withProjection) {
    g.node('Identity', [pooled], {}, ['pooler_output']);
    g.output({ name: 'pooler_output', type: float, dims: ['batch_size', H] });
  }
  if (sdxl) {
    for (let i = 0; i <= spec.layers; i++) {
      g.node('Add', [emb, g.constant(float, [], [i * 0.01])], {}, [`hidden_states.${i}`]);
      g.output({ name: `hidden_states.${i}`, type: float, dims: seq });
    }
  }
  return g.build();
}

function unet(spec: FamilySpec, generation: Generation, float: ElementType, sdxl: boolean): ModelProto {
  const g = new GraphBuilder('unet');
  const scalar = (v: number) => g.constant(float, [], [v]);
  const sample = g.input({ name: 'sample', type: float, dims: ['batch_size', 4, 'height', 'width'] });
  const rank0 = generation === 'optimum-1.24' || generation === 'optimum-onnx';
  const timestep = g.input({ name: 'timestep', type: rank0 ? float : 'int64', dims: rank0 ? [] : ['steps'] });
  const context = g.input({ name: 'encoder_hidden_states', type: float, dims: ['batch_size', 'sequence_length', spec.context] });
  const column = (x: string) => g.node('Reshape', [x, g.constant('int64', [4], [-1, 1, 1, 1])]);
  // out = 0.5·sample + 0.1·mean(context) + t/10000 (+ 0.01·mean of each extra conditioning input)
  let out = g.node('Mul', [sample, scalar(0.5)]);
  out = g.node('Add', [out, g.node('Mul', [column(g.node('ReduceMean', [context], { axes: [1, 2], keepdims: 0 })), scalar(0.1)])]);
  const t = g.node('Mul', [g.node('Cast', [timestep], { to: float === 'float16' ? 10 : 1 }), scalar(1e-4)]);
  out = g.node('Add', [out, rank0 ? t : column(t)]);
  const extras: [string, number][] = sdxl ? [['text_embeds', spec.encoders[1].projection!], ['time_ids', 6]] : [];
  if (spec.timeCond) extras.push(['timestep_cond', spec.timeCond]);
  for (const [name, width] of extras) {
    const x = g.input({ name, type: float, dims: ['batch_size', width] });
    const scale = name === 'time_ids' ? 1e-5 : 0.01;
    out = g.node('Add', [out, g.node('Mul', [column(g.node('ReduceMean', [x], { axes: [1], keepdims: 0 })), scalar(scale)])]);
  }
  g.node('Identity', [out], {}, ['out_sample']);
  g.output({ name: 'out_sample', type: float, dims: ['batch_size', 4, 'height', 'width'] });
  return g.build();
}

function vaeDims(generation: Generation): { image: [Dim, Dim]; latent: [Dim, Dim]; encoded: [Dim, Dim]; decoded: [Dim, Dim] } {
  return generation === 'optimum-onnx'
    ? { image: ['sample_height', 'sample_width'], encoded: ['sample_height / 8', 'sample_width / 8'], latent: ['latent_height', 'latent_width'], decoded: ['latent_height * 8', 'latent_width * 8'] }
    : { image: ['height', 'width'], encoded: ['height_latent', 'width_latent'], latent: ['height_latent', 'width_latent'], decoded: ['height', 'width'] };
}

function vaeEncoder(generation: Generation, float: ElementType): ModelProto {
  const g = new GraphBuilder('vae_encoder');
  const d = vaeDims(generation);
  const image = g.input({ name: 'sample', type: float, dims: ['batch_size', 3, ...d.image] });
  const pooled = g.node('AveragePool', [image], { kernel_shape: [8, 8], strides: [8, 8] });
  // Four latent channels from three: RGB and their mean.
  const mean = g.node('Concat', [pooled, g.node('ReduceMean', [pooled], { axes: [1], keepdims: 1 })], { axis: 1 });
  if (generation === 'optimum-1.22') {
    // latent_dist.sample(): mean + std·N(0,1), drawn inside the graph.
    const noise = g.node('RandomNormalLike', [mean], { scale: 0.01 });
    g.node('Add', [mean, noise], {}, ['latent_sample']);
    g.output({ name: 'latent_sample', type: float, dims: ['batch_size', 4, ...d.encoded] });
  } else {
    const logvar = g.node('Add', [g.node('Mul', [mean, g.constant(float, [], [0])]), g.constant(float, [], [-6])]);
    g.node('Concat', [mean, logvar], { axis: 1 }, ['latent_parameters']);
    g.output({ name: 'latent_parameters', type: float, dims: ['batch_size', 8, ...d.encoded] });
  }
  return g.build();
}

function vaeDecoder(generation: Generation, float: ElementType, overflowsInFp16: boolean): ModelProto {
  const g = new GraphBuilder('vae_decoder');
  const d = vaeDims(generation);
  const latent = g.input({ name: 'latent_sample', type: float, dims: ['batch_size', 4, ...d.latent] });
  const rgb = g.node('Slice', [latent, g.constant('int64', [1], [0]), g.constant('int64', [1], [3]), g.constant('int64', [1], [1])]);
  let image = g.node('Tanh', [g.node('Mul', [rgb, g.constant(float, [], [0.2])])]);
  if (overflowsInFp16) {
    // Like SDXL's VAE: an activation beyond fp16's range (65504) for ordinary latents, stored in
    // fp16 (an explicit Cast: onnxruntime's CPU kernels would otherwise compute it in fp32). In
    // fp32, (x·20000 − x·20000) is 0; stored in fp16 it is inf − inf = NaN wherever |x| > 3.3.
    const wide = g.node('Mul', [g.node('Cast', [rgb], { to: 1 }), g.constant('float32', [], [20000])]);
    const stored = g.node('Cast', [g.node('Cast', [wide], { to: 10 })], { to: 1 });
    image = g.node('Add', [image, g.node('Cast', [g.node('Sub', [stored, stored])], { to: 10 })]);
  }
  const up = g.node('Resize', [image, '', g.constant('float32', [4], [1, 1, 8, 8])], { mode: 'nearest' });
  g.node('Identity', [up], {}, ['sample']);
  g.output({ name: 'sample', type: float, dims: ['batch_size', 3, ...d.decoded] });
  return g.build();
}

function writeJson(file: string, value: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(value, null, 2));
}

function writeOnnx(file: string, model: ModelProto): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, writeModel(model));
}

/** Writes the folder; returns it. */
export function writeOptimumFixture(dir: string, options: FixtureOptions): string {
  const { family, generation } = options;
  const spec = SPECS[family];
  const float: ElementType = options.dtype === 'fp16' ? 'float16' : 'float32';
  const sdxl = family === 'sdxl-turbo';
  const omit = new Set(options.omit ?? []);
  const part = (name: string, write: () => void) => {
    if (!omit.has(name)) write();
  };
  const encoderNames = sdxl ? ['text_encoder', 'text_encoder_2'] : ['text_encoder'];
  const tokenizerNames = sdxl ? ['tokenizer', 'tokenizer_2'] : ['tokenizer'];
  const index: Record<string, unknown> = { _class_name: spec.pipeline, _diffusers_version: '0.30.0', scheduler: ['diffusers', spec.scheduler._class_name], unet: ['diffusers', 'UNet2DConditionModel'], vae_decoder: ['diffusers', 'AutoencoderKL'], vae_encoder: ['diffusers', 'AutoencoderKL'] };
  encoderNames.forEach((n, i) => (index[n] = ['transformers', i === 1 ? 'CLIPTextModelWithProjection' : 'CLIPTextModel']));
  tokenizerNames.forEach((n) => (index[n] = ['transformers', 'CLIPTokenizer']));
  if (sdxl) Object.assign(index, { force_zeros_for_empty_prompt: true, requires_aesthetics_score: false });
  writeJson(path.join(dir, 'model_index.json'), index);
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), { ...spec.scheduler, _diffusers_version: '0.24.0' });
  let vocabSize = 0;
  tokenizerNames.forEach((n, i) => part(n, () => (vocabSize = writeTokenizer(path.join(dir, n), spec.pads[i]))));
  vocabSize ||= Object.keys(vocabulary()).length;
  spec.encoders.forEach((enc, i) =>
    part(encoderNames[i], () => {
      writeJson(path.join(dir, encoderNames[i], 'config.json'), {
        architectures: [enc.projection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'], model_type: 'clip_text_model', hidden_size: enc.hidden, num_hidden_layers: enc.layers,
        projection_dim: enc.projection ?? (enc.hidden === 1024 ? 512 : 768), max_position_embeddings: 77, vocab_size: vocabSize,
      });
      writeOnnx(path.join(dir, encoderNames[i], 'model.onnx'), textEncoder(enc, i, generation, float, vocabSize, sdxl));
    }),
  );
  const blocks = [320, 640, 1280, 1280].slice(0, spec.downBlocks);
  part('unet', () => {
    writeJson(path.join(dir, 'unet', 'config.json'), {
      _class_name: 'UNet2DConditionModel', in_channels: 4, out_channels: 4, sample_size: spec.sampleSize, cross_attention_dim: spec.context, block_out_channels: blocks,
      down_block_types: blocks.map(() => 'CrossAttnDownBlock2D'), time_cond_proj_dim: spec.timeCond ?? null,
      ...(sdxl ? { addition_embed_type: 'text_time', addition_time_embed_dim: 256, projection_class_embeddings_input_dim: 2816 } : {}),
    });
    writeOnnx(path.join(dir, 'unet', 'model.onnx'), unet(spec, generation, float, sdxl));
  });
  const vaeConfig = { _class_name: 'AutoencoderKL', in_channels: 3, out_channels: 3, latent_channels: 4, scaling_factor: spec.scalingFactor, block_out_channels: [128, 256, 512, 512], sample_size: spec.sampleSize * 8, ...(sdxl ? { force_upcast: true } : {}) };
  part('vae_encoder', () => {
    writeJson(path.join(dir, 'vae_encoder', 'config.json'), vaeConfig);
    writeOnnx(path.join(dir, 'vae_encoder', 'model.onnx'), vaeEncoder(generation, float));
  });
  part('vae_decoder', () => {
    writeJson(path.join(dir, 'vae_decoder', 'config.json'), vaeConfig);
    writeOnnx(path.join(dir, 'vae_decoder', 'model.onnx'), vaeDecoder(generation, float, sdxl && float === 'float16'));
  });
  return dir;
}
