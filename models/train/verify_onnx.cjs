// Checks the exported shapes-ldm ONNX files with onnxruntime-node: dynamic batch / h / w (odd
// and non-square latents too), per-sample timesteps, the UNet's ControlNet residual inputs (full
// shape and broadcast [1, C, 1, 1] zeros), the ControlNet's outputs feeding them, the VAE's
// factor, and a 4-step LCM 512x512 timing.
// Usage: node models/train/verify_onnx.cjs [models/shapes-ldm]   (from the repository root)
const ort = require("onnxruntime-node");
const path = require("path");
const fs = require("fs");
const dir = process.argv[2] || path.join(__dirname, "..", "shapes-ldm");

function randn(n, seed) {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}
const maxAbsDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const json = (p) => JSON.parse(fs.readFileSync(path.join(dir, p), "utf8"));

(async () => {
  const opt = { intraOpNumThreads: 2 };
  const open = (p) => ort.InferenceSession.create(path.join(dir, p, "model.onnx"), opt);
  const [te, unet, enc, dec] = await Promise.all(["text_encoder", "unet", "vae_encoder", "vae_decoder"].map(open));
  const cnet = fs.existsSync(path.join(dir, "controlnet/model.onnx")) ? await open("controlnet") : null;
  const ref = JSON.parse(fs.readFileSync(path.join(__dirname, "tokenizer_reference.json"), "utf8"));
  const D = json("text_encoder/config.json").hidden_size;
  const vae = json("vae_decoder/config.json");
  const C = vae.latent_channels;
  const F = vae.downsample_factor;
  const residual = json("unet/config.json").controlnet_residuals;
  let ok = true;
  const check = (cond, msg) => { console.log((cond ? "ok   " : "FAIL ") + msg); ok = ok && cond; };

  for (const B of [1, 3]) {
    const ids = new BigInt64Array(B * 77);
    for (let b = 0; b < B; b++) ref[b % ref.length].ids.forEach((v, i) => (ids[b * 77 + i] = BigInt(v)));
    const r = await te.run({ input_ids: new ort.Tensor("int64", ids, [B, 77]) });
    check(r.last_hidden_state.dims.join() === [B, 77, D].join(), `text_encoder batch ${B} -> ${r.last_hidden_state.dims}`);
  }
  const ids1 = new BigInt64Array(77);
  ref[0].ids.forEach((v, i) => (ids1[i] = BigInt(v)));
  const ctx1 = (await te.run({ input_ids: new ort.Tensor("int64", ids1, [1, 77]) })).last_hidden_state.data;
  const contexts = (B) => {
    const ctx = new Float32Array(B * 77 * D);
    for (let b = 0; b < B; b++) ctx.set(ctx1, b * 77 * D);
    return new ort.Tensor("float32", ctx, [B, 77, D]);
  };
  // Zero residuals that broadcast: [1, C, 1, 1] per input.
  const zeros = Object.fromEntries(
    [...residual.down, residual.mid].map((n, i) => [n, new ort.Tensor("float32", new Float32Array(residual.channels[i]), [1, residual.channels[i], 1, 1])]));

  for (const [B, h, w] of [[1, 4, 4], [2, 8, 8], [2, 6, 10], [1, 5, 7], [2, 32, 32], [1, 13, 32], [1, 64, 64]]) {
    const x = randn(B * C * h * w, 7);
    const ts = BigInt64Array.from({ length: B }, (_, i) => BigInt([999, 259, 499, 759][i % 4]));
    const feeds = { sample: new ort.Tensor("float32", x, [B, C, h, w]), timestep: new ort.Tensor("int64", ts, [B]), encoder_hidden_states: contexts(B), ...zeros };
    const t0 = Date.now();
    const r = await unet.run(feeds);
    check(r.out_sample.dims.join() === [B, C, h, w].join() && r.out_sample.data.every(Number.isFinite),
      `unet [${B},${C},${h},${w}] -> ${r.out_sample.dims} (${Date.now() - t0} ms)`);
    if (B === 2) {
      // per-sample timesteps: row 1 of the batch must equal a batch-1 run with its own timestep
      const n = C * h * w;
      const r1 = await unet.run({ ...feeds, sample: new ort.Tensor("float32", x.slice(n), [1, C, h, w]), timestep: new ort.Tensor("int64", ts.slice(1), [1]), encoder_hidden_states: contexts(1) });
      const d = maxAbsDiff(r.out_sample.data.slice(n), r1.out_sample.data);
      check(d < 1e-3, `unet per-sample timestep row 1 vs single run: max diff ${d.toExponential(2)}`);
    }
    if (cnet && B === 2) {
      // ControlNet residuals fed to the UNet; full-shape zeros equal the broadcast zeros.
      const cond = new ort.Tensor("float32", Float32Array.from(randn(B * 3 * F * h * F * w, 9), (v) => (v > 1 ? 1 : 0)), [B, 3, F * h, F * w]);
      const res = await cnet.run({ sample: feeds.sample, timestep: feeds.timestep, encoder_hidden_states: feeds.encoder_hidden_states, controlnet_cond: cond });
      const names = Object.keys(res);
      check(names.length === residual.down.length + 1, `controlnet [${B},3,${F * h},${F * w}] -> ${names.length} residuals (${names[0]}: ${res[names[0]].dims}, ${names[names.length - 1]}: ${res[names[names.length - 1]].dims})`);
      const feedsOf = (pick) => ({ ...feeds, ...Object.fromEntries([...residual.down, residual.mid].map((n, i) => [n, pick(res[names[i]])])) });
      const controlled = await unet.run(feedsOf((t) => t));
      check(controlled.out_sample.data.every(Number.isFinite), `unet with the controlnet's residuals -> ${controlled.out_sample.dims}`);
      const full = await unet.run(feedsOf((t) => new ort.Tensor("float32", new Float32Array(t.data.length), t.dims)));
      const d = maxAbsDiff(full.out_sample.data, r.out_sample.data);
      check(d < 1e-5, `unet with full-shape zero residuals = broadcast zeros: max diff ${d.toExponential(2)}`);
    }
  }
  for (const [B, H, W] of [[1, 64, 64], [2, 128, 96], [1, 80, 112], [1, 512, 512]]) {
    const r = await enc.run({ sample: new ort.Tensor("float32", randn(B * 3 * H * W, 3), [B, 3, H, W]) });
    check(r.latent_sample.dims.join() === [B, C, H / F, W / F].join(), `vae_encoder [${B},3,${H},${W}] -> ${r.latent_sample.dims}`);
  }
  for (const [B, h, w] of [[1, 8, 8], [2, 16, 12], [1, 32, 32], [1, 5, 7]]) {
    const r = await dec.run({ latent_sample: new ort.Tensor("float32", randn(B * C * h * w, 5), [B, C, h, w]) });
    check(r.sample.dims.join() === [B, 3, F * h, F * w].join(), `vae_decoder [${B},${C},${h},${w}] -> ${r.sample.dims}`);
  }
  // 4-step LCM, 512x512, guidance 1 (the API's defaults), timing
  {
    const t0 = Date.now();
    const betas = Array.from({ length: 1000 }, (_, i) => (Math.sqrt(0.00085) + (Math.sqrt(0.012) - Math.sqrt(0.00085)) * i / 999) ** 2);
    const acp = []; betas.reduce((p, b, i) => (acp[i] = p * (1 - b)), 1);
    const h = 512 / F;
    const n = C * h * h;
    let x = randn(n, 11);
    const steps = [999, 759, 499, 259];
    for (let k = 0; k < 4; k++) {
      const t = steps[k];
      const e = (await unet.run({ sample: new ort.Tensor("float32", x, [1, C, h, h]), timestep: new ort.Tensor("int64", BigInt64Array.from([BigInt(t)]), [1]), encoder_hidden_states: contexts(1), ...zeros })).out_sample.data;
      const noise = randn(n, 100 + k);
      const a = acp[t], ap = k < 3 ? acp[steps[k + 1]] : 1;
      const nx = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const x0 = (x[i] - Math.sqrt(1 - a) * e[i]) / Math.sqrt(a);
        nx[i] = k < 3 ? Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * noise[i] : x0 / vae.scaling_factor;
      }
      x = nx;
    }
    const img = (await dec.run({ latent_sample: new ort.Tensor("float32", x, [1, C, h, h]) })).sample;
    console.log(`4-step LCM 512x512, guidance 1 (2 threads): ${Date.now() - t0} ms; image dims ${img.dims}`);
  }
  console.log(ok ? "ALL OK" : "SOME CHECKS FAILED");
  process.exit(ok ? 0 : 1);
})();
