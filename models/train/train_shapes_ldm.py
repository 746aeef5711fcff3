#!/usr/bin/env python3
"""Train and export the bundled `shapes-ldm` latent diffusion model (and its ControlNet).

One reproducible run (fixed seeds, fixed step counts; every step's data is a pure function of
(seed, phase, step), so a run resumed from a checkpoint continues exactly):
  1. a synthetic captioned "coloured shapes" dataset, generated on the fly at canvas sizes from
     64 to 512 px (square and not), with its caption grammar (shape, colour, count, size words),
  2. a small deterministic autoencoder with a 16x spatial factor and 8 latent channels,
  3. a text encoder + a text-conditioned UNet in that latent space, trained at every canvas
     size (one 512 px image is a 32x32 latent), with self-attention at its two lower levels and
     the latent's size as an input, so one big shape stays one shape on any canvas,
  4. a ControlNet (a copy of the UNet's encoder half fed an edge map or a layout silhouette,
     zero-initialised 1x1 convolutions out) with the UNet frozen,
  5. ONNX export in the Hugging Face Optimum Stable-Diffusion folder layout, plus
     controlnet/model.onnx and a UNet that accepts its residuals,
  6. evaluation with the 4-step LCM sampler on held-out captions at 128, 256 and 512 px.

Usage (from the repository root; it runs at the lowest priority, nice 19, on two threads; see
models/shapes-ldm/README.md):
    nice -n 19 /usr/bin/python3 models/train/train_shapes_ldm.py

Options: --untrained (export random weights, seconds), --quick (tiny step counts, smoke test),
--pilot N (N UNet steps then an evaluation: per-step cost and quality trend),
--out DIR, --work DIR (default models/train/.work/: checkpoints, log, results.json; a run picks
up from the checkpoints it finds there), --eval-only, --threads N (default 2).

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
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "shapes-ldm"))
DEFAULT_WORK = os.path.join(HERE, ".work")

# --------------------------------------------------------------------------------------
# Step counts (fixed; NOT time budgets).
# --------------------------------------------------------------------------------------
# Autoencoder stages: (steps, peak learning rate, latent noise std, canvas sizes, what trains);
# the second sharpens small shapes (a 128 px canvas's shapes span 2-3 latent cells), the third
# trains the decoder alone (the latent space, which the UNet learns, stays as it is).
SMALL_CANVASES = [(64, 64), (96, 96), (128, 128), (128, 128), (192, 192), (256, 256), (160, 96), (512, 512)]
AE_STAGES = [
    (2500, 1e-3, 0.15, [(64, 64), (128, 128), (256, 256), (512, 512), (192, 320), (384, 256), (96, 160)], "all"),
    (1500, 3e-4, 0.08, SMALL_CANVASES, "all"),
    (1000, 2e-4, 0.04, SMALL_CANVASES, "decoder"),
]
AE_BATCH = 16
UNET_STEPS = 6000
# The UNet's learning-rate schedule (warm-up, cosine to 10%) is defined over this many steps,
# whatever UNET_STEPS is, so a run stopped at step N equals a run with UNET_STEPS = N.
UNET_LR_HORIZON = 6000
CONTROL_STEPS = 1500
SEED = 1234
VAE_FACTOR = 16
LATENT_CHANNELS = 8

# --------------------------------------------------------------------------------------
# Data: palette, vocabulary, caption grammar, scenes
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
PLURAL = {s: s + "s" for s in SHAPES}
SIZE_WORDS = ["small", "big"]
WORDS = ["a", "and", "on", "background", "two"] + SIZE_WORDS + COLOR_NAMES + SHAPES + list(PLURAL.values())
# (shape colour, shape, background colour) triples never seen in text-to-image training.
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
P_NO_SHAPE, P_ONE_SHAPE, P_TWO_SAME = 0.10, 0.50, 0.30  # the rest: two shapes; P_TWO_SAME of those "two Xs"
P_SIZE_WORD = 0.4  # half "small", half "big"
P_CAPTION_DROPOUT = 0.10
# Shape "radius" as a fraction of min(H, W), by size word, for one shape / for each of two.
RADIUS_ONE = {None: (0.15, 0.32), "small": (0.08, 0.13), "big": (0.35, 0.45)}
RADIUS_TWO = {None: (0.11, 0.19), "small": (0.07, 0.11), "big": (0.20, 0.23)}
GAP = 0.04  # least gap between two shapes' boxes, fraction of min(H, W)


class Scene:
    """A background colour and 0-2 shapes: items [(colour, shape, size word or None)]; `two`
    means the caption is "two <colour> <shape>s" (both items equal)."""

    def __init__(self, bg, items, two=False):
        self.bg, self.items, self.two = bg, items, two

    def caption(self):
        if not self.items:
            return f"a {self.bg} background"
        word = lambda size: f"{size} " if size else ""
        if self.two:
            c, s, size = self.items[0]
            return f"two {word(size)}{c} {PLURAL[s]} on a {self.bg} background"
        return " and ".join(f"a {word(size)}{c} {s}" for c, s, size in self.items) + f" on a {self.bg} background"


def sample_scene(rng, allow_held_out=False):
    while True:
        bg = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
        u = rng.random()
        n = 0 if u < P_NO_SHAPE else (1 if u < P_NO_SHAPE + P_ONE_SHAPE else 2)
        two = n == 2 and rng.random() < P_TWO_SAME
        choices = [c for c in COLOR_NAMES if c != bg]

        def item():
            size = SIZE_WORDS[rng.integers(2)] if rng.random() < P_SIZE_WORD else None
            return choices[rng.integers(len(choices))], SHAPES[rng.integers(len(SHAPES))], size

        items = [item() for _ in range(n)]
        if two:
            items = [items[0], items[0]]
        if allow_held_out or not any((c, s, bg) in HELD_OUT_SET for c, s, _ in items):
            return Scene(bg, items, two)


def shape_extent(shape, r):
    """Half-width, top and bottom of a shape's box around its centre (image y grows down)."""
    if shape == "circle":
        return r, r, r
    if shape == "square":
        return 0.85 * r, 0.85 * r, 0.85 * r
    return 1.0825 * r, r, 0.875 * r  # apex-up equilateral triangle


def place_scene(rng, scene, H, W):
    """Centres and radii [(cx, cy, r)] in pixels: inside the canvas, two shapes apart by GAP."""
    m = min(H, W)
    n = len(scene.items)
    if n == 0:
        return []
    table = RADIUS_ONE if n == 1 else RADIUS_TWO
    shrink = 1.0
    while True:
        out = []
        for c, s, size in scene.items:
            lo, hi = table[size]
            r = rng.uniform(lo, hi) * m * shrink
            hw, top, bottom = shape_extent(s, r)
            for _ in range(60):
                cx, cy = rng.uniform(hw, W - hw), rng.uniform(top, H - bottom)
                box = (cx - hw, cy - top, cx + hw, cy + bottom)
                if all(box[2] + GAP * m <= b[0] or b[2] + GAP * m <= box[0] or
                       box[3] + GAP * m <= b[1] or b[3] + GAP * m <= box[1] for _, b in out):
                    out.append(((cx, cy, r), box))
                    break
            else:
                break
        if len(out) == n:
            return [p for p, _ in out]
        shrink *= 0.95


def shape_sdf(shape, cx, cy, r, ys, xs):
    """Signed distance (pixels, negative inside) of a shape on the pixel-centre grid."""
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return torch.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return torch.maximum(dx.abs(), dy.abs()) - 0.85 * r
    ty = dy - 0.25 * r  # equilateral triangle, apex up, circumradius 1.25 r around (cx, cy + r/4)
    return torch.maximum(ty, torch.maximum(0.866 * dx - 0.5 * ty, -0.866 * dx - 0.5 * ty)) - 0.625 * r


PALETTE = {k: torch.tensor(v, dtype=torch.float32) / 127.5 - 1.0 for k, v in COLORS.items()}
CONTROL_TYPES = ["edges", "layout"]


def render(scenes, H, W, rng, control=None):
    """Images [B,3,H,W] in [-1,1] (anti-aliased shapes, later ones on top) and, when `control`
    lists a type per scene, control images [B,3,H,W] in [0,1]: "edges" white 2 px outlines on
    black, "layout" white filled silhouettes on black."""
    ys = torch.arange(H, dtype=torch.float32).view(H, 1) + 0.5
    xs = torch.arange(W, dtype=torch.float32).view(1, W) + 0.5
    img = torch.empty(len(scenes), 3, H, W)
    ctl = torch.zeros(len(scenes), 1, H, W) if control else None
    for i, sc in enumerate(scenes):
        img[i] = PALETTE[sc.bg].view(3, 1, 1)
        for (c, s, _), (cx, cy, r) in zip(sc.items, place_scene(rng, sc, H, W)):
            d = shape_sdf(s, cx, cy, r, ys, xs)
            alpha = (0.5 - d).clamp(0, 1)
            img[i] = img[i] * (1 - alpha) + PALETTE[c].view(3, 1, 1) * alpha
            if control:
                mark = (1.5 - d.abs()).clamp(0, 1) if control[i] == "edges" else alpha
                ctl[i, 0] = torch.maximum(ctl[i, 0], mark)
    return img, (ctl.expand(-1, 3, -1, -1).contiguous() if control else None)


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


def write_tokenizer(tok, merges, vocab, out_dir, reference_path):
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
                 "two big purple triangles on a white background",
                 "a magenta circle",
                 "  A Green   TRIANGLE on a Black background ",
                 ""]:
        ref.append({"text": text, "ids": tok.encode(text)})
    with open(reference_path, "w") as f:
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


def zero(module):
    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tdim):
        super().__init__()
        self.n1, self.c1 = gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, 2 * cout)
        self.n2, self.c2 = gn(cout), zero(nn.Conv2d(cout, cout, 3, padding=1))
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
        self.proj_out = zero(nn.Conv2d(c, c, 1))

    def forward(self, x, ctx):
        h = self.proj_in(self.norm(x))
        h = h.flatten(2).transpose(1, 2)  # [B, HW, C]
        if self.self_attn:
            h = h + self.attn1(self.ln1(h))
        h = h + self.attn2(self.ln2(h), ctx)
        h = h + self.ff(self.ln3(h))
        h = h.transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(h)


class Conditioning(nn.Module):
    """The timestep, the pooled text and the latent canvas size as one embedding [B, tdim]."""

    def __init__(self, ctx_dim, tdim):
        super().__init__()
        half = 64
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half).float() / half))
        self.t_mlp = nn.Sequential(nn.Linear(2 * half, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.pool_mlp = nn.Sequential(nn.Linear(ctx_dim, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.size_mlp = nn.Sequential(nn.Linear(2, tdim), nn.SiLU(), nn.Linear(tdim, tdim))

    def forward(self, x, timestep, ctx):
        args = timestep.clamp(0, 999).float().unsqueeze(1) * self.freqs.unsqueeze(0)
        temb = self.t_mlp(torch.cat([torch.sin(args), torch.cos(args)], dim=1))
        # log2 of the latent's height and width (traced as a Shape op: dynamic in ONNX), -1 at 4
        # cells (64 px) to 2 at 32 cells (512 px); larger canvases read as 512 px.
        hw = torch._shape_as_tensor(x)[2:4].float()
        size = (torch.log2(hw) - 3.0).clamp(-1.0, 2.0).unsqueeze(0)
        return F.silu(temb + self.pool_mlp(ctx.mean(dim=1)) + self.size_mlp(size))


def up_to(h, skip):
    """Nearest x2 upsampling cropped to the skip's size (latents of any size, odd ones too)."""
    h = F.interpolate(h, scale_factor=2.0, mode="nearest")
    return h[:, :, : skip.shape[2], : skip.shape[3]]


class Encoder(nn.Module):
    """The UNet's encoder half (also the ControlNet's trunk): conv_in, down levels, middle.
    Returns the skip tensors (the ControlNet convention's "down block" samples) and the middle."""

    def __init__(self, ctx_dim, ch, self_attn, heads, tdim, zc, layers):
        super().__init__()
        self.cond = Conditioning(ctx_dim, tdim)
        self.conv_in = nn.Conv2d(zc, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.skip_channels = [ch[0]]
        c = ch[0]
        for lvl, co in enumerate(ch):
            for _ in range(layers):
                self.down.append(nn.ModuleList([ResBlock(c, co, tdim), SpatialTransformer(co, ctx_dim, heads, self_attn=self_attn[lvl])]))
                c = co
                self.skip_channels.append(c)
            if lvl < len(ch) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                self.skip_channels.append(c)
        self.mid1 = ResBlock(c, c, tdim)
        self.mid_attn = SpatialTransformer(c, ctx_dim, heads, self_attn=True)
        self.mid2 = ResBlock(c, c, tdim)

    def forward(self, x, timestep, ctx, hint=None):
        temb = self.cond(x, timestep, ctx)
        h = self.conv_in(x)
        if hint is not None:
            h = h + hint
        hs = [h]
        for m in self.down:
            h = m(h) if isinstance(m, nn.Conv2d) else m[1](m[0](h, temb), ctx)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb), ctx), temb)
        return temb, hs, h


class UNet(nn.Module):
    """Predicts x0 internally; forward() returns epsilon (SD convention) computed as
    eps = (x_t - sqrt(acp[t]) * x0) / sqrt(1 - acp[t]) with the schedule as a constant.
    Optional ControlNet residuals are added to the skip tensors and the middle's output."""

    def __init__(self, ctx_dim, ch=(64, 96, 144), self_attn=(False, True, True), heads=4, tdim=192, zc=LATENT_CHANNELS, layers=1):
        super().__init__()
        self.ctx_dim, self.ch, self.zc, self.heads, self.tdim, self.self_attn = ctx_dim, ch, zc, heads, tdim, self_attn
        self.layers = layers
        acp = sd_alphas_cumprod()
        self.register_buffer("sqrt_acp", acp.sqrt())
        self.register_buffer("sqrt_1m_acp", (1 - acp).sqrt())
        self.encoder = Encoder(ctx_dim, ch, self_attn, heads, tdim, zc, layers)
        skips = list(self.encoder.skip_channels)
        c = ch[-1]
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            co = ch[lvl]
            for i in range(layers + 1):
                st = SpatialTransformer(co, ctx_dim, heads, self_attn=self_attn[lvl]) if i != 1 else nn.Identity()
                self.up.append(nn.ModuleList([ResBlock(c + skips.pop(), co, tdim), st]))
                c = co
            if lvl > 0:
                self.up.append(nn.Conv2d(c, c, 3, padding=1))  # preceded by nearest x2
        self.norm_out = gn(c)
        self.conv_out = nn.Conv2d(c, zc, 3, padding=1)

    def predict_x0(self, x, timestep, ctx, down_res=None, mid_res=None):
        temb, hs, h = self.encoder(x, timestep, ctx)
        if down_res is not None:
            hs = [s + r for s, r in zip(hs, down_res)]
            h = h + mid_res
        for m in self.up:
            if isinstance(m, nn.Conv2d):
                h = m(up_to(h, hs[-1]))
            else:
                h = m[0](torch.cat([h, hs.pop()], dim=1), temb)
                h = h if isinstance(m[1], nn.Identity) else m[1](h, ctx)
        return self.conv_out(F.silu(self.norm_out(h)))

    def eps(self, sample, timestep, x0):
        t = timestep.clamp(0, 999)
        return (sample - self.sqrt_acp[t].view(-1, 1, 1, 1) * x0) / self.sqrt_1m_acp[t].view(-1, 1, 1, 1)

    def forward(self, sample, timestep, encoder_hidden_states, *residuals):
        down = list(residuals[:-1]) if residuals else None
        mid = residuals[-1] if residuals else None
        return self.eps(sample, timestep, self.predict_x0(sample, timestep, encoder_hidden_states, down, mid))


class ControlNet(nn.Module):
    """ControlNet: a trainable copy of the UNet's encoder half; the control image (3 x H x W in
    [0, 1], H and W the image's pixels) enters through a small strided conv stack added after
    conv_in; each skip tensor and the middle leave through a zero-initialised 1x1 conv."""

    def __init__(self, unet):
        super().__init__()
        self.encoder = Encoder(unet.ctx_dim, unet.ch, unet.self_attn, unet.heads, unet.tdim, unet.zc, unet.layers)
        self.encoder.load_state_dict(unet.encoder.state_dict())
        layers, c = [], 3
        for co in (16, 32, 64, 128):  # 16x down, to the latent grid
            layers += [nn.Conv2d(c, co, 3, stride=2, padding=1), nn.SiLU()]
            c = co
        self.hint = nn.Sequential(*layers, zero(nn.Conv2d(c, unet.ch[0], 3, padding=1)))
        self.zero_convs = nn.ModuleList([zero(nn.Conv2d(c, c, 1)) for c in self.encoder.skip_channels])
        self.mid_out = zero(nn.Conv2d(unet.ch[-1], unet.ch[-1], 1))

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond):
        _, hs, mid = self.encoder(sample, timestep, encoder_hidden_states, self.hint(controlnet_cond))
        return tuple(zc(h) for zc, h in zip(self.zero_convs, hs)) + (self.mid_out(mid),)


class ImageEncoder(nn.Module):
    """Image [-1,1] -> latent (unscaled), 16x down. Plain convs (no norm/attention)."""

    def __init__(self, ch=(32, 64, 128, 192), zc=LATENT_CHANNELS):
        super().__init__()
        layers, c = [], 3
        for co in ch:
            layers += [nn.Conv2d(c, co, 3, stride=2, padding=1), nn.SiLU()]
            c = co
        self.net = nn.Sequential(*layers, nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, zc, 1))

    def forward(self, sample):
        return self.net(sample)


class LocalRes(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class Decoder(nn.Module):
    """Latent (unscaled) -> image, 16x up. Strictly local (no normalization or attention), so
    decoding overlapping latent crops gives the pixels of a whole decode; receptive field about
    3 latent cells. The last 2x is a depth-to-space of 12 channels."""

    def __init__(self, zc=LATENT_CHANNELS):
        super().__init__()
        self.conv_in = nn.Conv2d(zc, 192, 3, padding=1)
        self.c8 = nn.Conv2d(192, 128, 3, padding=1)
        self.res8 = LocalRes(128)
        self.c4 = nn.Conv2d(128, 64, 3, padding=1)
        self.c2 = nn.Conv2d(64, 32, 3, padding=1)
        self.out = nn.Conv2d(32, 12, 3, padding=1)

    def forward(self, latent_sample):
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")
        h = F.silu(self.conv_in(latent_sample))
        h = self.res8(F.silu(self.c8(up(h))))
        h = F.silu(self.c4(up(F.silu(h))))
        h = F.silu(self.c2(up(h)))
        return F.pixel_shuffle(self.out(h), 2)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def check_blas(strict=True):
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
        f"mkldnn={torch.backends.mkldnn.is_available()}, niceness {os.nice(0)})")
    if best < 5:
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


def load_ema(path, modules):
    """A checkpoint's EMA weights into `modules`."""
    ema = EMA(modules, 0)
    ema.shadow = torch.load(path)["ema"]
    ema.copy_to(modules)


def lr_at(step, total, base, warm=200):
    if step < warm:
        return base * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, total - warm))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def step_rng(phase, step):
    """The random stream of one training step: the same whether or not the run was resumed."""
    return np.random.default_rng([SEED, phase, step])


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
def train_autoencoder(enc, dec, stages, work):
    """The autoencoder, stage after stage (a fresh AdamW each, cosine over the stage); WORK/ae.pt
    after every stage, and a run picks up after the last stage it holds."""
    path = os.path.join(work, "ae.pt")
    done = 0
    if os.path.exists(path):
        sd = torch.load(path)
        enc.load_state_dict(sd["enc"])
        dec.load_state_dict(sd["dec"])
        done = sd.get("stages", 1)
        log(f"autoencoder: {done} of {len(stages)} stages loaded from {path}")
    crop = 96
    first = sum(n for n, *_ in stages[:done])
    for k, (steps, lr, noise_std, sizes, part) in list(enumerate(stages))[done:]:
        params = list(dec.parameters()) + (list(enc.parameters()) if part == "all" else [])
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        t0 = time.time()
        for i in range(steps):
            step = first + i
            rng = step_rng(1, step)
            for g in opt.param_groups:
                g["lr"] = lr_at(i, steps, lr)
            H, W = sizes[step % len(sizes)]
            scenes = [sample_scene(rng, allow_held_out=True) for _ in range(AE_BATCH)]
            img, _ = render(scenes, H, W, rng)
            ch, cw = min(crop, H), min(crop, W)
            oy = int(rng.integers(0, H - ch + 1)) // VAE_FACTOR * VAE_FACTOR
            ox = int(rng.integers(0, W - cw + 1)) // VAE_FACTOR * VAE_FACTOR
            img = img[:, :, oy:oy + ch, ox:ox + cw]
            with torch.set_grad_enabled(part == "all"):
                z = enc(img)
            noise = torch.from_numpy(rng.standard_normal(z.shape).astype(np.float32))
            rec = dec(z + noise_std * noise)
            l1 = (rec - img).abs().mean()
            mse = ((rec - img) ** 2).mean()
            gx = lambda t: t[..., :, 1:] - t[..., :, :-1]
            gy = lambda t: t[..., 1:, :] - t[..., :-1, :]
            grad = (gx(rec) - gx(img)).abs().mean() + (gy(rec) - gy(img)).abs().mean()
            loss = l1 + mse + grad + 1e-3 * (z ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if i % 100 == 0 or i == steps - 1:
                el = time.time() - t0
                log(f"AE stage {k + 1} step {i}/{steps} loss {loss.item():.4f} l1 {l1.item():.4f} grad {grad.item():.4f} "
                    f"z_std {z.std().item():.3f} | {el:.0f}s, eta {el / (i + 1) * (steps - i - 1):.0f}s")
        first += steps
        save_checkpoint(path, enc=enc.state_dict(), dec=dec.state_dict(), stages=k + 1)


@torch.no_grad()
def latent_stats(enc):
    rng = step_rng(2, 0)
    zs = []
    for H, W in [(128, 128), (256, 256), (512, 512), (192, 320)]:
        scenes = [sample_scene(rng, allow_held_out=True) for _ in range(8)]
        zs.append(enc(render(scenes, H, W, rng)[0]).flatten())
    z = torch.cat(zs)
    return z.mean().item(), z.std().item()


# Training mixture of latent canvases: (latent h, latent w, batch), cycled by step. 4x4 is a
# 64 px image, 32x32 a 512 px one; batches keep roughly 2-6 K latent cells per step.
UNET_SCHEDULE = [(8, 8, 32), (32, 32, 6), (16, 16, 16), (4, 4, 64), (24, 24, 8), (12, 12, 24),
                 (8, 16, 24), (32, 32, 6), (16, 8, 24), (20, 32, 6), (6, 10, 40), (28, 28, 6),
                 (16, 24, 12), (32, 20, 6), (10, 10, 32), (24, 16, 12), (32, 32, 6), (12, 20, 20)]


def encode_captions(tok, caps, cache):
    ids = []
    for c in caps:
        if c not in cache:
            cache[c] = tok.encode(c)
        ids.append(cache[c])
    return torch.tensor(ids, dtype=torch.long)


def noised_batch(unet, ctx, x0, rng, acp, trajectory):
    """Timesteps and noised latents: half uniform, half the LCM sampler's; a share of the LCM
    ones after the first start from the model's own x0 estimate one sampler step earlier (what
    the 4-step sampler feeds it), not from the clean latent."""
    B = x0.shape[0]
    half = B // 2
    k = rng.integers(0, 4, half)
    t = torch.cat([torch.from_numpy(rng.integers(0, 1000, B - half)), torch.tensor(LCM_TIMESTEPS)[k]]).long()
    noise = torch.from_numpy(rng.standard_normal(x0.shape).astype(np.float32))
    a = acp[t].view(-1, 1, 1, 1)
    start = x0.clone()
    rows = [B - half + j for j in range(half) if k[j] > 0 and rng.random() < trajectory]
    if rows:
        idx = torch.tensor(rows)
        tp = torch.tensor([LCM_TIMESTEPS[k[r - (B - half)] - 1] for r in rows])
        ap = acp[tp].view(-1, 1, 1, 1)
        n0 = torch.from_numpy(rng.standard_normal(x0[idx].shape).astype(np.float32))
        with torch.no_grad():
            start[idx] = unet.predict_x0(ap.sqrt() * x0[idx] + (1 - ap).sqrt() * n0, tp, ctx[idx])
    return t, a.sqrt() * start + (1 - a).sqrt() * noise


def save_checkpoint(path, **state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_loop(name, phase, modules, steps, work, lr, horizon, ema_decay, warm, batch_loss, evaluator, eval_every):
    """AdamW on the trainable parameters of `modules`, warm-up then cosine over `horizon` steps,
    gradient clipping, an EMA of every parameter of `modules`; a checkpoint every 250 steps in
    WORK/<name>.pt, picked up again when the run restarts. `batch_loss(rng, step)` gives a loss."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    ema = EMA(modules, ema_decay)
    path = os.path.join(work, f"{name}.pt")
    start = 0
    if os.path.exists(path):
        sd = torch.load(path)
        for m, state in zip(modules, sd["modules"]):
            m.load_state_dict(state)
        opt.load_state_dict(sd["opt"])
        ema.shadow = sd["ema"]
        start = sd["step"]
        log(f"{name}: resumed at step {start}")
    t0 = time.time()
    run_loss = None
    for step in range(start, steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, horizon, lr, warm)
        loss = batch_loss(step_rng(phase, step), step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update(step)
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        done = step + 1
        if step % 50 == 0 or done == steps:
            el = time.time() - t0
            log(f"{name} step {step}/{steps} loss {run_loss:.4f} | {el:.0f}s, {el / (done - start):.2f} s/step, "
                f"eta {el / (done - start) * (steps - done) / 60:.0f} min")
        if done % 250 == 0 or done == steps:
            save_checkpoint(path, modules=[m.state_dict() for m in modules], opt=opt.state_dict(), ema=ema.shadow, step=done)
        if evaluator and (done % eval_every == 0 or done == steps):
            evaluator(ema, done)
    ema.copy_to(modules)


def train_unet(unet, text, enc, scale, tok, steps, work, evaluator=None, eval_every=1000):
    acp = sd_alphas_cumprod()
    cache = {}

    def batch_loss(rng, step):
        h, w, B = UNET_SCHEDULE[step % len(UNET_SCHEDULE)]
        scenes = [sample_scene(rng) for _ in range(B)]
        caps = [s.caption() if rng.random() >= P_CAPTION_DROPOUT else "" for s in scenes]
        with torch.no_grad():
            x0 = enc(render(scenes, VAE_FACTOR * h, VAE_FACTOR * w, rng)[0]) * scale
        ctx = text(encode_captions(tok, caps, cache))
        t, xt = noised_batch(unet, ctx.detach(), x0, rng, acp, trajectory=0.5)
        return ((unet.predict_x0(xt, t, ctx) - x0) ** 2).mean()

    train_loop("unet", 3, [unet, text], steps, work, 4e-4, UNET_LR_HORIZON, 0.9995, 200, batch_loss, evaluator, eval_every)


def train_controlnet(cnet, unet, text, enc, scale, tok, steps, work, evaluator=None, eval_every=500):
    acp = sd_alphas_cumprod()
    for p in list(unet.parameters()) + list(text.parameters()):
        p.requires_grad_(False)
    cache = {}

    def batch_loss(rng, step):
        h, w, B = UNET_SCHEDULE[step % len(UNET_SCHEDULE)]
        scenes = [sample_scene(rng, allow_held_out=True) for _ in range(B)]
        kinds = [CONTROL_TYPES[rng.integers(2)] for _ in scenes]
        caps = [s.caption() if rng.random() >= P_CAPTION_DROPOUT else "" for s in scenes]
        with torch.no_grad():
            img, ctl = render(scenes, VAE_FACTOR * h, VAE_FACTOR * w, rng, control=kinds)
            x0 = enc(img) * scale
            ctx = text(encode_captions(tok, caps, cache))
        t, xt = noised_batch(unet, ctx, x0, rng, acp, trajectory=0.0)
        res = cnet(xt, t, ctx, ctl)
        return ((unet.predict_x0(xt, t, ctx, list(res[:-1]), res[-1]) - x0) ** 2).mean()

    train_loop("controlnet", 4, [cnet], steps, work, 2e-4, steps, 0.999, 100, batch_loss, evaluator, eval_every)


# --------------------------------------------------------------------------------------
# Sampling / evaluation (the judge mirrors test/support/shape-judge.ts)
# --------------------------------------------------------------------------------------
@torch.no_grad()
def lcm_sample(unet, text, dec, scale, tok, captions, h, w, guidance, seed, cnet=None, control=None, control_scale=1.0):
    acp = sd_alphas_cumprod()
    gen = torch.Generator().manual_seed(seed)
    B = len(captions)
    cond = text(torch.tensor([tok.encode(c) for c in captions]))
    unc = text(torch.tensor([tok.encode("")] * B))
    x = torch.randn(B, unet.zc, h, w, generator=gen)
    for i, t in enumerate(LCM_TIMESTEPS):
        guided = guidance > 1
        xs, ctx = (torch.cat([x, x]), torch.cat([unc, cond])) if guided else (x, cond)
        tt = torch.full((xs.shape[0],), t, dtype=torch.long)
        res = []
        if cnet is not None:
            ctl = torch.cat([control, control]) if guided else control
            res = [r * control_scale for r in cnet(xs, tt, ctx, ctl)]
        eps = unet(xs, tt, ctx, *res)
        if guided:
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


PALETTE_U8 = np.array([COLORS[c] for c in COLOR_NAMES], dtype=np.float32)


def components(mask):
    """4-connected components of a bool mask: a label image (-1 outside), each part labelled by
    its smallest pixel index (neighbour minimum plus pointer jumping until nothing changes)."""
    H, W = mask.shape
    big = H * W
    lab = np.where(mask, np.arange(H * W).reshape(H, W), big)
    while True:
        m = lab.copy()
        m[1:] = np.minimum(m[1:], lab[:-1])
        m[:-1] = np.minimum(m[:-1], lab[1:])
        m[:, 1:] = np.minimum(m[:, 1:], lab[:, :-1])
        m[:, :-1] = np.minimum(m[:, :-1], lab[:, 1:])
        m = np.where(mask, m, big)
        flat = np.append(m.ravel(), big)
        for _ in range(4):
            m = flat[m]
        if np.array_equal(m, lab):
            break
        lab = m
    return np.where(mask, lab, -1)


def shape_kind(comp):
    """circle / square / triangle / unknown: a triangle when the part's top third is much narrower
    than its bottom third (apex up), else the better of an ellipse and a box fitted to its bounding
    box by IoU (at least 0.75 and 0.02 ahead); test/support/shape-judge.ts's shapeKind."""
    ys, xs = np.nonzero(comp)
    part = comp[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = part.shape
    yy = (np.arange(h)[:, None] + 0.5) / h
    xx = (np.arange(w)[None, :] + 0.5) / w
    iou = lambda tpl: (tpl & part).sum() / max(1, (tpl | part).sum())
    rows = part.sum(1)
    third = max(1, int(h * 0.3))
    if rows[:third].mean() < 0.6 * rows[h - third:].mean():
        return "triangle" if iou(np.abs(xx - 0.5) <= 0.5 * yy) >= 0.6 else "unknown"
    circle, square = iou((xx - 0.5) ** 2 + (yy - 0.5) ** 2 <= 0.25), iou(np.ones((h, w), bool))
    if max(circle, square) < 0.75 or abs(circle - square) < 0.02:
        return "unknown"
    return "circle" if circle > square else "square"


def judge(img):
    """img [3,H,W] in [-1,1] -> {background, shapes: [(colour, kind, area share)] largest first}.
    Pixels take their nearest palette colour; the background is the border band's commonest;
    shapes are the 4-connected parts of the other pixels covering at least 0.3% of the image."""
    rgb = ((img.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255)
    H, W, _ = rgb.shape
    lab = ((rgb[:, :, None, :] - PALETTE_U8[None, None]) ** 2).sum(-1).argmin(-1)
    band = max(2, round(min(H, W) / 16))
    border = np.concatenate([lab[:band].ravel(), lab[-band:].ravel(), lab[:, :band].ravel(), lab[:, -band:].ravel()])
    bg = int(np.bincount(border, minlength=len(COLOR_NAMES)).argmax())
    comp = components(lab != bg)
    ids, sizes = np.unique(comp[comp >= 0], return_counts=True)
    shapes = []
    for i in ids[np.argsort(-sizes)]:
        part = comp == i
        share = part.sum() / (H * W)
        if share < 0.003:
            break
        colour = COLOR_NAMES[int(np.bincount(lab[part], minlength=len(COLOR_NAMES)).argmax())]
        shapes.append((colour, shape_kind(part), float(share)))
    return {"background": COLOR_NAMES[bg], "shapes": shapes}


def score(verdict, scene):
    """Per-criterion hits of one image against the scene its caption describes."""
    want = sorted((c, s) for c, s, _ in scene.items)
    got = verdict["shapes"][: max(1, len(want))]
    out = {"background": verdict["background"] == scene.bg, "count": len(verdict["shapes"]) == len(want)}
    if want:
        out["colour"] = sorted(c for c, _, _ in got) == sorted(c for c, _ in want)
        out["type"] = sorted(k for _, k, _ in got) == sorted(s for _, s in want)
    return out


def eval_scenes():
    """Held-out captions: each held-out triple alone, and inside a two-shape caption."""
    one = [Scene(bg, [(c, s, None)]) for c, s, bg in HELD_OUT]
    two = []
    for k, (c, s, bg) in enumerate(HELD_OUT):
        c2 = [x for x in COLOR_NAMES if x not in (bg, c)][k % 6]
        s2 = SHAPES[(SHAPES.index(s) + 1) % 3]
        two.append(Scene(bg, [(c, s, None), (c2, s2, None)]))
    return one, two


@torch.no_grad()
def evaluate(unet, text, dec, scale, tok, sizes=(128, 256, 512), seeds=4, guidance=1.0):
    one, two = eval_scenes()
    table = {}
    for px in sizes:
        for name, scenes in (("one", one), ("two", two)):
            hits = {}
            for seed in range(seeds):
                imgs = lcm_sample(unet, text, dec, scale, tok, [s.caption() for s in scenes], px // VAE_FACTOR,
                                  px // VAE_FACTOR, guidance, seed=1000 * px + seed)
                for im, sc in zip(imgs, scenes):
                    for k, v in score(judge(im), sc).items():
                        hits.setdefault(k, []).append(v)
            table[f"{px}/{name}"] = {k: round(float(np.mean(v)), 3) for k, v in hits.items()}
    return table


@torch.no_grad()
def control_iou(cnet, unet, text, dec, scale, tok, px=256, seeds=4):
    """How well images follow a control image: IoU of the non-background pixels with the
    silhouettes drawn, and whether the prompt's colours hold, per control type."""
    out = {}
    for kind in CONTROL_TYPES:
        ious, colours = [], []
        for seed in range(seeds):
            rng = step_rng(9, seed)
            scenes = [sample_scene(rng, allow_held_out=True) for _ in range(8)]
            scenes = [s for s in scenes if s.items] or [Scene("white", [("red", "circle", None)])]
            _, ctl = render(scenes, px, px, step_rng(10, seed), control=[kind] * len(scenes))
            _, sil = render(scenes, px, px, step_rng(10, seed), control=["layout"] * len(scenes))
            imgs = lcm_sample(unet, text, dec, scale, tok, [s.caption() for s in scenes], px // VAE_FACTOR,
                              px // VAE_FACTOR, 1.0, seed=seed, cnet=cnet, control=ctl)
            for im, s, m in zip(imgs, scenes, sil):
                v = judge(im)
                rgb = ((im.permute(1, 2, 0).numpy() + 1) * 127.5)
                lab = ((rgb[:, :, None, :] - PALETTE_U8[None, None]) ** 2).sum(-1).argmin(-1)
                fg = lab != COLOR_NAMES.index(v["background"])
                want = m[0].numpy() > 0.5
                ious.append((fg & want).sum() / max(1, (fg | want).sum()))
                colours.append(score(v, s).get("colour", True))
        out[kind] = {"iou": round(float(np.mean(ious)), 3), "colour": round(float(np.mean(colours)), 3)}
    return out


@torch.no_grad()
def save_grid(unet, text, dec, scale, tok, path, guidance=1.0):
    from PIL import Image
    one, two = eval_scenes()
    rows = [(128, [s.caption() for s in one[:8]]), (256, [s.caption() for s in two[:4]] + [
        "two big red squares on a blue background", "a small white circle on a black background"])]
    to8 = lambda t: ((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    pad = 4
    width = 4 * (512 + pad)
    canvas = np.full((2 * (128 + pad) + 2 * (256 + pad) + 512 + pad, width, 3), 255, np.uint8)
    y = 0
    for px, caps in rows:
        imgs = lcm_sample(unet, text, dec, scale, tok, caps, px // 16, px // 16, guidance, seed=px)
        per = width // (px + pad)
        for i, im in enumerate(imgs):
            r, c = divmod(i, per)
            canvas[y + r * (px + pad):y + r * (px + pad) + px, c * (px + pad):c * (px + pad) + px] = to8(im)
        y += math.ceil(len(imgs) / per) * (px + pad)
    big = ["a green square on a yellow background", "a red circle on a blue background",
           "a red circle and a blue triangle on a white background", "two orange triangles on a purple background"]
    imgs = lcm_sample(unet, text, dec, scale, tok, big, 32, 32, guidance, seed=512)
    for i, im in enumerate(imgs):
        canvas[y:y + 512, i * (512 + pad):i * (512 + pad) + 512] = to8(im)
    Image.fromarray(canvas[: y + 512]).save(path, optimize=True)
    return [c for _, caps in rows for c in caps] + [c + " (512x512)" for c in big]


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------
class TextWrap(nn.Module):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids):
        return self.text(input_ids)


def receptive_field(dec):
    """Empirical decoder receptive field radius in latent cells."""
    z = torch.zeros(1, LATENT_CHANNELS, 16, 16, requires_grad=True)
    out = dec(z)
    c = 8 * VAE_FACTOR + VAE_FACTOR // 2
    out[0, :, c, c].sum().backward()
    nz = (z.grad.abs().sum((0, 1)) > 0).nonzero()
    return int(max((nz[:, 0] - 8).abs().max(), (nz[:, 1] - 8).abs().max()))


def down_block_names(n):
    return [f"down_block_{i}" for i in range(n)]


def export_all(out, text, unet, enc, dec, scale, shift, tok, merges, vocab, cnet=None, opset=17):
    for m in (text, unet, enc, dec) + ((cnet,) if cnet else ()):
        m.eval()
    D = text.dim
    os.makedirs(out, exist_ok=True)
    reference = os.path.join(HERE, "tokenizer_reference.json") if os.path.abspath(out) == DEFAULT_OUT else \
        os.path.join(out, "tokenizer_reference.json")
    write_tokenizer(tok, merges, vocab, out, reference)
    j = lambda p, o: open(os.path.join(out, p), "w").write(json.dumps(o, indent=2) + "\n")
    index = {
        "_class_name": "ORTStableDiffusionPipeline", "_diffusers_version": "0.30.0",
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae_decoder": ["diffusers", "AutoencoderKL"],
        "vae_encoder": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "LCMScheduler"]}
    if cnet:
        index["controlnet"] = ["diffusers", "ControlNetModel"]
    j("model_index.json", index)
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    j("scheduler/scheduler_config.json", {
        "_class_name": "LCMScheduler", "_diffusers_version": "0.30.0", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "original_inference_steps": 50,
        "prediction_type": "epsilon", "set_alpha_to_one": True, "steps_offset": 1, "timestep_spacing": "leading",
        "clip_sample": False, "timestep_scaling": 10.0, "rescale_betas_zero_snr": False, "thresholding": False})
    kw = dict(opset_version=opset, do_constant_folding=True)
    ids = torch.tensor([tok.encode("a red circle on a blue background"), tok.encode("")])
    os.makedirs(os.path.join(out, "text_encoder"), exist_ok=True)
    torch.onnx.export(TextWrap(text), (ids,), os.path.join(out, "text_encoder", "model.onnx"),
                      input_names=["input_ids"], output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}}, **kw)
    j("text_encoder/config.json", {
        "_class_name": "ShapesTextEncoder", "architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
        "hidden_size": D, "num_hidden_layers": len(text.blocks), "num_attention_heads": 4,
        "intermediate_size": 4 * D, "max_position_embeddings": MAX_LEN, "vocab_size": len(vocab),
        "bos_token_id": vocab[BOS], "eos_token_id": vocab[EOS], "pad_token_id": vocab[EOS],
        "attention": "bidirectional (no causal mask, no padding mask)"})
    with torch.no_grad():
        ctx = text(ids)
    x = torch.randn(2, unet.zc, 6, 10)
    t = torch.tensor([999, 259])
    skips = unet.encoder.skip_channels
    with torch.no_grad():
        _, hs, mid = unet.encoder(x, t, ctx)
    names = down_block_names(len(skips))
    residual_axes = {n: {0: f"{n}_batch", 2: f"{n}_height", 3: f"{n}_width"} for n in names + ["mid_block_additional_residual"]}
    os.makedirs(os.path.join(out, "unet"), exist_ok=True)
    torch.onnx.export(unet, (x, t, ctx, *[torch.zeros_like(h) for h in hs], torch.zeros_like(mid)),
                      os.path.join(out, "unet", "model.onnx"),
                      input_names=["sample", "timestep", "encoder_hidden_states"] + names + ["mid_block_additional_residual"],
                      output_names=["out_sample"],
                      dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                    "encoder_hidden_states": {0: "batch"},
                                    "out_sample": {0: "batch", 2: "height", 3: "width"}, **residual_axes}, **kw)
    j("unet/config.json", {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0", "in_channels": unet.zc,
        "out_channels": unet.zc, "sample_size": 32, "cross_attention_dim": D, "block_out_channels": list(unet.ch),
        "layers_per_block": 2, "attention_head_dim": unet.heads, "prediction_type": "epsilon",
        "latent_alignment": 1, "parameterization": "x0 internally, converted to epsilon in-graph",
        "timestep_input": "int64 [batch], per-sample",
        "controlnet_residuals": {"down": names, "mid": "mid_block_additional_residual",
                                 "channels": list(skips) + [unet.ch[-1]],
                                 "note": "added to the skip tensors and the middle block's output; any shape that "
                                         "broadcasts to them, e.g. [1, C, 1, 1] zeros without control"}})
    if cnet:
        cond = torch.rand(2, 3, VAE_FACTOR * 6, VAE_FACTOR * 10)
        outs = [f"down_block_res_sample_{i}" for i in range(len(skips))] + ["mid_block_res_sample"]
        os.makedirs(os.path.join(out, "controlnet"), exist_ok=True)
        torch.onnx.export(cnet, (x, t, ctx, cond), os.path.join(out, "controlnet", "model.onnx"),
                          input_names=["sample", "timestep", "encoder_hidden_states", "controlnet_cond"],
                          output_names=outs,
                          dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"}, "timestep": {0: "batch"},
                                        "encoder_hidden_states": {0: "batch"},
                                        "controlnet_cond": {0: "batch", 2: "image_height", 3: "image_width"},
                                        **{o: {0: "batch", 2: f"{o}_height", 3: f"{o}_width"} for o in outs}}, **kw)
        j("controlnet/config.json", {
            "_class_name": "ControlNetModel", "_diffusers_version": "0.30.0", "in_channels": unet.zc,
            "conditioning_channels": 3, "conditioning_types": CONTROL_TYPES,
            "conditioning_image": "RGB in [0, 1], the image's own width and height; edges: white 2 px outlines "
                                  "on black, layout: white filled silhouettes on black",
            "block_out_channels": list(unet.ch), "cross_attention_dim": D,
            "outputs": outs, "unet_inputs": names + ["mid_block_additional_residual"]})
    os.makedirs(os.path.join(out, "vae_encoder"), exist_ok=True)
    os.makedirs(os.path.join(out, "vae_decoder"), exist_ok=True)
    img = torch.randn(1, 3, 64, 96)
    torch.onnx.export(enc, (img,), os.path.join(out, "vae_encoder", "model.onnx"),
                      input_names=["sample"], output_names=["latent_sample"],
                      dynamic_axes={"sample": {0: "batch", 2: "height", 3: "width"},
                                    "latent_sample": {0: "batch", 2: "latent_height", 3: "latent_width"}}, **kw)
    torch.onnx.export(dec, (torch.randn(1, LATENT_CHANNELS, 4, 6),), os.path.join(out, "vae_decoder", "model.onnx"),
                      input_names=["latent_sample"], output_names=["sample"],
                      dynamic_axes={"latent_sample": {0: "batch", 2: "latent_height", 3: "latent_width"},
                                    "sample": {0: "batch", 2: "height", 3: "width"}}, **kw)
    rf = receptive_field(dec)
    vae_cfg = {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.30.0", "in_channels": 3, "out_channels": 3,
        "latent_channels": LATENT_CHANNELS, "scaling_factor": round(scale, 5), "shift_factor": None,
        "latent_mean_measured": round(shift, 5), "block_out_channels": [32, 64, 128, 192],
        "decoder_block_out_channels": [192, 128, 64, 32], "sample_size": 256, "downsample_factor": VAE_FACTOR,
        "decoder_receptive_field_latent_radius": rf,
        "note": "deterministic autoencoder (no KL sampling); latent_sample is unscaled"}
    j("vae_encoder/config.json", vae_cfg)
    j("vae_decoder/config.json", vae_cfg)
    check_onnx(out)
    return rf


def check_onnx(out):
    """onnx's checker on every exported graph, and no shape baked in: a Reshape, Expand, Tile or
    ConstantOfShape whose shape is a constant must keep its sizes relative (0 or -1 in it)."""
    import onnx
    import onnx.numpy_helper as nh
    for sub in ["text_encoder", "unet", "vae_encoder", "vae_decoder", "controlnet"]:
        p = os.path.join(out, sub, "model.onnx")
        if not os.path.exists(p):
            continue
        m = onnx.load(p)
        onnx.checker.check_model(m)
        known = {i.name: nh.to_array(i) for i in m.graph.initializer}
        known.update({n.output[0]: nh.to_array(n.attribute[0].t) for n in m.graph.node if n.op_type == "Constant"})
        fixed = [(n.op_type, known[n.input[1]].tolist()) for n in m.graph.node
                 if n.op_type in ("Reshape", "Expand", "Tile", "ConstantOfShape") and len(n.input) > 1
                 and n.input[1] in known and (known[n.input[1]] > 0).all() and sub != "text_encoder"]
        io = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in list(m.graph.input)[:4] + list(m.graph.output)[:2]]
        log(f"onnx {sub}: {os.path.getsize(p) / 1e6:.2f} MB, {len(m.graph.input)} inputs, {len(m.graph.output)} outputs, {io}")
        assert not fixed, f"{sub}: shapes baked in: {fixed[:4]}"


# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--work", default=DEFAULT_WORK)
    ap.add_argument("--untrained", action="store_true", help="export random weights only (for development)")
    ap.add_argument("--quick", action="store_true", help="tiny step counts (smoke test)")
    ap.add_argument("--pilot", type=int, default=0, help="train the UNet N steps, evaluate, stop (no export)")
    ap.add_argument("--eval-only", action="store_true", help="export + evaluate the work dir's checkpoints")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stop-after", choices=["ae", "unet"], help="stop after this phase (its checkpoint kept)")
    ap.add_argument("--allow-slow-blas", action="store_true")
    args = ap.parse_args()
    os.nice(19 - os.nice(0))  # lowest priority: the test suite and benchmarks keep the cores
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    check_blas(strict=not (args.allow_slow_blas or args.untrained))
    torch.manual_seed(SEED)
    tok, merges, vocab = build_tokenizer(WORDS)
    log(f"tokenizer: {len(vocab)} tokens, {len(merges)} merges")
    text = TextEncoder(len(vocab))
    unet = UNet(ctx_dim=text.dim)
    enc, dec = ImageEncoder(), Decoder()
    log(f"params: text {count(text) / 1e6:.2f}M unet {count(unet) / 1e6:.2f}M enc {count(enc) / 1e6:.3f}M "
        f"dec {count(dec) / 1e6:.3f}M")
    unet_steps, control_steps = (40, 40) if args.quick else (args.pilot or UNET_STEPS, CONTROL_STEPS)
    t_start = time.time()
    if args.untrained:
        export_all(args.out, text, unet, enc, dec, 1.0, 0.0, tok, merges, vocab, cnet=ControlNet(unet))
        log("exported UNTRAINED model to", args.out)
        return
    train_autoencoder(enc, dec, [(40, *rest) for _, *rest in AE_STAGES] if args.quick else AE_STAGES, args.work)
    t_ae = time.time() - t_start
    if args.stop_after == "ae":
        return
    enc.eval()
    dec.eval()
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.requires_grad_(False)
    mean, std = latent_stats(enc)
    scale = 1.0 / std
    log(f"latent mean {mean:.4f} std {std:.4f} -> scaling_factor {scale:.5f}")

    def unet_evaluator(ema, step):
        u, t = UNet(ctx_dim=text.dim), TextEncoder(len(vocab))
        ema.copy_to([u, t])
        u.eval()
        t0 = time.time()
        table = evaluate(u, t, dec, scale, tok, seeds=1)
        log(f"eval at UNet step {step} ({time.time() - t0:.0f}s): {json.dumps(table)}")
        with open(os.path.join(args.work, "eval-log.jsonl"), "a") as f:
            f.write(json.dumps({"phase": "unet", "step": step, "table": table}) + "\n")

    if not args.eval_only:
        train_unet(unet, text, enc, scale, tok, unet_steps, args.work, unet_evaluator,
                   eval_every=max(250, args.pilot // 2) if args.pilot else 500)
    else:
        load_ema(os.path.join(args.work, "unet.pt"), [unet, text])
    if args.pilot or args.stop_after == "unet":
        return
    t_unet = time.time() - t_start
    unet.eval()
    text.eval()
    cnet = ControlNet(unet)

    def control_evaluator(ema, step):
        c = ControlNet(unet)
        ema.copy_to([c])
        c.eval()
        table = control_iou(c, unet, text, dec, scale, tok, seeds=1)
        log(f"eval at ControlNet step {step}: {json.dumps(table)}")
        with open(os.path.join(args.work, "eval-log.jsonl"), "a") as f:
            f.write(json.dumps({"phase": "controlnet", "step": step, "table": table}) + "\n")

    if not args.eval_only:
        train_controlnet(cnet, unet, text, enc, scale, tok, control_steps, args.work, control_evaluator)
    else:
        load_ema(os.path.join(args.work, "controlnet.pt"), [cnet])
    t_train = time.time() - t_start
    cnet.eval()
    rf = export_all(args.out, text, unet, enc, dec, scale, mean, tok, merges, vocab, cnet=cnet)
    log(f"decoder receptive field radius: {rf} latent cells")
    results = {"ae_minutes": round(t_ae / 60, 1), "unet_minutes": round((t_unet - t_ae) / 60, 1),
               "total_train_minutes": round(t_train / 60, 1), "scaling_factor": round(scale, 5),
               "decoder_receptive_field_latent_radius": rf}
    seeds = 1 if args.quick else 4
    for g in (1.0, 2.0):
        results[f"heldout_g{g}"] = evaluate(unet, text, dec, scale, tok, seeds=seeds, guidance=g)
        log(f"held-out captions, guidance {g}: {json.dumps(results[f'heldout_g{g}'])}")
    results["control_256px"] = control_iou(cnet, unet, text, dec, scale, tok, seeds=seeds)
    log(f"control: {json.dumps(results['control_256px'])}")
    results["samples_png_captions"] = save_grid(unet, text, dec, scale, tok, os.path.join(args.out, "samples.png"))
    with torch.no_grad():
        t = time.time()
        lcm_sample(unet, text, dec, scale, tok, ["a red circle on a blue background"], 32, 32, 1.0, seed=0)
        results["torch_4step_512px_seconds"] = round(time.time() - t, 2)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log("results:", json.dumps(results))
    log(f"done in {(time.time() - t_start) / 60:.1f} min")


if __name__ == "__main__":
    main()
