/**
 * The forward-process noise schedule shared by every scheduler: betas and ᾱ (alphas_cumprod)
 * from a diffusers `scheduler_config.json`, as in diffusers' schedulers.
 */

export interface SchedulerConfig {
  _class_name?: string;
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'scaled_linear' | 'linear';
  prediction_type: 'epsilon' | 'sample' | 'v_prediction';
  set_alpha_to_one: boolean;
  steps_offset: number;
  original_inference_steps: number;
  timestep_scaling: number;
}

export const DEFAULT_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon',
  set_alpha_to_one: true,
  steps_offset: 1,
  original_inference_steps: 50,
  timestep_scaling: 10,
});

/** Fills in defaults and rejects schedules this code does not implement. */
export function resolveSchedulerConfig(raw: Partial<SchedulerConfig>): SchedulerConfig {
  const config = { ...DEFAULT_SCHEDULER_CONFIG, ...raw };
  if (config.beta_schedule !== 'scaled_linear' && config.beta_schedule !== 'linear') {
    throw new Error(`unsupported beta_schedule "${config.beta_schedule}"`);
  }
  if (config.prediction_type === 'v_prediction' || config.prediction_type === 'sample') {
    // The conversion is easy, but nothing here was tested with such a model.
    throw new Error(`unsupported prediction_type "${config.prediction_type}" (epsilon only)`);
  }
  return config;
}

export class NoiseSchedule {
  /** ᾱ_t for t = 0 … T-1 (float32 values, as diffusers has them). */
  readonly alphasCumprod: Float64Array;
  /** ᾱ used after the last step (1 when set_alpha_to_one, as in diffusers). */
  readonly finalAlphaCumprod: number;

  constructor(readonly config: SchedulerConfig) {
    // diffusers builds the table in float32 (torch.linspace, **2, cumprod); every operation is
    // rounded to float32 here too, so ᾱ matches its values to the last digit.
    const f = Math.fround;
    const n = config.num_train_timesteps;
    const scaled = config.beta_schedule === 'scaled_linear';
    const start = f(scaled ? Math.sqrt(config.beta_start) : config.beta_start);
    const end = f(scaled ? Math.sqrt(config.beta_end) : config.beta_end);
    const step = n === 1 ? 0 : f(f(end - start) / (n - 1));
    this.alphasCumprod = new Float64Array(n);
    let prod = 1;
    for (let i = 0; i < n; i++) {
      // torch.linspace fills the second half backwards from `end`.
      const v = i < n / 2 ? f(start + f(step * i)) : f(end - f(step * (n - 1 - i)));
      const beta = scaled ? f(v * v) : v;
      prod = f(prod * f(1 - beta));
      this.alphasCumprod[i] = prod;
    }
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0];
  }

  /** ᾱ at a timestep; null means "after the last step". */
  alphaBar(t: number | null): number {
    if (t === null || t < 0) return this.finalAlphaCumprod;
    return this.alphasCumprod[t];
  }

  /** Noise level σ = √(1-ᾱ) — how much of a sample at t is noise. */
  noiseLevel(t: number | null): number {
    return Math.sqrt(1 - this.alphaBar(t));
  }
}
