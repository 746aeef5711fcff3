/**
 * CLIP text tokenization for Stable Diffusion text encoders, done by @huggingface/tokenizers.
 *
 * A model folder's `tokenizer/` holds either a fast `tokenizer.json`, or (as Optimum exports of
 * SD do) the slow tokenizer's `vocab.json` + `merges.txt`. For the latter we assemble the same
 * tokenizer.json that transformers' CLIPTokenizerFast conversion produces, and hand it to the
 * library: the BPE itself is never ours.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

type Json = Record<string, unknown>;

/** CLIP's pre-tokenizer pattern (transformers' CLIPConverter). */
const CLIP_SPLIT =
  "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

function tokenName(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') {
    return (value as Json).content as string;
  }
  return fallback;
}

/** tokenizer.json for a slow CLIP tokenizer (vocab.json + merges.txt). */
export function clipTokenizerJson(vocab: Record<string, number>, merges: string[], config: Json): Json {
  const bos = tokenName(config.bos_token, '<|startoftext|>');
  const eos = tokenName(config.eos_token, '<|endoftext|>');
  const special = (content: string) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: true,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(bos), special(eos)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [eos, vocab[eos]],
      cls: [bos, vocab[bos]],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: tokenName(config.unk_token, eos),
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

export class ClipTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** Sequence length the text encoder takes (model_max_length, 77 for SD). */
    readonly maxLength: number,
    readonly bosId: number,
    readonly eosId: number,
    readonly padId: number,
  ) {}

  static async load(dir: string): Promise<ClipTokenizer> {
    const read = async (name: string) => JSON.parse(await readFile(path.join(dir, name), 'utf8')) as Json;
    const config = existsSync(path.join(dir, 'tokenizer_config.json')) ? await read('tokenizer_config.json') : {};
    let spec: Json;
    if (existsSync(path.join(dir, 'tokenizer.json'))) {
      spec = await read('tokenizer.json');
    } else {
      const vocab = (await read('vocab.json')) as Record<string, number>;
      const merges = (await readFile(path.join(dir, 'merges.txt'), 'utf8'))
        .split('\n')
        .filter((line) => line.length > 0 && !line.startsWith('#version'));
      spec = clipTokenizerJson(vocab, merges, config);
    }
    const tokenizer = new Tokenizer(spec as never, config as never);
    const idOf = (token: string) => {
      const id = tokenizer.token_to_id(token);
      if (id === undefined) throw new Error(`tokenizer in ${dir} has no token ${token}`);
      return id;
    };
    const bos = idOf(tokenName(config.bos_token, '<|startoftext|>'));
    const eos = idOf(tokenName(config.eos_token, '<|endoftext|>'));
    const pad = idOf(tokenName(config.pad_token, tokenName(config.eos_token, '<|endoftext|>')));
    const maxLength = typeof config.model_max_length === 'number' && config.model_max_length < 1e6 ? config.model_max_length : 77;
    return new ClipTokenizer(tokenizer, maxLength, bos, eos, pad);
  }

  /** Token ids padded (or truncated, keeping the end token) to exactly maxLength, as SD pipelines do. */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text).ids;
    const out = ids.length > this.maxLength ? [...ids.slice(0, this.maxLength - 1), this.eosId] : [...ids];
    while (out.length < this.maxLength) out.push(this.padId);
    return out;
  }
}
