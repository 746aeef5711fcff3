#!/usr/bin/env python3
"""Train and export the bundled `shapes-ldm` latent diffusion model.

One reproducible run (fixed seeds, fixed step counts):
  1. generate a synthetic captioned "coloured shapes" dataset on the fly,
  2. train a small deterministic autoencoder (8x down/up-sampling, 4 latent channels),
  3. train a text encoder + text-conditioned UNet in the autoencoder's latent space,
  4. export everything as ONNX in the Hugging Face Optimum Stable-Diffusion folder layout,
  5. evaluate with a 4-step LCM sampler on held-out captions and write samples.png.

Usage (from the repository root, see models/shapes-ldm/README.md):
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread \
        /usr/bin/python3 models/train/train_shapes_ldm.py

Options: --untrained (export randomly initialised weights, seconds),
         --quick (tiny step counts, smoke test), --out DIR, --work DIR.
Work files (checkpoints, log) go to models/train/.work/ (git-ignored).

Requires Debian's python3-torch (1.13), python3-onnx, python3-numpy, python3-pil and an
optimized BLAS (libopenblas0-pthread); see check_blas().
"""
import argparse
import json
import math
import os
import re
import sys
import time

import numpy as np
import onnx.numpy_helper  # noqa: F401  (used in check_onnx)
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "shapes-ldm"))
DEFAULT_WORK = os.path.join(HERE, ".work")

# --------------------------------------------------------------------------------------
# Step counts (fixed; NOT time budgets).  Tuned for ~60 min on a 2-core x86 box.
# --------------------------------------------------------------------------------------
AE_STEPS = 2500
AE_BATCH = 32
AE_CROP = 64
UNET_STEPS = 2000
# The UNet learning-rate schedule (warm-up + cosine to 10%) is defined over this many steps,
# independent of UNET_STEPS, so a run stopped at step N equals a run with UNET_STEPS = N.
UNET_LR_HORIZON = 2000
SEED = 1234
N_THREADS = 2

# --------------------------------------------------------------------------------------
# Data: palette, vocabulary, captions
# --------------------------------------------------------------------------------------
COLORS = {
    "red": (220, 35, 35),
    "green": (35, 165, 60),
    "blue": (40, 80, 225),
    "yellow": (245, 215, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "orange": (245, 135, 25),
    "purple": (135, 55, 185),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle"]
WORDS = ["a", "and", "on", "background"] + COLOR_NAMES + SHAPES
# (shape colour, shape, background colour) triples never seen in training.
HELD_OUT = [
    ("red", "triangle", "green"),
    ("green", "circle", "purple"),
    ("blue", "square", "yellow"),
    ("yellow", "triangle", "black"),
    ("white", "circle", "red"),
    ("black", "square", "white"),
    ("orange", "circle", "blue"),
    ("purple", "triangle", "orange"),
    ("red", "square", "white"),
    ("green", "triangle", "black"),
    ("blue", "circle", "orange"),
    ("yellow", "square", "purple"),
]
HELD_OUT_SET = set(HELD_OUT)
P_NO_SHAPE, P_ONE_SHAPE = 0.15, 0.50  # rest: two shapes
P_CAPTION_DROPOUT = 0.10


def caption_of(bg, shapes):
    if not shapes:
        return f"a {bg} background"
    parts = [f"a {c} {s}" for c, s in shapes]
    return " and ".join(parts) + f" on a {bg} background"


def sample_scene(rng, allow_held_out=False):
    """Returns (bg colour, [(colour, shape), ...])."""
    while True:
        bg = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        u = rng.random()
        n = 0 if u < P_NO_SHAPE else (1 if u < P_NO_SHAPE + P_ONE_SHAPE else 2)
        shapes = []
        for _ in range(n):
            choices = [c for c in COLOR_NAMES if c != bg]
            shapes.append((choices[rng.integers(len(choices))], SHAPES[rng.integers(len(SHAPES))]))
        if allow_held_out or not any((c, s, bg) in HELD_OUT_SET for c, s in shapes):
            return bg, shapes


def render_batch(scenes, H, W, rng):
    """Draw scenes (list of (bg, shapes)) into a float tensor [B,3,H,W] in [-1,1].

    Shapes are anti-aliased via a signed distance; sizes are relative to min(H, W).
    """
    B = len(scenes)
    m = min(H, W)
    ys = torch.arange(H, dtype=torch.float32).view(1, H, 1) + 0.5
    xs = torch.arange(W, dtype=torch.float32).view(1, 1, W) + 0.5
    pal = {k: torch.tensor(v, dtype=torch.float32) / 127.5 - 1.0 for k, v in COLORS.items()}
    img = torch.empty(B, 3, H, W)
    for i, (bg, shapes) in enumerate(scenes):
        img[i] = pal[bg].view(3, 1, 1)
    # geometry per slot
    for slot in range(2):
        idx = [i for i, (_, sh) in enumerate(scenes) if len(sh) > slot]
        if not idx:
            continue
        n = len(idx)
        one = np.array([len(scenes[i][1]) == 1 for i in idx])
        r = np.where(one, rng.uniform(0.13, 0.30, n), rng.uniform(0.10, 0.20, n)) * m
        cx = rng.uniform(r, W - r)
        cy = rng.uniform(r, H - r)
        if slot == 1:  # keep the second shape mostly away from the first
            for j, i in enumerate(idx):
                px, py, pr = prev[i]
                for _ in range(20):
                    if math.hypot(cx[j] - px, cy[j] - py) > 0.9 * (r[j] + pr):
                        break
                    cx[j] = rng.uniform(r[j], W - r[j])
                    cy[j] = rng.uniform(r[j], H - r[j])
        else:
            prev = {i: (cx[j], cy[j], r[j]) for j, i in enumerate(idx)}
        t = lambda a: torch.tensor(a, dtype=torch.float32).view(n, 1, 1)
        dx, dy, rr = xs - t(cx), ys - t(cy), t(r)
        kinds = [scenes[i][1][slot][1] for i in idx]
        d_circle = torch.sqrt(dx * dx + dy * dy) - rr
        d_square = torch.maximum(dx.abs(), dy.abs()) - 0.85 * rr
        # equilateral triangle, apex up, circumradius 1.25 r (image y grows downwards)
        ty = dy - 0.25 * rr
        d_tri = torch.maximum(ty, torch.maximum(0.866 * dx - 0.5 * ty, -0.866 * dx - 0.5 * ty)) - 0.625 * rr
        sel = torch.tensor([SHAPES.index(k) for k in kinds]).view(n, 1, 1)
        d = torch.where(sel == 0, d_circle, torch.where(sel == 1, d_square, d_tri))
        alpha = (0.5 - d).clamp(0, 1).unsqueeze(1)
        col = torch.stack([pal[scenes[i][1][slot][0]] for i in idx]).view(n, 3, 1, 1)
        ii = torch.tensor(idx)
        img[ii] = img[ii] * (1 - alpha) + col * alpha
    return img


# --------------------------------------------------------------------------------------
# CLIP-style byte-level BPE tokenizer (tiny vocabulary)
# --------------------------------------------------------------------------------------
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LEN = 77


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class ClipBPE:
    PAT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-zA-Z]+|[0-9]|[^\sa-zA-Z0-9]+")

    def __init__(self, merges, vocab):
        self.byte_encoder = bytes_to_unicode()
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.vocab = vocab
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(word[i], word[i + 1]) for i in range(len(word) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    new.append(word[i] + word[i + 1])
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        self.cache[token] = word
        return word

    def tokenize(self, text):
        text = " ".join(text.split()).strip().lower()  # CLIP: whitespace_clean + lower
        out = []
        for tok in self.PAT.findall(text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            out.extend(self.bpe(tok))
        return out

    def encode(self, text):
        ids = [self.vocab[t] for t in self.tokenize(text)][: MAX_LEN - 2]
        ids = [self.vocab[BOS]] + ids + [self.vocab[EOS]]
        return ids + [self.vocab[EOS]] * (MAX_LEN - len(ids))


def build_tokenizer(words):
    base = list(bytes_to_unicode().values())
    vocab_list = base + [b + "</w>" for b in base]
    merges = []
    for w in words:
        # add merges left-to-right until `w` encodes as the single token `w</w>` under
        # standard BPE with the merges so far (new merges get the highest rank, so words
        # handled earlier keep encoding the same way).
        for _ in range(len(w) + 1):
            toks = ClipBPE(merges, None).bpe(w)
            if len(toks) == 1:
                break
            merges.append((toks[0], toks[1]))
        assert ClipBPE(merges, None).bpe(w) == [w + "</w>"], w
    for a, b in merges:
        vocab_list.append(a + b)
    vocab_list += [BOS, EOS]
    assert len(set(vocab_list)) == len(vocab_list)
    vocab = {t: i for i, t in enumerate(vocab_list)}
    tok = ClipBPE(merges, vocab)
    for w in words:
        assert tok.tokenize(w) == [w + "</w>"], w
    return tok, merges, vocab


def write_tokenizer(tok, merges, vocab, out_dir):
    d = os.path.join(out_dir, "tokenizer")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    special = {
        "bos_token": {"content": BOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "eos_token": {"content": EOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
        "pad_token": EOS,
        "unk_token": {"content": EOS, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
    }
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    cfg = {
        "add_prefix_space": False,
        "bos_token": special["bos_token"],
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": special["eos_token"],
        "errors": "replace",
        "model_max_length": MAX_LEN,
        "pad_token": EOS,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": special["unk_token"],
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    ref = []
    for text in ["a red circle and a blue square on a yellow background",
                 "a magenta circle",
                 "  A Green   TRIANGLE on a Black background ",
                 ""]:
        ref.append({"text": text, "ids": tok.encode(text)})
    with open(os.path.join(HERE, "tokenizer_reference.json"), "w") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(r) for r in ref) + "\n]\n")


# --------------------------------------------------------------------------------------
# Noise schedule (Stable Diffusion scaled_linear)
# --------------------------------------------------------------------------------------
def sd_alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    acp = torch.cumprod(1.0 - betas, 0)
    for t, v in [(999, 0.00466009), (499, 0.27766952), (259, 0.65897548)]:
        assert abs(acp[t].item() - v) < 1e-6, (t, acp[t].item())
    return acp.float()


LCM_TIMESTEPS = [999, 759, 499, 259]

# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def attention(q, k, v, heads):
    """q [B,N,C], k/v [B,M,C] -> [B,N,C]; reshapes keep B/N/M dynamic for ONNX."""
    B = q.shape[0]
    dh = q.shape[-1] // heads
    q = q.reshape(B, -1, heads, dh).transpose(1, 2)
    k = k.reshape(B, -1, heads, dh).transpose(1, 2)
    v = v.reshape(B, -1, heads, dh).transpose(1, 2)
    w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (dh ** -0.5), dim=-1)
    return torch.matmul(w, v).transpose(1, 2).reshape(B, -1, heads * dh)


class MHA(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(ctx_dim, dim, bias=False)
        self.v = nn.Linear(ctx_dim, dim, bias=False)
        self.o = nn.Linear(dim, dim)

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        return self.o(attention(self.q(x), self.k(ctx), self.v(ctx), self.heads))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, dim=128, layers=2, heads=4):
        super().__init__()
        self.dim = dim
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.randn(MAX_LEN, dim) * 0.02)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            self.blocks.append(nn.ModuleDict(dict(
                ln1=nn.LayerNorm(dim), attn=MHA(dim, dim, heads), ln2=nn.LayerNorm(dim),
                ff=nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)))))
        self.ln_f = nn.LayerNorm(dim)

    def forward(self, input_ids):
        x = self.tok(input_ids) + self.pos
        for b in self.blocks:
            x = x + b["attn"](b["ln1"](x))
            x = x + b["ff"](b["ln2"](x))
        return self.ln_f(x)


def gn(c):
    g = max(d for d in range(1, 33) if c % d == 0)
    return nn.GroupNorm(g, c)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, 2 * cout)
        self.n2, self.c2 = gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.t(temb).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        h = self.n2(h) * (1 + scale) + shift
        return self.skip(x) + self.c2(F.silu(h))


class SpatialTransformer(nn.Module):
    def __init__(self, c, ctx_dim, heads, self_attn=True, ff_mult=2):
        super().__init__()
        self.norm = gn(c)
        self.proj_in = nn.Conv2d(c, c, 1)
        self.self_attn = self_attn
        if self_attn:
            self.ln1, self.attn1 = nn.LayerNorm(c), MHA(c, c, heads)
        self.ln2, self.attn2 = nn.LayerNorm(c), MHA(c, ctx_dim, heads)
        self.ln3 = nn.LayerNorm(c)
        self.ff = nn.Sequential(nn.Linear(c, ff_mult * c), nn.GELU(), nn.Linear(ff_mult * c, c))
        self.proj_out = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, ctx):
        h = self.proj_in(self.norm(x))
        h = h.flatten(2).transpose(1, 2)  # [B, HW, C]
        if self.self_attn:
            h = h + self.attn1(self.ln1(h))
        h = h + self.attn2(self.ln2(h), ctx)
        h = h + self.ff(self.ln3(h))
        h = h.transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(h)


class UNet(nn.Module):
    """Predicts x0 internally; forward() returns epsilon (SD convention) computed as
    eps = (x_t - sqrt(acp[t]) * x0) / sqrt(1 - acp[t]) with the schedule as a constant."""

    def __init__(self, ctx_dim, ch=(64, 96, 128), attn=(False, True, True), heads=4, tdim=256, in_ch=4):
        super().__init__()
        self.ch, self.tdim = ch, tdim
        acp = sd_alphas_cumprod()
        self.register_buffer("sqrt_acp", acp.sqrt())
        self.register_buffer("sqrt_1m_acp", (1 - acp).sqrt())
        half = 64
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half).float() / half))
        self.t_mlp = nn.Sequential(nn.Linear(2 * half, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.pool_mlp = nn.Sequential(nn.Linear(ctx_dim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.conv_in = nn.Conv2d(in_ch, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        skips = [ch[0]]
        c = ch[0]
        for lvl, co in enumerate(ch):
            for _ in range(2):
                self.down.append(nn.ModuleList([ResBlock(c, co, tdim), SpatialTransformer(co, ctx_dim, heads, self_attn=attn[lvl])]))
                c = co
                skips.append(c)
            if lvl < len(ch) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, tdim)
        self.mid_attn = SpatialTransformer(c, ctx_dim, heads, self_attn=True)
        self.mid2 = ResBlock(c, c, tdim)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            co = ch[lvl]
            for i in range(3):
                st = SpatialTransformer(co, ctx_dim, heads, self_attn=attn[lvl]) if i != 1 else nn.Identity()
                self.up.append(nn.ModuleList([ResBlock(c + skips.pop(), co, tdim), st]))
                c = co
            if lvl > 0:
                self.up.append(nn.Conv2d(c, c, 3, padding=1))  # preceded by nearest x2
        self.norm_out = gn(c)
        self.conv_out = nn.Conv2d(c, in_ch, 3, padding=1)

    def predict_x0(self, x, timestep, ctx):
        t = timestep.clamp(0, 999)
        args = t.float().unsqueeze(1) * self.freqs.unsqueeze(0)
        temb = self.t_mlp(torch.cat([torch.sin(args), torch.cos(args)], dim=1))
        temb = temb + self.pool_mlp(ctx.mean(dim=1))
        temb = F.silu(temb)
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            if isinstance(m, nn.Conv2d):
                h = m(h)
            else:
                h = m[1](m[0](h, temb), ctx)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb), ctx), temb)
        for m in self.up:
            if isinstance(m, nn.Conv2d):
                h = m(F.interpolate(h, scale_factor=2.0, mode="nearest"))
            else:
                h = m[0](torch.cat([h, hs.pop()], dim=1), temb)
                h = h if isinstance(m[1], nn.Identity) else m[1](h, ctx)
        return self.conv_out(F.silu(self.norm_out(h)))

    def forward(self, sample, timestep, encoder_hidden_states):
        x0 = self.predict_x0(sample, timestep, encoder_hidden_states)
        t = timestep.clamp(0, 999)
        a = self.sqrt_acp[t].view(-1, 1, 1, 1)
        s = self.sqrt_1m_acp[t].view(-1, 1, 1, 1)
        return (sample - a * x0) / s


class Encoder(nn.Module):
    """Image [-1,1] -> latent (unscaled), 8x down. Plain convs (no norm/attention)."""

    def __init__(self, ch=(32, 64, 128), zc=4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ch[0], 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch[0], ch[1], 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch[1], ch[2], 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch[2], ch[2], 3, padding=1), nn.SiLU(),
            nn.Conv2d(ch[2], zc, 1))

    def forward(self, x):
        return self.net(x)


class LocalRes(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class Decoder(nn.Module):
    """Latent (unscaled) -> image, 8x up. Strictly local: no normalization or attention,
    so decoding overlapping latent crops gives the same pixels as decoding the whole."""

    def __init__(self, ch=(128, 64, 32, 32), zc=4):
        super().__init__()
        self.conv_in = nn.Conv2d(zc, ch[0], 3, padding=1)
        self.res0 = LocalRes(ch[0])
        self.up1 = nn.Conv2d(ch[0], ch[1], 3, padding=1)
        self.res1 = LocalRes(ch[1])
        self.up2 = nn.Conv2d(ch[1], ch[2], 3, padding=1)
        self.up3 = nn.Conv2d(ch[2], ch[3], 3, padding=1)
        self.conv_out = nn.Conv2d(ch[3], 3, 3, padding=1)

    def forward(self, z):
        h = self.res0(self.conv_in(z))
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")
        h = self.res1(F.silu(self.up1(up(F.silu(h)))))
        h = F.silu(self.up2(up(F.silu(h))))
        h = F.silu(self.up3(up(h)))
        return self.conv_out(h)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def check_blas(strict=True):
    torch.set_num_threads(N_THREADS)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t = time.time()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * 1024 ** 3 / (time.time() - t) / 1e9)
    log(f"matmul 1024x1024: {best:.0f} GFLOPS (torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"mkldnn={torch.backends.mkldnn.is_available()})")
    if best < 50:
        msg = ("\n" + "!" * 78 + "\n"
               f"!! torch matmul is SLOW ({best:.0f} GFLOPS): it is probably using the reference BLAS.\n"
               "!! Fix:  apt-get install libopenblas0-pthread   and then either\n"
               "!!   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread python3 ...   or\n"
               "!!   update-alternatives --set libblas.so.3-x86_64-linux-gnu "
               "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3\n"
               "!! Training would take many times longer. Pass --allow-slow-blas to go on anyway.\n"
               + "!" * 78)
        print(msg, file=sys.stderr, flush=True)
        if strict:
            sys.exit(2)
    return best


def count(m):
    return sum(p.numel() for p in m.parameters())


class EMA:
    def __init__(self, modules, decay):
        self.modules, self.decay = modules, decay
        self.shadow = [[p.detach().clone() for p in m.parameters()] for m in modules]

    @torch.no_grad()
    def update(self, step):
        d = min(self.decay, (1 + step) / (10 + step))
        for m, sh in zip(self.modules, self.shadow):
            for p, s in zip(m.parameters(), sh):
                s.mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def copy_to(self, modules):
        for m, sh in zip(modules, self.shadow):
            for p, s in zip(m.parameters(), sh):
                p.copy_(s)


def lr_at(step, total, base, warm=100):
    if step < warm:
        return base * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def train_autoencoder(enc, dec, steps, rng, work):
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    sizes = [64, 96, 128, 192, 256]
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, 1e-3)
        S = sizes[step % len(sizes)]
        scenes = [sample_scene(rng, allow_held_out=True) for _ in range(AE_BATCH)]
        img = render_batch(scenes, S, S, rng)
        oy, ox = (int(rng.integers(0, S - AE_CROP + 1) // 8 * 8) for _ in range(2))
        img = img[:, :, oy:oy + AE_CROP, ox:ox + AE_CROP]
        z = enc(img)
        rec = dec(z + 0.1 * torch.randn_like(z))
        l1 = (rec - img).abs().mean()
        mse = ((rec - img) ** 2).mean()
        gx = lambda t: t[..., :, 1:] - t[..., :, :-1]
        gy = lambda t: t[..., 1:, :] - t[..., :-1, :]
        grad = (gx(rec) - gx(img)).abs().mean() + (gy(rec) - gy(img)).abs().mean()
        reg = (z ** 2).mean()
        loss = l1 + mse + grad + 1e-3 * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"AE step {step}/{steps} loss {loss.item():.4f} l1 {l1.item():.4f} grad {grad.item():.4f} "
                f"z_std {z.std().item():.3f} | {el:.0f}s, eta {el / (step + 1) * (steps - step - 1):.0f}s")
    torch.save({"enc": enc.state_dict(), "dec": dec.state_dict()}, os.path.join(work, "ae.pt"))


@torch.no_grad()
def latent_scale(enc, rng):
    zs = []
    for _ in range(16):
        scenes = [sample_scene(rng, allow_held_out=True) for _ in range(16)]
        zs.append(enc(render_batch(scenes, 128, 128, rng)))
    z = torch.cat(zs)
    return z.mean().item(), z.std().item()


# UNet training mixture: (latent h, latent w, batch); cycled by step.
UNET_SCHEDULE = [(16, 16, 24), (8, 8, 32), (16, 16, 24), (8, 8, 32), (16, 16, 24),
                 (12, 20, 24), (16, 16, 24), (8, 8, 32), (16, 16, 24), (24, 24, 12),
                 (16, 16, 24), (8, 12, 32), (16, 16, 24), (32, 32, 6), (20, 12, 24)]


def encode_captions(tok, caps, cache):
    ids = []
    for c in caps:
        if c not in cache:
            cache[c] = tok.encode(c)
        ids.append(cache[c])
    return torch.tensor(ids, dtype=torch.long)


def train_unet(unet, text, enc, scale, tok, steps, rng, work):
    acp = sd_alphas_cumprod()
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=6e-4, weight_decay=0.01)
    ema = EMA([unet, text], 0.999)
    cache = {}
    lcm_t = torch.tensor(LCM_TIMESTEPS)
    t0 = time.time()
    run_loss = None
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, UNET_LR_HORIZON, 6e-4, warm=100)
        h, w, B = UNET_SCHEDULE[step % len(UNET_SCHEDULE)]
        scenes = [sample_scene(rng) for _ in range(B)]
        caps = [caption_of(*s) if rng.random() >= P_CAPTION_DROPOUT else "" for s in scenes]
        with torch.no_grad():
            x0 = enc(render_batch(scenes, 8 * h, 8 * w, rng)) * scale
        ids = encode_captions(tok, caps, cache)
        half = B // 2
        t = torch.cat([torch.from_numpy(rng.integers(0, 1000, B - half)),
                       lcm_t[torch.from_numpy(rng.integers(0, 4, half))]]).long()
        noise = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet.predict_x0(xt, t, text(ids))
        loss = ((pred - x0) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 100 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"UNet step {step}/{steps} loss {run_loss:.4f} | {el:.0f}s, eta {el / (step + 1) * (steps - step - 1):.0f}s")
        if (step + 1) % 500 == 0 or step == steps - 1:
            torch.save({"unet": unet.state_dict(), "text": text.state_dict(), "step": step + 1,
                        "ema": ema.shadow}, os.path.join(work, "unet.pt"))
    ema.copy_to([unet, text])


# --------------------------------------------------------------------------------------
# Sampling / evaluation
# --------------------------------------------------------------------------------------
@torch.no_grad()
def lcm_sample(unet, text, dec, scale, tok, captions, h, w, guidance, gen):
    acp = sd_alphas_cumprod()
    B = len(captions)
    cond = text(torch.tensor([tok.encode(c) for c in captions]))
    unc = text(torch.tensor([tok.encode("")] * B))
    x = torch.randn(B, 4, h, w, generator=gen)
    for i, t in enumerate(LCM_TIMESTEPS):
        tt = torch.full((2 * B,), t, dtype=torch.long)
        eps = unet(torch.cat([x, x]), tt, torch.cat([unc, cond]))
        eu, ec = eps.chunk(2)
        eps = eu + guidance * (ec - eu)
        a = acp[t]
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if i + 1 < len(LCM_TIMESTEPS):
            ap = acp[LCM_TIMESTEPS[i + 1]]
            x = ap.sqrt() * x0 + (1 - ap).sqrt() * torch.randn(x.shape, generator=gen)
        else:
            x = x0
    return dec(x / scale).clamp(-1, 1)


def judge(img):
    """img [3,H,W] in [-1,1] -> (bg colour, dominant non-bg colour or None)."""
    pal = torch.tensor([COLORS[c] for c in COLOR_NAMES], dtype=torch.float32) / 127.5 - 1
    px = img.permute(1, 2, 0).reshape(-1, 3)
    lab = torch.cdist(px, pal).argmin(1).view(img.shape[1], img.shape[2])
    border = torch.cat([lab[:2].flatten(), lab[-2:].flatten(), lab[:, :2].flatten(), lab[:, -2:].flatten()])
    bg = int(torch.bincount(border, minlength=len(COLOR_NAMES)).argmax())
    cnt = torch.bincount(lab.flatten(), minlength=len(COLOR_NAMES))
    cnt[bg] = 0
    fg = int(cnt.argmax()) if cnt.max() > 0.005 * lab.numel() else None
    return COLOR_NAMES[bg], (COLOR_NAMES[fg] if fg is not None else None)


def eval_captions():
    caps = []
    for c, s, bg in HELD_OUT:
        caps.append((f"a {c} {s} on a {bg} background", bg, c))
    return caps


@torch.no_grad()
def evaluate(unet, text, dec, scale, tok, guidance, n_per=8, size=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    bg_ok = fg_ok = n = 0
    for cap, bg, fg in eval_captions():
        imgs = lcm_sample(unet, text, dec, scale, tok, [cap] * n_per, size, size, guidance, gen)
        for im in imgs:
            b, f = judge(im)
            bg_ok += b == bg
            fg_ok += f == fg
            n += 1
    return bg_ok / n, fg_ok / n


@torch.no_grad()
def evaluate_two_shapes(unet, text, dec, scale, tok, guidance, n_per=4, seed=1):
    """Held-out triple as one of two shapes: bg correct, and dominant colour one of the two."""
    gen = torch.Generator().manual_seed(seed)
    bg_ok = fg_ok = n = 0
    for k, (c, s, bg) in enumerate(HELD_OUT):
        c2 = [x for x in COLOR_NAMES if x not in (bg, c)][k % 6]
        s2 = SHAPES[(SHAPES.index(s) + 1) % 3]
        cap = caption_of(bg, [(c, s), (c2, s2)])
        imgs = lcm_sample(unet, text, dec, scale, tok, [cap] * n_per, 16, 16, guidance, gen)
        for im in imgs:
            b, f = judge(im)
            bg_ok += b == bg
            fg_ok += f in (c, c2)
            n += 1
    return bg_ok / n, fg_ok / n


@torch.no_grad()
def save_grid(unet, text, dec, scale, tok, guidance, path, seed=0):
    from PIL import Image
    gen = torch.Generator().manual_seed(seed)
    caps = [c for c, _, _ in eval_captions()][:8]
    caps += ["a red circle and a blue square on a yellow background",
             "a white triangle on a black background", "a green background",
             "a purple square and a orange circle on a white background"]
    imgs = lcm_sample(unet, text, dec, scale, tok, caps, 16, 16, guidance, gen)
    big = lcm_sample(unet, text, dec, scale, tok, ["a yellow circle and a red triangle on a blue background",
                                                     "a orange square on a green background"], 32, 32, guidance, gen)
    to8 = lambda t: ((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    W = 6 * 130
    canvas = np.full((2 * 130 + 260, W, 3), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, 6)
        canvas[r * 130:r * 130 + 128, c * 130:c * 130 + 128] = to8(im)
    for i, im in enumerate(big):
        canvas[260:516, i * 260:i * 260 + 256] = to8(im)
    Image.fromarray(canvas).save(path, optimize=True)
    return caps, ["a yellow circle and a red triangle on a blue background (256x256)",
                  "a orange square on a green background (256x256)"]


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------
class EncWrap(nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.enc = enc

    def forward(self, sample):
        return self.enc(sample)


def receptive_field(dec):
    """Empirical decoder receptive field radius in latent pixels."""
    z = torch.zeros(1, 4, 32, 32, requires_grad=True)
    out = dec(z)
    out[0, :, 128, 128].sum().backward()
    nz = (z.grad.abs().sum((0, 1)) > 0).nonzero()
    return int(max((nz[:, 0] - 16).abs().max(), (nz[:, 1] - 16).abs().max()))


def export_all(out, text, unet, enc, dec, scale, shift, tok, merges, vocab, opset=17):
    for m in (text, unet, enc, dec):
        m.eval()
    D = text.dim
    os.makedirs(out, exist_ok=True)
    write_tokenizer(tok, merges, vocab, out)
    j = lambda p, o: open(os.path.join(out, p), "w").write(json.dumps(o, indent=2) + "\n")
    j("model_index.json", {
        "_class_name": "ORTStableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae_decoder": ["diffusers", "AutoencoderKL"],
        "vae_encoder": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "LCMScheduler"]})
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    j("scheduler/scheduler_config.json", {
        "_class_name": "LCMScheduler", "_diffusers_version": "0.30.0", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "original_inference_steps": 50,
        "prediction_type": "epsilon", "set_alpha_to_one": True, "steps_offset": 1, "timestep_spacing": "leading",
        "clip_sample": False, "timestep_scaling": 10.0, "rescale_betas_zero_snr": False, "thresholding": False})
    kw = dict(opset_version=opset, do_constant_folding=True)
    ids = torch.tensor([tok.encode("a red circle on a blue background"), tok.encode("")])
    os.makedirs(os.path.join(out, "text_encoder"), exist_ok=True)
    torch.onnx.export(text, (ids,), os.path.join(out, "text_encoder", "model.onnx"),
                      input_names=["input_ids"], output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}}, **kw)
    j("text_encoder/config.json", {
        "_class_name": "ShapesTextEncoder", "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "hidden_size": D, "num_hidden_layers": len(text.blocks), "num_attention_heads": 4,
        "intermediate_size": 4 * D, "max_position_embeddings": MAX_LEN, "vocab_size": len(vocab),
        "bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS],
        "attention": "bidirectional (no causal mask, no padding mask)"})
    os.makedirs(os.path.join(out, "unet"), exist_ok=True)
    with torch.no_grad():
        ctx = text(ids)
    x = torch.randn(2, 4, 16, 16)
    t = torch.tensor([999, 259])
    torch.onnx.export(unet, (x, t, ctx), os.path.join(out, "unet", "model.onnx"),
                      input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["out_sample"],
                      dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                    "encoder_hidden_states": {0: "batch"},
                                    "out_sample": {0: "batch", 2: "height", 3: "width"}}, **kw)
    j("unet/config.json", {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0", "in_channels": 4, "out_channels": 4,
        "sample_size": 16, "cross_attention_dim": D, "block_out_channels": list(unet.ch),
        "layers_per_block": 2, "attention_head_dim": 4, "prediction_type": "epsilon",
        "latent_size_multiple": 4, "parameterization": "x0 internally, converted to epsilon in-graph",
        "timestep_input": "int64 [batch], per-sample"})
    os.makedirs(os.path.join(out, "vae_encoder"), exist_ok=True)
    os.makedirs(os.path.join(out, "vae_decoder"), exist_ok=True)
    img = torch.randn(1, 3, 64, 64)
    torch.onnx.export(EncWrap(enc), (img,), os.path.join(out, "vae_encoder", "model.onnx"),
                      input_names=["sample"], output_names=["latent_sample"],
                      dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"},
                                    "latent_sample": {0: "batch", 2: "latent_height", 3: "latent_width"}}, **kw)
    torch.onnx.export(dec, (torch.randn(1, 4, 8, 8),), os.path.join(out, "vae_decoder", "model.onnx"),
                      input_names=["latent_sample"], output_names=["sample"],
                      dynamic_axes={"latent_sample": {0: "batch", 2: "latent_height", 3: "latent_width"},
                                    "sample": {0: "batch", 2: "height", 3: "width"}}, **kw)
    rf = receptive_field(dec)
    vae_cfg = {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0", "in_channels": 3, "out_channels": 3,
        "latent_channels": 4, "scaling_factor": round(scale, 5), "shift_factor": None,
        "latent_mean_measured": round(shift, 5), "block_out_channels": [32, 64, 128],
        "decoder_block_out_channels": [128, 64, 32, 32], "sample_size": 128, "downsample_factor": 8,
        "decoder_receptive_field_latent_radius": rf,
        "note": "deterministic autoencoder (no KL sampling); latent_sample is unscaled"}
    j("vae_encoder/config.json", vae_cfg)
    j("vae_decoder/config.json", vae_cfg)
    check_onnx(out)
    return rf


def check_onnx(out):
    import onnx
    for sub in ["text_encoder", "unet", "vae_encoder", "vae_decoder"]:
        p = os.path.join(out, sub, "model.onnx")
        m = onnx.load(p)
        onnx.checker.check_model(m)
        inits = {i.name: i for i in m.graph.initializer}
        consts = {}
        for n in m.graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        consts[n.output[0]] = onnx.numpy_helper.to_array(a.t)
        bad = []
        for n in m.graph.node:
            if n.op_type in ("Reshape", "Expand", "Tile", "ConstantOfShape") and len(n.input) > 1:
                s = n.input[1]
                v = onnx.numpy_helper.to_array(inits[s]) if s in inits else consts.get(s)
                if v is not None and sub != "text_encoder":
                    bad.append((n.op_type, v.tolist()))
            if n.op_type == "Resize" and len(n.input) > 3 and n.input[3]:
                bad.append(("Resize with sizes", n.input[3]))
        io = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in list(m.graph.input) + list(m.graph.output)]
        log(f"onnx {sub}: {os.path.getsize(p) / 1e6:.2f} MB, {io}; constant-shape reshapes: {bad[:8]}")


# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--work", default=DEFAULT_WORK)
    ap.add_argument("--untrained", action="store_true", help="export random weights only (for development)")
    ap.add_argument("--quick", action="store_true", help="tiny step counts (smoke test)")
    ap.add_argument("--skip-ae", action="store_true", help="reuse WORK/ae.pt")
    ap.add_argument("--eval-only", action="store_true", help="reuse WORK/ae.pt and WORK/unet.pt (EMA)")
    ap.add_argument("--allow-slow-blas", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(N_THREADS)
    check_blas(strict=not (args.allow_slow_blas or args.untrained))
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    tok, merges, vocab = build_tokenizer(WORDS)
    log(f"tokenizer: {len(vocab)} tokens, {len(merges)} merges")
    text = TextEncoder(len(vocab))
    unet = UNet(ctx_dim=text.dim)
    enc, dec = Encoder(), Decoder()
    log(f"params: text {count(text) / 1e6:.2f}M unet {count(unet) / 1e6:.2f}M enc {count(enc) / 1e6:.3f}M "
        f"dec {count(dec) / 1e6:.3f}M")
    ae_steps, unet_steps = (40, 40) if args.quick else (AE_STEPS, UNET_STEPS)
    t_start = time.time()
    if args.untrained:
        export_all(args.out, text, unet, enc, dec, 1.0, 0.0, tok, merges, vocab)
        log("exported UNTRAINED model to", args.out)
        return
    if args.skip_ae or args.eval_only:
        sd = torch.load(os.path.join(args.work, "ae.pt"))
        enc.load_state_dict(sd["enc"])
        dec.load_state_dict(sd["dec"])
    else:
        train_autoencoder(enc, dec, ae_steps, rng, args.work)
    t_ae = time.time() - t_start
    enc.eval()
    dec.eval()
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.requires_grad_(False)
    mean, std = latent_scale(enc, np.random.default_rng(SEED + 1))
    scale = 1.0 / std
    log(f"latent mean {mean:.4f} std {std:.4f} -> scaling_factor {scale:.5f}")
    if args.eval_only:
        sd = torch.load(os.path.join(args.work, "unet.pt"))
        for m, sh in zip([unet, text], sd["ema"]):
            with torch.no_grad():
                for p, s in zip(m.parameters(), sh):
                    p.copy_(s)
    else:
        train_unet(unet, text, enc, scale, tok, unet_steps, rng, args.work)
    t_train = time.time() - t_start
    unet.eval()
    text.eval()
    rf = export_all(args.out, text, unet, enc, dec, scale, mean, tok, merges, vocab)
    log(f"decoder receptive field radius: {rf} latent px")
    results = {"ae_minutes": round(t_ae / 60, 1), "total_train_minutes": round(t_train / 60, 1),
               "scaling_factor": round(scale, 5), "decoder_receptive_field_latent_radius": rf}
    for g in (1.0, 2.0, 3.0):
        bg, fg = evaluate(unet, text, dec, scale, tok, g)
        results[f"heldout_single_g{g}"] = {"background": round(bg, 3), "shape_colour": round(fg, 3)}
        log(f"held-out single-shape captions, 128x128, guidance {g}: background {bg:.1%}, shape colour {fg:.1%}")
    bg, fg = evaluate_two_shapes(unet, text, dec, scale, tok, 2.0)
    results["heldout_two_shapes_g2.0"] = {"background": round(bg, 3), "shape_colour_one_of_two": round(fg, 3)}
    log(f"held-out triple inside two-shape captions, guidance 2: background {bg:.1%}, dominant colour one of the two {fg:.1%}")
    caps, bigcaps = save_grid(unet, text, dec, scale, tok, 2.0, os.path.join(args.out, "samples.png"))
    results["samples_png_captions"] = caps + bigcaps
    # timing of a 4-step 256x256 generation with CFG (torch, this machine)
    with torch.no_grad():
        t = time.time()
        lcm_sample(unet, text, dec, scale, tok, ["a red circle on a blue background"], 32, 32, 2.0, torch.Generator().manual_seed(0))
        results["torch_4step_256px_seconds"] = round(time.time() - t, 2)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log("results:", json.dumps(results))
    log(f"done in {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
