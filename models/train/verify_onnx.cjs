// Checks the exported shapes-ldm ONNX files with onnxruntime-node: dynamic batch / h / w,
// per-sample timesteps, decoder locality, and a 4-step LCM 256x256 timing.
// Usage: NODE_PATH=<dir with onnxruntime-node> node models/train/verify_onnx.cjs [models/shapes-ldm]
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

(async () => {
  const opt = { intraOpNumThreads: 2 };
  const te = await ort.InferenceSession.create(path.join(dir, "text_encoder/model.onnx"), opt);
  const unet = await ort.InferenceSession.create(path.join(dir, "unet/model.onnx"), opt);
  const enc = await ort.InferenceSession.create(path.join(dir, "vae_encoder/model.onnx"), opt);
  const dec = await ort.InferenceSession.create(path.join(dir, "vae_decoder/model.onnx"), opt);
  const ref = JSON.parse(fs.readFileSync(path.join(__dirname, "tokenizer_reference.json"), "utf8"));
  const D = JSON.parse(fs.readFileSync(path.join(dir, "text_encoder/config.json"), "utf8")).hidden_size;
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

  for (const [B, h, w] of [[1, 8, 8], [2, 16, 16], [2, 12, 20], [1, 4, 4], [2, 32, 32], [1, 64, 64], [1, 24, 40]]) {
    const ctx = new Float32Array(B * 77 * D);
    for (let b = 0; b < B; b++) ctx.set(ctx1, b * 77 * D);
    const x = randn(B * 4 * h * w, 7);
    const ts = BigInt64Array.from({ length: B }, (_, i) => BigInt([999, 259, 499, 759][i % 4]));
    const t0 = Date.now();
    const r = await unet.run({
      sample: new ort.Tensor("float32", x, [B, 4, h, w]),
      timestep: new ort.Tensor("int64", ts, [B]),
      encoder_hidden_states: new ort.Tensor("float32", ctx, [B, 77, D]),
    });
    const dt = Date.now() - t0;
    check(r.out_sample.dims.join() === [B, 4, h, w].join() && r.out_sample.data.every(Number.isFinite),
      `unet [${B},4,${h},${w}] -> ${r.out_sample.dims} (${dt} ms)`);
    if (B === 2) {
      // per-sample timesteps: row 1 of the batch must equal a batch-1 run with its own timestep
      const n = 4 * h * w;
      const r1 = await unet.run({
        sample: new ort.Tensor("float32", x.slice(n), [1, 4, h, w]),
        timestep: new ort.Tensor("int64", BigInt64Array.from([ts[1]]), [1]),
        encoder_hidden_states: new ort.Tensor("float32", ctx1, [1, 77, D]),
      });
      const d = maxAbsDiff(r.out_sample.data.slice(n), r1.out_sample.data);
      check(d < 1e-3, `unet per-sample timestep row 1 vs single run: max diff ${d.toExponential(2)}`);
    }
  }
  for (const [B, H, W] of [[1, 64, 64], [2, 128, 96], [1, 32, 32], [1, 256, 256]]) {
    const r = await enc.run({ sample: new ort.Tensor("float32", randn(B * 3 * H * W, 3), [B, 3, H, W]) });
    check(r.latent_sample.dims.join() === [B, 4, H / 8, W / 8].join(), `vae_encoder [${B},3,${H},${W}] -> ${r.latent_sample.dims}`);
  }
  for (const [B, h, w] of [[1, 8, 8], [2, 16, 12], [1, 64, 64], [1, 5, 7]]) {
    const r = await dec.run({ latent_sample: new ort.Tensor("float32", randn(B * 4 * h * w, 5), [B, 4, h, w]) });
    check(r.sample.dims.join() === [B, 3, 8 * h, 8 * w].join(), `vae_decoder [${B},4,${h},${w}] -> ${r.sample.dims}`);
  }
  // 4-step LCM, 256x256, CFG (batch 2), timing
  {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "vae_decoder/config.json"), "utf8"));
    const idsU = new BigInt64Array(2 * 77);
    ref[3].ids.forEach((v, i) => (idsU[i] = BigInt(v)));
    ref[0].ids.forEach((v, i) => (idsU[77 + i] = BigInt(v)));
    const t0 = Date.now();
    const ctx = (await te.run({ input_ids: new ort.Tensor("int64", idsU, [2, 77]) })).last_hidden_state;
    const betas = Array.from({ length: 1000 }, (_, i) => (Math.sqrt(0.00085) + (Math.sqrt(0.012) - Math.sqrt(0.00085)) * i / 999) ** 2);
    const acp = []; betas.reduce((p, b, i) => (acp[i] = p * (1 - b)), 1);
    const n = 4 * 32 * 32;
    let x = randn(n, 11);
    const steps = [999, 759, 499, 259];
    for (let k = 0; k < 4; k++) {
      const t = steps[k];
      const xx = new Float32Array(2 * n); xx.set(x); xx.set(x, n);
      const e = (await unet.run({
        sample: new ort.Tensor("float32", xx, [2, 4, 32, 32]),
        timestep: new ort.Tensor("int64", BigInt64Array.from([BigInt(t), BigInt(t)]), [2]),
        encoder_hidden_states: ctx,
      })).out_sample.data;
      const noise = randn(n, 100 + k);
      const a = acp[t], ap = k < 3 ? acp[steps[k + 1]] : 1;
      const nx = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const eps = e[i] + 2.0 * (e[n + i] - e[i]);
        const x0 = (x[i] - Math.sqrt(1 - a) * eps) / Math.sqrt(a);
        nx[i] = k < 3 ? Math.sqrt(ap) * x0 + Math.sqrt(1 - ap) * noise[i] : x0 / cfg.scaling_factor;
      }
      x = nx;
    }
    const img = (await dec.run({ latent_sample: new ort.Tensor("float32", x, [1, 4, 32, 32]) })).sample;
    const dt = Date.now() - t0;
    console.log(`4-step LCM 256x256 with CFG (2 threads): ${dt} ms; image dims ${img.dims}`);
  }
  console.log(ok ? "ALL OK" : "SOME CHECKS FAILED");
  process.exit(ok ? 0 : 1);
})();
