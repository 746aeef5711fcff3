/**
 * The model signature check, on the ONNX files' own signatures (read as protobuf, no sessions):
 * what each Optimum generation of each family needs, and the one sentence that refuses a folder
 * the farm cannot serve.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FAMILIES, GENERATIONS, graphSignature, readModelFile } from '@farm/model-tools';
import { Part, PartSignature, deriveModelSignature } from '@farm/pipeline';
import { ModelFixtures } from '../support/model-fixtures';

const fixtures = new ModelFixtures();
afterAll(() => fixtures.remove());

function signatures(dir: string): Partial<Record<Part, PartSignature>> {
  const parts: Part[] = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder'];
  return Object.fromEntries(parts.filter((p) => existsSync(path.join(dir, p, 'model.onnx'))).map((p) => [p, graphSignature(readModelFile(path.join(dir, p, 'model.onnx')))]));
}

describe('deriveModelSignature', () => {
  it.each(FAMILIES.flatMap((f) => GENERATIONS.map((g) => [f, g] as const)))('serves %s as %s exports it', (family, generation) => {
    const sig = deriveModelSignature(signatures(fixtures.dir(family, generation)));
    expect(sig.timestep.shared).toBe(generation === 'optimum-1.24' || generation === 'optimum-onnx');
    expect(sig.timestep.type).toBe(sig.timestep.shared ? 'float32' : 'int64');
    expect(sig.encoderOutput).toEqual(generation === 'optimum-1.22' ? { name: 'latent_sample', kind: 'sample' } : { name: 'latent_parameters', kind: 'parameters' });
    expect(sig.latentChannels).toBe(4);
  });

  it('reads SDXL: both encoders’ penultimate layers (768 + 1280 = 2048), pooled text_embeds, time_ids', () => {
    const sig = deriveModelSignature(signatures(fixtures.dir('sdxl-turbo', 'optimum-1.24', { dtype: 'fp16' })));
    expect(sig.textEncoders).toEqual([
      { part: 'text_encoder', hidden: 'hidden_states.11', width: 768 },
      { part: 'text_encoder_2', hidden: 'hidden_states.31', width: 1280, pooled: 'text_embeds' },
    ]);
    expect(sig.contextWidth).toBe(2048);
    expect(sig.extras).toEqual([{ name: 'text_embeds', width: 1280 }, { name: 'time_ids', width: 6 }]);
    expect(sig.timestep.type).toBe('float16');
    expect(sig.decoderType).toBe('float16');
  });

  it('reads LCM’s guidance embedding input (timestep_cond, 256 wide)', () => {
    expect(deriveModelSignature(signatures(fixtures.dir('lcm-dreamshaper-v7', 'optimum-1.23'))).extras).toEqual([{ name: 'timestep_cond', width: 256 }]);
  });

  it('refuses an SDXL export without text_encoder_2', () => {
    expect(() => deriveModelSignature(signatures(fixtures.dir('sdxl-turbo', 'optimum-1.24', { omit: ['text_encoder_2'] })))).toThrow(
      'text_encoder_2/model.onnx is missing (this is an SDXL export: its UNet takes text_embeds and time_ids)',
    );
  });

  it('refuses a text encoder narrower than the UNet’s context', () => {
    const parts = signatures(fixtures.dir('sd21-base', 'optimum-1.24'));
    parts.text_encoder = signatures(fixtures.dir('sd15', 'optimum-1.24')).text_encoder;
    expect(() => deriveModelSignature(parts)).toThrow("the UNet's context is 1024 wide but the text encoder gives 768 (is text_encoder_2 missing?)");
  });

  it('refuses a VAE encoder whose channels do not fit the UNet’s latents', () => {
    const parts = signatures(fixtures.dir('sd15', 'optimum-1.24'));
    const encoder = parts.vae_encoder!;
    parts.vae_encoder = { ...encoder, outputs: [{ ...encoder.outputs[0], dims: ['batch_size', 4, 'h', 'w'] }] };
    expect(() => deriveModelSignature(parts)).toThrow("vae_encoder's latent_parameters has 4 channels, the UNet's latents need 8");
  });

  it('refuses UNet inputs it cannot supply, and missing parts', () => {
    const parts = signatures(fixtures.dir('sd15', 'optimum-1.22'));
    const unet = parts.unet!;
    expect(() => deriveModelSignature({ ...parts, unet: { ...unet, inputs: [...unet.inputs, { name: 'controlnet_cond', type: 'float32', dims: ['b', 3, 'h', 'w'] }] } })).toThrow(
      'unet/model.onnx takes "controlnet_cond", which the farm cannot supply',
    );
    expect(() => deriveModelSignature({ ...parts, unet: undefined })).toThrow('unet/model.onnx is missing');
  });
});
