/**
 * The pure parts of live sessions: how updates apply to a canvas state and how a state is
 * checked, what changed between two painted states (per pixel owner), and which frame tiles
 * changed.
 */
import { CanvasState, DEFAULT_LIMITS, SessionSpec, applyUpdate, checkCanvasState, clientMessageSchema, parseClientMessage } from '@farm/contracts';
import { PaintedRegion, canvasChange, emptyMask, overBackground, ownerMap, rasterizeRects } from '@farm/pipeline';
import { changedTiles } from '../../apps/worker/src/frame-tiles';

const spec: SessionSpec = { width: 64, height: 64, steps: 4, guidanceScale: 1, format: 'png', model: 'shapes-ldm' };
const square = (x: number, y: number, side: number) => ({ rects: [[x, y, side, side] as [number, number, number, number]] });
const base: CanvasState = { seq: 0, prompt: 'a blue background', seed: 1, regions: { red: { prompt: 'a red background', mask: square(0, 0, 8), strength: 1 } } };
const schema = clientMessageSchema(DEFAULT_LIMITS);
const update = (body: Record<string, unknown>) => {
  const parsed = parseClientMessage({ type: 'update', ...body }, schema);
  if (!parsed.ok || parsed.value.type !== 'update') throw new Error(JSON.stringify(parsed));
  return parsed.value;
};

describe('canvas state updates', () => {
  it('patch: set and remove regions by id, keep what the patch leaves out', () => {
    const next = applyUpdate(base, update({ seq: 1, regions: { green: { prompt: 'a green background', mask: square(8, 8, 8) }, red: null } }));
    expect(next).toMatchObject({ seq: 1, prompt: 'a blue background', seed: 1 });
    expect(Object.keys(next.regions)).toEqual(['green']);
    expect(next.regions.green.strength).toBe(1);
  });

  it('replace: the update is the whole state', () => {
    const withNegative = { ...base, negativePrompt: 'blurry' };
    const next = applyUpdate(withNegative, update({ seq: 2, replace: true, prompt: 'a white background' }));
    expect(next).toEqual({ seq: 2, prompt: 'a white background', negativePrompt: undefined, seed: 1, regions: {} });
  });

  it('names bad messages and states by field and region id', () => {
    expect(parseClientMessage({ type: 'paint' }, schema)).toMatchObject({ ok: false, problems: [{ message: 'type must be one of: update, commit, keyframe' }] });
    expect(parseClientMessage({ type: 'update', seq: 1, regions: { '7': null } }, schema)).toMatchObject({ ok: false, problems: [{ path: 'regions.7' }] });
    const tooMany = { ...base, regions: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`r${i}`, base.regions.red])) };
    expect(checkCanvasState(tooMany, spec, DEFAULT_LIMITS)).toEqual([{ path: 'regions', message: 'at most 8 regions' }]);
    const emptyPrompt = { ...base, regions: { blue: { ...base.regions.red, prompt: ' ' } } };
    expect(checkCanvasState(emptyPrompt, spec, DEFAULT_LIMITS)).toEqual([{ path: 'regions.blue.prompt', message: 'prompt must not be empty' }]);
  });
});

describe('what changed on the canvas', () => {
  const region = (prompt: string, rect: [number, number, number, number], strength = 1): PaintedRegion => ({ prompt, strength, mask: rasterizeRects([rect], 16, 16) });
  const set = (mask: { data: Float32Array }) => Array.from(mask.data.keys()).filter((i) => mask.data[i] > 0);

  it('gives each pixel to the top-most region over it', () => {
    const owners = ownerMap([region('a', [0, 0, 8, 8]), region('b', [4, 4, 8, 8])], 16, 16);
    expect([owners[0], owners[5 * 16 + 5], owners[10 * 16 + 10], owners[15 * 16 + 15]]).toEqual([0, 1, 1, -1]);
  });

  it('re-renders a stroke by its new owner, an erased area by the background, and nothing unchanged', () => {
    const before = [region('red', [0, 0, 4, 4])];
    const stroke = canvasChange(before, [region('red', [0, 0, 8, 4])], 16, 16);
    expect(stroke.background).toBeNull();
    expect(stroke.regions).toHaveLength(1);
    expect(set(stroke.regions[0].mask)).toEqual([4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55]);
    const erased = canvasChange(before, [], 16, 16);
    expect(erased.regions).toEqual([]);
    expect(set(erased.background!)).toHaveLength(16);
    expect(canvasChange(before, [region('red', [0, 0, 4, 4])], 16, 16)).toEqual({ background: null, regions: [] });
  });

  it('re-renders the whole region when its prompt or strength changes', () => {
    const before = [region('red', [0, 0, 4, 4])];
    expect(set(canvasChange(before, [region('green', [0, 0, 4, 4])], 16, 16).regions[0].mask)).toHaveLength(16);
    expect(set(canvasChange(before, [region('red', [0, 0, 4, 4], 0.5)], 16, 16).regions[0].mask)).toHaveLength(16);
  });

  it('keeps only the background-owned part of a mask', () => {
    const all = rasterizeRects([[0, 0, 16, 16]], 16, 16);
    const owners = ownerMap([region('red', [0, 0, 8, 16])], 16, 16);
    expect(set(overBackground(all, owners))).toHaveLength(8 * 16);
    expect(set(overBackground(emptyMask(16, 16), owners))).toHaveLength(0);
  });
});

describe('frame tiles', () => {
  const blank = (w: number, h: number) => Buffer.alloc(w * h * 3);
  const touch = (image: Buffer, width: number, x: number, y: number) => (image[(y * width + x) * 3 + 1] = 9);

  it('are the grid cells where any byte changed, clipped to the image', () => {
    const before = blank(40, 20);
    const after = Buffer.from(before);
    touch(after, 40, 35, 5); // the clipped cell at x 32…39
    touch(after, 40, 0, 19); // the cell at y 16…19
    expect(changedTiles(before, after, 40, 20, 16)).toEqual([
      { x: 32, y: 0, w: 8, h: 16 },
      { x: 0, y: 16, w: 16, h: 4 },
    ]);
    expect(changedTiles(before, before, 40, 20, 16)).toEqual([]);
  });

  it('join into rectangles: a compact change is one tile, an L shape two', () => {
    const before = blank(64, 64);
    const block = Buffer.from(before);
    for (const [x, y] of [[20, 20], [40, 20], [20, 40], [40, 40]]) touch(block, 64, x, y);
    expect(changedTiles(before, block, 64, 64, 16)).toEqual([{ x: 16, y: 16, w: 32, h: 32 }]);
    const ell = Buffer.from(before);
    for (const [x, y] of [[0, 0], [0, 20], [20, 20]]) touch(ell, 64, x, y);
    expect(changedTiles(before, ell, 64, 64, 16)).toEqual([
      { x: 0, y: 0, w: 16, h: 16 },
      { x: 0, y: 16, w: 32, h: 16 },
    ]);
  });
});
