import { DDIMScheduler, LCMScheduler, NoiseSchedule, addNoise, createScheduler, resolveSchedulerConfig } from '@farm/pipeline';

const SD = resolveSchedulerConfig({}); // SD's scaled-linear betas, 1000 steps, LCM settings

describe('noise schedule (SD scaled-linear)', () => {
  // Reference values: diffusers' DDPM/LCM schedulers, alphas_cumprod for beta_start 0.00085,
  // beta_end 0.012, "scaled_linear" (as quoted in issue #2).
  const schedule = new NoiseSchedule(SD);
  it.each([
    [999, 0.00466009],
    [499, 0.27766952],
    [259, 0.65897548],
  ])('ᾱ(%i) = %f', (t, expected) => {
    expect(schedule.alphaBar(t)).toBeCloseTo(expected, 8);
  });

  it('uses ᾱ = 1 after the last step when set_alpha_to_one', () => {
    expect(schedule.alphaBar(null)).toBe(1);
    expect(new NoiseSchedule({ ...SD, set_alpha_to_one: false }).alphaBar(null)).toBeCloseTo(1 - 0.00085, 7);
  });

  it('linear betas differ from scaled-linear ones', () => {
    const linear = new NoiseSchedule({ ...SD, beta_schedule: 'linear' });
    expect(linear.alphaBar(499)).not.toBeCloseTo(schedule.alphaBar(499), 3);
  });

  it('rejects prediction types it does not implement', () => {
    expect(() => resolveSchedulerConfig({ prediction_type: 'v_prediction' })).toThrow(/epsilon only/);
  });
});

describe('LCMScheduler', () => {
  const lcm = new LCMScheduler(SD);

  it('selects [999, 759, 499, 259] for 4 steps out of 50 original steps (diffusers)', () => {
    expect(lcm.timesteps(4)).toEqual([999, 759, 499, 259]);
  });

  it('selects diffusers’ timesteps for 1, 2 and 8 steps', () => {
    // np.linspace(0, 50, n, endpoint=False) floored, indexing [999, 979, …, 19].
    expect(lcm.timesteps(1)).toEqual([999]);
    expect(lcm.timesteps(2)).toEqual([999, 499]);
    expect(lcm.timesteps(8)).toEqual([999, 879, 759, 639, 499, 379, 259, 139]);
  });

  it('starts part-way for strength < 1 and refuses more steps than it has', () => {
    expect(lcm.timesteps(2, 0.5)).toEqual([499, 259]);
    expect(() => lcm.timesteps(30, 0.5)).toThrow(/at most 25 steps/);
  });

  it('computes the boundary-condition scalings with timestep_scaling 10', () => {
    // c_skip = 0.25 / ((10t)² + 0.25), c_out = 10t / sqrt((10t)² + 0.25)
    const at999 = lcm.boundaryScalings(999);
    expect(at999.cSkip).toBeCloseTo(0.25 / (9990 ** 2 + 0.25), 15);
    expect(at999.cOut).toBeCloseTo(0.9999999987, 9);
    const at0 = lcm.boundaryScalings(0);
    expect(at0).toEqual({ cSkip: 1, cOut: 0 });
  });

  it('recovers x0 when the model predicts the true noise, then re-noises to the next timestep', () => {
    const x0 = Float32Array.from([0.5, -1, 0.25, 2]);
    const eps = Float32Array.from([1, -0.5, 0.3, 0.1]);
    const xt = addNoise(lcm.schedule, x0, eps, 759);
    const denoised = lcm.denoise(eps, xt, 759);
    const { cSkip, cOut } = lcm.boundaryScalings(759);
    denoised.forEach((v, i) => expect(v).toBeCloseTo(cOut * x0[i] + cSkip * xt[i], 5));
    const noise = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
    const next = lcm.advance(denoised, xt, 759, 499, noise);
    const a = 0.27766952;
    next.forEach((v, i) => expect(v).toBeCloseTo(Math.sqrt(a) * denoised[i] + Math.sqrt(1 - a) * noise[i], 5));
    expect(lcm.advance(denoised, xt, 259, null, noise)).toBe(denoised);
  });
});

describe('DDIMScheduler', () => {
  const ddim = new DDIMScheduler({ ...SD, _class_name: 'DDIMScheduler' });

  it('uses leading spacing with steps_offset (diffusers: 4 steps → [751, 501, 251, 1])', () => {
    expect(ddim.timesteps(4)).toEqual([751, 501, 251, 1]);
    expect(ddim.timesteps(4, 0.5)).toEqual([251, 1]);
  });

  it('is deterministic: with the true noise it lands exactly on the forward process at t_prev', () => {
    const x0 = Float32Array.from([0.3, -0.7, 1.1]);
    const eps = Float32Array.from([0.9, 0.1, -1.2]);
    const xt = addNoise(ddim.schedule, x0, eps, 501);
    const d = ddim.denoise(eps, xt, 501);
    const next = ddim.advance(d, xt, 501, 251);
    const expected = addNoise(ddim.schedule, x0, eps, 251);
    next.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
  });
});

describe('createScheduler', () => {
  it('picks the class named in scheduler_config.json', () => {
    expect(createScheduler({ _class_name: 'LCMScheduler' }).name).toBe('lcm');
    expect(createScheduler({ _class_name: 'DDIMScheduler' }).name).toBe('ddim');
    expect(createScheduler({ _class_name: 'LCMScheduler' }, 'ddim').name).toBe('ddim');
  });
});
