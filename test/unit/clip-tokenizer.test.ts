import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ClipTokenizer } from '@farm/pipeline';
import { MODEL_DIR } from '../support/harness';

// Reference ids come from the training script's own CLIP BPE implementation in Python
// (models/train/train_shapes_ldm.py writes models/train/tokenizer_reference.json).
const reference: Array<{ text: string; ids: number[] }> = JSON.parse(
  readFileSync(path.join(__dirname, '../../models/train/tokenizer_reference.json'), 'utf8'),
);

describe('ClipTokenizer on the bundled model (vocab.json + merges.txt, converted for @huggingface/tokenizers)', () => {
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    tokenizer = await ClipTokenizer.load(path.join(MODEL_DIR, 'tokenizer'));
  });

  it.each(reference.map((r) => [r.text, r.ids] as const))('encodes %j like the reference', (text, ids) => {
    expect(tokenizer.encode(text)).toEqual(ids);
  });

  it('pads to 77 with the pad token and keeps the end token when truncating', () => {
    expect(tokenizer.maxLength).toBe(77);
    const long = tokenizer.encode(Array(200).fill('red').join(' '));
    expect(long).toHaveLength(77);
    expect(long[0]).toBe(tokenizer.bosId);
    expect(long[76]).toBe(tokenizer.eosId);
    const short = tokenizer.encode('red');
    expect(short.slice(0, 3)).toEqual([tokenizer.bosId, expect.any(Number), tokenizer.eosId]);
    expect(short.slice(3).every((id) => id === tokenizer.padId)).toBe(true);
  });

  it('is case- and whitespace-insensitive, as CLIP normalizes', () => {
    expect(tokenizer.encode('  A RED   circle ')).toEqual(tokenizer.encode('a red circle'));
  });
});
