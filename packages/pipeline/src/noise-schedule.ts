/**
 * The forward-process noise schedule shared by every scheduler, built from a diffusers
 * `scheduler_config.json` as diffusers builds it: betas, ᾱ (alphas_cumprod), and the noise level
 * σ = √((1−ᾱ)/ᾱ) of Karras-style (Euler) schedulers, interpolated between integer timesteps as
 * diffusers' `np.interp` does.
 *
 * The farm keeps every latent in the space the UNet takes as input (variance preserving:
 * x = √ᾱ·x0 + √(1−ᾱ)·ε). Euler-family schedulers step in σ-space (x_σ = x0 + σ·ε) and divide by
 * √(σ²+1) before each UNet call (`scale_model_input`); x = x_σ/√(σ²+1) is that same input.
 */

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

/** The fields of scheduler_config.json this code reads (others are ignored). */
export interface SchedulerConfig {
  _class_name?: string;
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
  set_alpha_to_one: boolean;
  clip_sample: boolean;
  clip_sample_range: number;
  /** LCM: the distilled schedule's length and the boundary-condition time scaling. */
  original_inference_steps: number;
  timestep_scaling: number;
  /** Options this code does not implement; a config that turns one on is refused. */
  trained_betas?: unknown;
  thresholding?: boolean;
  rescale_betas_zero_snr?: boolean;
  use_karras_sigmas?: boolean;
  use_exponential_sigmas?: boolean;
  use_beta_sigmas?: boolean;
  interpolation_type?: string;
  timestep_type?: string;
  final_sigmas_type?: string;
}

/** A config this code cannot serve; the message is one sentence naming the field. */
export class UnsupportedSchedulerError extends Error {
  override readonly name = 'UnsupportedSchedulerError';
}

/**
 * A config resolved for one scheduler class: the class's own defaults (diffusers' `__init__`
 * signature) under the file's values, as `SchedulerClass.from_config` does; then every option
 * this code does not implement is refused with a sentence naming it.
 */
export function resolveSchedulerConfig(raw: Partial<SchedulerConfig>, defaults: Readonly<SchedulerConfig>): SchedulerConfig {
  const config: SchedulerConfig = { ...defaults };
  for (const key of Object.keys(raw) as (keyof SchedulerConfig)[]) {
    if (raw[key] !== undefined && raw[key] !== null) (config as unknown as Record<string, unknown>)[key] = raw[key];
  }
  const refuse = (what: string) => {
    throw new UnsupportedSchedulerError(`scheduler_config.json: ${what} is not supported`);
  };
  if (config.beta_schedule !== 'scaled_linear' && config.beta_schedule !== 'linear') refuse(`beta_schedule "${config.beta_schedule}"`);
  if (!['epsilon', 'v_prediction', 'sample'].includes(config.prediction_type)) refuse(`prediction_type "${config.prediction_type}"`);
  if (!['leading', 'trailing', 'linspace'].includes(config.timestep_spacing)) refuse(`timestep_spacing "${config.timestep_spacing}"`);
  if (Array.isArray(raw.trained_betas)) refuse('trained_betas');
  if (raw.thresholding) refuse('thresholding: true');
  if (raw.rescale_betas_zero_snr) refuse('rescale_betas_zero_snr: true');
  if (raw.use_karras_sigmas || raw.use_exponential_sigmas || raw.use_beta_sigmas) refuse('a Karras/exponential/beta sigma schedule');
  if (raw.interpolation_type && raw.interpolation_type !== 'linear') refuse(`interpolation_type "${raw.interpolation_type}"`);
  if (raw.timestep_type && raw.timestep_type !== 'discrete') refuse(`timestep_type "${raw.timestep_type}"`);
  if (raw.final_sigmas_type && raw.final_sigmas_type !== 'zero') refuse(`final_sigmas_type "${raw.final_sigmas_type}"`);
  return config;
}

export class NoiseSchedule {
  /** ᾱ_t for t = 0 … T-1 (float32 values, as diffusers has them). */
  readonly alphasCumprod: Float64Array;
  /** σ_t = √((1−ᾱ_t)/ᾱ_t) for t = 0 … T-1 (float32, as diffusers' Euler schedulers have them). */
  readonly sigmas: Float64Array;
  /** ᾱ used after the last step (1 when set_alpha_to_one, else ᾱ_0, as in diffusers). */
  readonly finalAlphaCumprod: number;

  constructor(readonly config: SchedulerConfig) {
    // diffusers builds the table in float32 (torch.linspace, **2, cumprod); every operation is
    // rounded to float32 here. ᾱ matches diffusers' to 1.2e-6 relative (torch accumulates its
    // CPU cumprod in float64; accumulating so here would move the bundled model's images by a
    // level here and there, and they are kept exactly as they were).
    const f = Math.fround;
    const n = config.num_train_timesteps;
    const scaled = config.beta_schedule === 'scaled_linear';
    const start = f(scaled ? Math.sqrt(config.beta_start) : config.beta_start);
    const end = f(scaled ? Math.sqrt(config.beta_end) : config.beta_end);
    const step = n === 1 ? 0 : f(f(end - start) / (n - 1));
    this.alphasCumprod = new Float64Array(n);
    this.sigmas = new Float64Array(n);
    let prod = 1;
    for (let i = 0; i < n; i++) {
      // torch.linspace fills the second half backwards from `end`.
      const v = i < n / 2 ? f(start + f(step * i)) : f(end - f(step * (n - 1 - i)));
      const beta = scaled ? f(v * v) : v;
      prod = f(prod * f(1 - beta));
      const a = prod;
      this.alphasCumprod[i] = a;
      this.sigmas[i] = f(Math.sqrt(f(f(1 - a) / a)));
    }
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  /** σ at a timestep, linear between integer timesteps (np.interp), rounded to float32. */
  sigma(t: number): number {
    const last = this.sigmas.length - 1;
    if (t <= 0) return this.sigmas[0];
    if (t >= last) return this.sigmas[last];
    const i = Math.floor(t);
    const frac = t - i;
    return Math.fround(frac === 0 ? this.sigmas[i] : this.sigmas[i] + frac * (this.sigmas[i + 1] - this.sigmas[i]));
  }

  /** ᾱ at a timestep; null means "after the last step". Fractional timesteps go through σ. */
  alphaBar(t: number | null): number {
    if (t === null || t < 0) return this.finalAlphaCumprod;
    if (Number.isInteger(t)) return this.alphasCumprod[t];
    const s = this.sigma(t);
    return 1 / (1 + s * s);
  }

  /** Noise level √(1−ᾱ) — how much of a sample at t is noise. */
  noiseLevel(t: number | null): number {
    return Math.sqrt(1 - this.alphaBar(t));
  }
}
