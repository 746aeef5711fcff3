/**
 * Schedulers pinned to diffusers. Every reference value below was computed with diffusers v0.40.0's
 * own code path (scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py,
 * scheduling_lcm.py, scheduling_ddim.py: __init__ tables, set_timesteps, step; the img2img
 * pipelines' get_timesteps) followed line by line with torch 1.13 + numpy, since diffusers itself
 * cannot be installed here.
 */
import {
  DDIMScheduler,
  EulerAncestralScheduler,
  EulerScheduler,
  LCMScheduler,
  NoiseSchedule,
  Scheduler,
  SchedulerConfig,
  addNoise,
  createScheduler,
  roundHalfEven,
} from '@farm/pipeline';

/** The SD family's published scheduler_config.json fields (SD-Turbo, SDXL-Turbo, SD 1.5, LCM). */
const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, steps_offset: 1 } as const;
const sdTurbo = (extra: Partial<SchedulerConfig> = {}) =>
  createScheduler({ _class_name: 'EulerDiscreteScheduler', ...SD, timestep_spacing: 'trailing', set_alpha_to_one: false, ...extra });
const f32 = (values: number[]) => values.map(Math.fround);

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, digits: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i], digits);
}

describe('noise schedule (SD scaled-linear betas)', () => {
  const schedule = (sdTurbo() as EulerScheduler).schedule;
  it.each([
    [0, 0.9991499781608582],
    [249, 0.6754320859909058],
    [499, 0.2776694595813751],
    [749, 0.05662345513701439],
    [999, 0.0046600960195064545],
  ])('ᾱ(%i) matches diffusers’ float32 alphas_cumprod (to 1.2e-6 relative)', (t, expected) => {
    expect(Math.abs(schedule.alphaBar(t) / expected - 1)).toBeLessThan(1.2e-6);
  });

  it('uses ᾱ = 1 after the last step when set_alpha_to_one, ᾱ_0 otherwise', () => {
    expect(new NoiseSchedule({ ...schedule.config, set_alpha_to_one: true }).alphaBar(null)).toBe(1);
    expect(schedule.alphaBar(null)).toBe(schedule.alphaBar(0));
  });

  it('interpolates σ between integer timesteps as np.interp', () => {
    const mid = (schedule.sigmas[665] + schedule.sigmas[666]) / 2;
    expect(schedule.sigma(665.5)).toBe(Math.fround(mid));
    expect(schedule.alphaBar(665.5)).toBeCloseTo(1 / (1 + mid * mid), 7);
  });
});

describe('Euler (SD-Turbo: EulerDiscreteScheduler, trailing)', () => {
  it.each([
    [1, [999], [14.614645004272461, 0]],
    [2, [999, 499], [14.614645004272461, 1.6128870248794556, 0]],
    [4, [999, 749, 499, 249], [14.614645004272461, 4.081730842590332, 1.6128870248794556, 0.6932054162025452, 0]],
  ])('%i steps visit diffusers’ timesteps with its sigmas', (steps, timesteps, sigmas) => {
    const euler = sdTurbo() as EulerScheduler;
    const plan = euler.timesteps(steps);
    expect(plan).toEqual(timesteps);
    expectClose([...plan.map((t) => euler.schedule.sigma(t)), 0], f32(sigmas), 4);
    expect(euler.landings(plan)).toEqual([...timesteps.slice(1), null]); // sigmas[step_index + 1]
  });

  it.each([
    ['leading', [751, 501, 251, 1], [4.116697788238525, 1.6236928701400757, 0.6983985900878906, 0.04131447896361351]],
    ['linspace', [999, 666, 333, 0], [14.614645004272461, 2.9183082580566406, 0.9323583245277405, 0.029167532920837402]],
  ] as const)('%s spacing: 4 steps', (spacing, timesteps, sigmas) => {
    const euler = sdTurbo({ timestep_spacing: spacing }) as EulerScheduler;
    expect(euler.timesteps(4)).toEqual(timesteps);
    expectClose(timesteps.map((t) => euler.schedule.sigma(t)), f32([...sigmas]), 4);
  });

  it('scales the first sample by init_noise_sigma as the UNet sees it', () => {
    // trailing: init_noise_sigma = σ_max = σ(999), so the UNet's input is noise·σ/√(σ²+1).
    expect(sdTurbo().initialNoiseScale(999)).toBeCloseTo(14.614645 / Math.sqrt(14.614645 ** 2 + 1), 6);
    // leading: init_noise_sigma = √(σ_max²+1) = 14.64881731065365, first σ = σ(751).
    expect(sdTurbo({ timestep_spacing: 'leading' }).initialNoiseScale(751)).toBeCloseTo(14.64881731065365 / Math.sqrt(4.116697788238525 ** 2 + 1), 5);
  });

  it('takes one step exactly as diffusers’ step() does', () => {
    // diffusers: sample = noise·init_noise_sigma; model input sample/√(σ²+1); prev = sample + d·(σ' − σ).
    const euler = sdTurbo();
    const noise = Float32Array.from([0.5, -1, 2]);
    const eps = Float32Array.from([0.1, 0.3, -0.2]);
    const x = noise.map((v) => v * euler.initialNoiseScale(999));
    expectClose(x, [0.49883362650871277, -0.9976672530174255, 1.995334506034851], 6);
    const next = euler.advance(euler.denoise(eps, x, 999), x, 999, 749, noise);
    expectClose(next, [1.4881893396377563, -4.229568004608154, 7.456584453582764], 4);
  });

  it('takes a v-prediction step as diffusers does', () => {
    const euler = sdTurbo({ prediction_type: 'v_prediction' });
    const x = Float32Array.from([0.5, -1, 2]).map((v) => v * euler.initialNoiseScale(999));
    const v = Float32Array.from([0.1, 0.3, -0.2]);
    const x0 = euler.denoise(v, x, 999);
    expectClose(x0, [-0.06571389734745026, -0.36740583181381226, 0.3357447385787964], 5);
    expectClose(euler.advance(x0, x, 999, 749, v), [0.47436800599098206, -1.034285068511963, 2.0001306533813477], 4);
  });

  it('lands on x0 after the last step (final σ = 0)', () => {
    const euler = sdTurbo();
    const x0 = Float32Array.from([0.3, -0.2]);
    expectClose(euler.advance(x0, Float32Array.from([1, 2]), 249, null, x0), x0, 6);
  });

  it('starts img2img as the pipelines’ get_timesteps and refuses a plan of no steps', () => {
    expect(sdTurbo().timesteps(4, 0.5)).toEqual([499, 249]);
    expect(() => sdTurbo().timesteps(1, 0.5)).toThrow(/steps × strength must make at least one step \(1 × 0.5 makes none\)/);
  });
});

describe('Euler Ancestral (SDXL-Turbo: EulerAncestralDiscreteScheduler, trailing)', () => {
  const ea = createScheduler({ _class_name: 'EulerAncestralDiscreteScheduler', ...SD, timestep_spacing: 'trailing', set_alpha_to_one: false });

  it('visits Euler’s timesteps', () => {
    expect(ea.name).toBe('euler-ancestral');
    expect(ea.timesteps(4)).toEqual([999, 749, 499, 249]);
    expect(ea.timesteps(1)).toEqual([999]);
  });

  it('splits each step into σ_down and fresh noise of σ_up, as diffusers’ step()', () => {
    const { up, down } = EulerAncestralScheduler.ancestralSigmas(Math.fround(14.614645004272461), Math.fround(4.081730842590332));
    expect(up).toBeCloseTo(3.9193053245544434, 5);
    expect(down).toBeCloseTo(1.1399877071380615, 5);
    const x = Float32Array.from([0.5, -1, 2]).map((v) => v * ea.initialNoiseScale(999));
    const eps = Float32Array.from([0.1, 0.3, -0.2]);
    const z = Float32Array.from([0.7, -0.4, 0.05]);
    expectClose(ea.advance(ea.denoise(eps, x, 999), x, 999, 749, z), [2.071026563644409, -4.812621116638184, 7.643217086791992], 4);
  });
});

describe('LCMScheduler (LCM-Dreamshaper v7, LCM-LoRA)', () => {
  const lcm = createScheduler({ _class_name: 'LCMScheduler', ...SD, original_inference_steps: 50 }) as LCMScheduler;

  it.each([
    [1, [999]],
    [2, [999, 499]],
    [4, [999, 759, 499, 259]],
    [8, [999, 879, 759, 639, 499, 379, 259, 139]],
  ])('%i steps pick diffusers’ timesteps out of 50 distilled ones', (steps, expected) => {
    expect(lcm.timesteps(steps)).toEqual(expected);
    expect(lcm.landings(expected)).toEqual([...expected.slice(1), null]); // timesteps[step_index + 1]
  });

  it('starts img2img within the first ⌊50·strength⌋ distilled steps and refuses more steps than those', () => {
    expect(lcm.timesteps(2, 0.5)).toEqual([499, 259]);
    expect(() => lcm.timesteps(4, 0.06)).toThrow(/steps must be at most 3 at strength 0.06/);
  });

  it('computes the boundary-condition scalings with timestep_scaling 10', () => {
    const at999 = lcm.boundaryScalings(999);
    expect(at999.cSkip).toBeCloseTo(0.25 / (9990 ** 2 + 0.25), 15);
    expect(at999.cOut).toBeCloseTo(0.9999999987, 9);
    expect(lcm.boundaryScalings(0)).toEqual({ cSkip: 1, cOut: 0 });
  });

  it('recovers x0 when the model predicts the true noise, then re-noises to the next timestep', () => {
    const x0 = Float32Array.from([0.5, -1, 0.25, 2]);
    const eps = Float32Array.from([1, -0.5, 0.3, 0.1]);
    const xt = addNoise(lcm.schedule, x0, eps, 759);
    const denoised = lcm.denoise(eps, xt, 759);
    const { cSkip, cOut } = lcm.boundaryScalings(759);
    denoised.forEach((v, i) => expect(v).toBeCloseTo(cOut * x0[i] + cSkip * xt[i], 5));
    const noise = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
    const a = lcm.schedule.alphaBar(499);
    lcm.advance(denoised, xt, 759, 499, noise).forEach((v, i) => expect(v).toBeCloseTo(Math.sqrt(a) * denoised[i] + Math.sqrt(1 - a) * noise[i], 5));
    expect(lcm.advance(denoised, xt, 259, null, noise)).toBe(denoised);
  });
});

describe('DDIMScheduler (and the PNDM configs of SD 1.5 / 2.1-base)', () => {
  const sd15 = createScheduler({ _class_name: 'PNDMScheduler', ...SD, set_alpha_to_one: false, skip_prk_steps: true, clip_sample: false } as Partial<SchedulerConfig>);

  it('serves PNDM configs with DDIM on their leading timesteps', () => {
    expect(sd15).toBeInstanceOf(DDIMScheduler);
    expect(sd15.timesteps(4)).toEqual([751, 501, 251, 1]);
    expect(sd15.landings([751, 501, 251, 1], 4)).toEqual([501, 251, 1, null]);
    expect(sd15.timesteps(1)).toEqual([1]);
    expect(sd15.timesteps(4, 0.75)).toEqual([501, 251, 1]);
  });

  it.each([
    ['trailing', [999, 749, 499, 249]],
    ['linspace', [999, 666, 333, 0]],
  ] as const)('%s spacing: 4 steps', (spacing, expected) => {
    expect(createScheduler({ _class_name: 'DDIMScheduler', ...SD, timestep_spacing: spacing }).timesteps(4)).toEqual(expected);
  });

  it('rounds linspace and trailing timesteps half to even, as numpy', () => {
    expect(roundHalfEven(812.5)).toBe(812);
    expect(roundHalfEven(937.5)).toBe(938);
    // np.round(np.arange(1000, 0, -62.5)) − 1
    expect(createScheduler({ _class_name: 'DDIMScheduler', ...SD, timestep_spacing: 'trailing' }).timesteps(16)).toEqual([
      999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61,
    ]);
  });

  it('ends at ᾱ_0 when set_alpha_to_one is false, as diffusers returns it', () => {
    const x = Float32Array.from([0.5, -1, 2]);
    const eps = Float32Array.from([0.1, 0.3, -0.2]);
    expectClose(sd15.advance(sd15.denoise(eps, x, 1), x, 1, null, eps), [0.49899962544441223, -1.0040702819824219, 2.003283739089966], 5);
  });

  it('is deterministic: with the true noise it lands exactly on the forward process at t_prev', () => {
    const x0 = Float32Array.from([0.3, -0.7, 0.9]);
    const eps = Float32Array.from([0.9, 0.1, -1.2]);
    const xt = addNoise(sd15.schedule, x0, eps, 501);
    const next = sd15.advance(sd15.denoise(eps, xt, 501), xt, 501, 251, eps);
    expectClose(next, addNoise(sd15.schedule, x0, eps, 251), 5);
  });

  // diffusers v0.40.0 DDIMScheduler.step: prev_timestep = timestep − num_train_timesteps // num_inference_steps
  // (negative: final_alpha_cumprod), whatever the spacing; values from that formula on set_timesteps' plans (numpy).
  it.each([
    ['linspace', 4, [999, 666, 333, 0], [749, 416, 83, null]],
    ['linspace', 3, [999, 500, 0], [666, 167, null]],
    ['trailing', 3, [999, 666, 332], [666, 333, null]],
    ['trailing', 7, [999, 856, 713, 570, 428, 285, 142], [857, 714, 571, 428, 286, 143, 0]], // the last step lands on ᾱ_0, not the end
    ['leading', 4, [751, 501, 251, 1], [501, 251, 1, null]], // leading: the plan's next timestep
  ] as const)('%s spacing, %i steps: each step lands on t − T//N, as diffusers’ step', (spacing, steps, plan, landings) => {
    const ddim = createScheduler({ _class_name: 'DDIMScheduler', ...SD, timestep_spacing: spacing });
    expect(ddim.timesteps(steps)).toEqual(plan);
    expect(ddim.landings(plan, steps)).toEqual(landings);
  });

  it('lands an image-to-image plan by the full step count, and steps to ᾱ(t − T//N)', () => {
    const ddim = createScheduler({ _class_name: 'DDIMScheduler', ...SD, timestep_spacing: 'linspace', clip_sample: false });
    const plan = ddim.timesteps(4, 0.5);
    expect([plan, ddim.landings(plan, 4)]).toEqual([[333, 0], [83, null]]);
    // x_prev = √ᾱ_416·x0 + √(1−ᾱ_416)·ε from t = 666 (numpy, float32 ᾱ), not ᾱ_333's [0.98291, −2.69208, 4.80315].
    const x = Float32Array.from([0.5, -1, 2]);
    const eps = Float32Array.from([0.1, 0.3, -0.2]);
    expectClose(ddim.advance(ddim.denoise(eps, x, 666), x, 666, 416, eps), [0.8675771355628967, -2.2693660259246826, 4.111362457275391], 5);
  });

  it('clips x0 when clip_sample (DDIMScheduler’s default)', () => {
    const ddim = createScheduler({ _class_name: 'DDIMScheduler', ...SD });
    expect(ddim.config.clip_sample).toBe(true);
    expect(Math.max(...ddim.denoise(Float32Array.from([-5]), Float32Array.from([3]), 501))).toBe(1);
  });
});

describe('createScheduler', () => {
  it('picks the class named in scheduler_config.json, or the override', () => {
    const names = (cls: string, override?: Scheduler['name']) => createScheduler({ _class_name: cls, ...SD }, override).name;
    expect(names('LCMScheduler')).toBe('lcm');
    expect(names('DDIMScheduler')).toBe('ddim');
    expect(names('EulerDiscreteScheduler')).toBe('euler');
    expect(names('EulerAncestralDiscreteScheduler')).toBe('euler-ancestral');
    expect(names('LCMScheduler', 'ddim')).toBe('ddim');
  });

  it('fills in the class’s own defaults for fields the file leaves out', () => {
    const euler = createScheduler({ _class_name: 'EulerDiscreteScheduler' });
    expect(euler.config.timestep_spacing).toBe('linspace');
    expect(euler.config.beta_schedule).toBe('linear');
    expect(createScheduler({ _class_name: 'DDIMScheduler' }).config.timestep_spacing).toBe('leading');
  });

  it('refuses what it does not implement with one sentence naming it', () => {
    expect(() => createScheduler({ _class_name: 'HeunDiscreteScheduler' })).toThrow('scheduler_config.json: HeunDiscreteScheduler is not supported (set SCHEDULER to one of euler, euler-ancestral, lcm, ddim)');
    expect(() => createScheduler({ _class_name: 'EulerDiscreteScheduler', use_karras_sigmas: true })).toThrow(/Karras/);
    expect(() => createScheduler({ _class_name: 'DDIMScheduler', thresholding: true })).toThrow(/thresholding/);
  });
});
