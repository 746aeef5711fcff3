/**
 * The shape judge for the bundled model's pictures (the same rules as the training script's
 * `judge`, models/train/train_shapes_ldm.py): every pixel takes its nearest palette colour, the
 * background is the border band's commonest, and the shapes are the 4-connected parts of the
 * other pixels that cover at least 0.3% of the image, each with its commonest colour and its
 * kind (circle, square, apex-up triangle or unknown; see `shapeKind`).
 */
import { PALETTE, RgbImage, backgroundColour, nearestColour } from './colour-judge';

export type ShapeKind = 'circle' | 'square' | 'triangle' | 'unknown';

export interface JudgedShape {
  colour: string;
  kind: ShapeKind;
  /** Share of the image's pixels. */
  share: number;
  /** Its pixels, as a mask over the image. */
  mask: Uint8Array;
}

export interface Verdict {
  background: string;
  /** Largest first. */
  shapes: JudgedShape[];
}

/** What a caption asks for: a background and its shapes. */
export interface Scene {
  background: string;
  shapes: ReadonlyArray<{ colour: string; kind: string }>;
}

const MIN_SHARE = 0.003;
const MIN_IOU = 0.75;
const NAMES = Object.keys(PALETTE);

/** Nearest palette colour index of every pixel. */
export function labelPixels(image: RgbImage): Uint8Array {
  const labels = new Uint8Array(image.width * image.height);
  for (let p = 0; p < labels.length; p++) {
    labels[p] = NAMES.indexOf(nearestColour([image.data[3 * p], image.data[3 * p + 1], image.data[3 * p + 2]]));
  }
  return labels;
}

/** 4-connected parts of the pixels where `inside` is set: a list of pixel index arrays. */
function parts(inside: Uint8Array, width: number, height: number): number[][] {
  const seen = new Uint8Array(inside.length);
  const out: number[][] = [];
  for (let start = 0; start < inside.length; start++) {
    if (!inside[start] || seen[start]) continue;
    const part: number[] = [];
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const p = stack.pop()!;
      part.push(p);
      const x = p % width;
      const y = (p - x) / width;
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]]) {
        if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
        const q = ny * width + nx;
        if (inside[q] && !seen[q]) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    out.push(part);
  }
  return out;
}

/**
 * The part's kind: a triangle when its top third is much narrower than its bottom third (an
 * apex-up triangle's rows widen downwards; a circle's and a square's do not), otherwise the
 * better fitting of an ellipse and a box in its bounding box, by IoU (at least 0.75, and 0.02
 * ahead of the other). Soft edges round a small shape's corners; the widths still tell.
 */
export function shapeKind(pixels: readonly number[], width: number): ShapeKind {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const p of pixels) {
    const x = p % width;
    const y = (p - x) / width;
    [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x + 1), Math.max(y1, y + 1)];
  }
  const w = x1 - x0;
  const h = y1 - y0;
  const part = new Uint8Array(w * h);
  const rows = new Array<number>(h).fill(0);
  for (const p of pixels) {
    const x = p % width;
    const y = (p - x) / width - y0;
    part[y * w + x - x0] = 1;
    rows[y]++;
  }
  const third = Math.max(1, Math.floor(h * 0.3));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const iou = (inside: (u: number, v: number) => boolean) => {
    let both = 0;
    let either = 0;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const t = inside((x + 0.5) / w, (y + 0.5) / h);
        const s = part[y * w + x] === 1;
        if (t && s) both++;
        if (t || s) either++;
      }
    }
    return both / either;
  };
  if (mean(rows.slice(0, third)) < 0.6 * mean(rows.slice(h - third))) return iou((u, v) => Math.abs(u - 0.5) <= 0.5 * v) >= 0.6 ? 'triangle' : 'unknown';
  const circle = iou((u, v) => (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25);
  const square = iou(() => true);
  if (Math.max(circle, square) < MIN_IOU || Math.abs(circle - square) < 0.02) return 'unknown';
  return circle > square ? 'circle' : 'square';
}

export function judgeShapes(image: RgbImage): Verdict {
  const { width, height } = image;
  const labels = labelPixels(image);
  const background = backgroundColour(image);
  const bg = NAMES.indexOf(background);
  const inside = labels.map((l) => (l === bg ? 0 : 1));
  const found = parts(inside, width, height)
    .filter((part) => part.length >= MIN_SHARE * width * height)
    .sort((a, b) => b.length - a.length);
  const shapes = found.map((part): JudgedShape => {
    const counts = new Array<number>(NAMES.length).fill(0);
    const mask = new Uint8Array(width * height);
    for (const p of part) {
      counts[labels[p]]++;
      mask[p] = 1;
    }
    const colour = NAMES[counts.indexOf(Math.max(...counts))];
    return { colour, kind: shapeKind(part, width), share: part.length / (width * height), mask };
  });
  return { background, shapes };
}

export interface Score {
  background: boolean;
  count: boolean;
  /** Undefined for a plain background. */
  colour?: boolean;
  kind?: boolean;
}

/**
 * One image against its scene: background; the number of shapes; the colours and the kinds of
 * the largest shapes (as many as asked for), as multisets.
 */
export function scoreImage(verdict: Verdict, scene: Scene): Score {
  const want = scene.shapes;
  const got = verdict.shapes.slice(0, Math.max(1, want.length));
  const same = (a: string[], b: string[]) => a.sort().join() === b.sort().join();
  const score: Score = { background: verdict.background === scene.background, count: verdict.shapes.length === want.length };
  if (want.length > 0) {
    score.colour = same(got.map((s) => s.colour), want.map((s) => s.colour));
    score.kind = same(got.map((s) => s.kind), want.map((s) => s.kind));
  }
  return score;
}

/** Intersection over union of two masks. */
export function iou(a: Uint8Array, b: Uint8Array): number {
  let both = 0;
  let either = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) both++;
    if (a[i] || b[i]) either++;
  }
  return either === 0 ? 1 : both / either;
}
