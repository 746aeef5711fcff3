/**
 * The capabilities the API checks submissions against for the bundled model are the model's own:
 * its scheduler's steps rule, its guidance and its pixels per latent cell, read off the loaded model.
 */
import { BUNDLED_MODEL_CAPABILITIES } from '@farm/platform';
import { SdModel, createScheduler } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';

it('matches what the bundled model serves', async () => {
  const model = await SdModel.load(DEFAULT_MODEL_DIR);
  try {
    expect(BUNDLED_MODEL_CAPABILITIES).toEqual({
      sizeMultiple: model.info.vaeScale,
      guidance: model.embedsGuidance ? expect.objectContaining({ kind: 'embedded' }) : { kind: 'cfg' },
      sampler: createScheduler(model.schedulerConfig).sampler,
    });
  } finally {
    await model.release();
  }
});
