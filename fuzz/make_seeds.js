// Builds the seed corpora of the fuzz targets from real files (data/gpt2, data/corpora/*.jsonl,
// configs/scheme_space/*.json, docs/planner.md, a dataset and plans made by the real binary).
// Usage: node fuzz/make_seeds.js <hydraulis binary> <output dir>   (from the repository root)
// Writes <output dir>/<target>/<name> files; docs/reliability.md lists what each target gets.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { execFileSync, spawnSync } = require('child_process');

const [hydraulis, out] = process.argv.slice(2);
if (!hydraulis || !out) {
  console.error('usage: node fuzz/make_seeds.js <hydraulis binary> <output dir>');
  process.exit(2);
}

function seed(target, name, bytes) {
  const dir = path.join(out, target);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), bytes);
}

// The shortest `n` records of a JSONL corpus (long documents slow the fuzzer without new paths).
function shortestLines(file, n) {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
  return lines.sort((a, b) => a.length - b.length).slice(0, n);
}

const corpora = ['web', 'code'].map((c) => `data/corpora/${c}.jsonl`);
const records = corpora.flatMap((f) => shortestLines(f, 12));

// corpus_reader: single records, a multi-record file, a JSON array, gzip and zstd streams.
records.forEach((line, i) => seed('corpus_reader', `record_${i}.jsonl`, line + '\n'));
const corpusText = records.slice(0, 6).join('\n') + '\n';
seed('corpus_reader', 'corpus.jsonl', corpusText);
seed('corpus_reader', 'array.json', '[' + records.slice(0, 4).join(',\n') + ']\n');
seed('corpus_reader', 'corpus.jsonl.gz', zlib.gzipSync(Buffer.from(corpusText)));
seed('corpus_reader', 'corpus.jsonl.zst',
     execFileSync('zstd', ['-q', '-c', '-'], { input: Buffer.from(corpusText) }));

// tokenizer: document text (valid UTF-8) and a few invalid byte sequences.
records.forEach((line, i) => seed('tokenizer', `text_${i}.txt`, JSON.parse(line).content.slice(0, 600)));
seed('tokenizer', 'invalid_utf8.bin', Buffer.from([0x48, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0x20,
                                                   0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0x80]));

// gpt2_files: an excerpt of the real vocabulary (ids 0..299, the 256 byte tokens and the first
// merged tokens, then <|endoftext|> as id 300) with the merges that stay inside it.
const vocab = JSON.parse(fs.readFileSync('data/gpt2/vocab.json', 'utf8'));
const keep = 300;
const excerpt = {};
for (const [token, id] of Object.entries(vocab)) if (id < keep) excerpt[token] = id;
excerpt['<|endoftext|>'] = keep;
const mergeLines = fs.readFileSync('data/gpt2/merges.txt', 'utf8').split('\n');
const merges = [mergeLines[0]];
for (const line of mergeLines.slice(1)) {
  const [a, b] = line.split(' ');
  if (a === undefined || b === undefined) continue;
  if (a in excerpt && b in excerpt && (a + b) in excerpt) merges.push(line);
}
const vocabText = JSON.stringify(excerpt);
seed('gpt2_files', 'excerpt', vocabText + '\0' + merges.join('\n') + '\n');
seed('gpt2_files', 'excerpt_no_merges', vocabText + '\0' + merges[0] + '\n');
seed('gpt2_files', 'excerpt_no_newline', vocabText + '\0' + merges.slice(0, 10).join('\n'));

// indexed_dataset: a dataset prepared by the real binary from the shortest records, as
// [u32 little-endian .idx size][.idx][.bin]; one with --append-eod and a single-record one.
const work = fs.mkdtempSync(path.join(require('os').tmpdir(), 'hydraulis-seeds-'));
function prepare(name, lines, extra) {
  const input = path.join(work, `${name}.jsonl`);
  fs.writeFileSync(input, lines.join('\n') + '\n');
  const prefix = path.join(work, name);
  const run = spawnSync(hydraulis, ['data', 'prepare', '--input', input, '--vocab',
    'data/gpt2/vocab.json', '--merges', 'data/gpt2/merges.txt', '--output-prefix', prefix,
    '--quiet', ...extra], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`data prepare failed: ${run.stderr}`);
  const idx = fs.readFileSync(prefix + '.idx');
  const size = Buffer.alloc(4);
  size.writeUInt32LE(idx.length);
  seed('indexed_dataset', name, Buffer.concat([size, idx, fs.readFileSync(prefix + '.bin')]));
}
prepare('five_docs', records.slice(0, 5), []);
prepare('eod', records.slice(5, 8), ['--append-eod']);
prepare('one_doc', records.slice(8, 9), []);

// scheme_space: the reference scheme spaces.
for (const f of fs.readdirSync('configs/scheme_space').filter((f) => f.endsWith('.json'))) {
  seed('scheme_space', f, fs.readFileSync(path.join('configs/scheme_space', f)));
}

// profile: the recorded profiles of `hydraulis profile` (CPU, 1, 2 and 4 ranks; a noisy one) and
// the H200 profile of 1b.
for (const dir of ['tests/planner/data', 'configs/profiles', 'bench/train/results_e2e_1b_h200']) {
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith('profile') || dir === 'configs/profiles')) {
    seed('profile', f, fs.readFileSync(path.join(dir, f)));
  }
}

// strategy_list: the lists of docs/planner.md and the forms the parser documents.
const planner = fs.readFileSync('docs/planner.md', 'utf8');
const lists = planner.match(/\[\[[^\]`]*\](?:\s*,\s*\[[^\]`]*\])*\s*\]/g) || [];
const strategies = [...new Set(lists), '[[(1, 16, 1), (1, 8, 3)], [(1, 4, 2), (2, 4, 1)]]',
  '[[(8, 1)], [(4, 1), (2, 2), (1, 1)]]', '[\n [(1, 2, 1),],\n\t[(2, 1, 1), (1, 2)],\n]'];
strategies.forEach((s, i) => seed('strategy_list', `list_${i}`, s));

// batches: global batches of real document lengths (tokens of the prepared records ~ bytes/4).
const lengths = records.map((l) => Math.max(1, Math.round(JSON.parse(l).content.length / 4)));
const batches = [lengths.slice(0, 8), lengths.slice(8, 16), lengths.slice(16)];
seed('batches', 'three_batches.json', JSON.stringify(batches));
seed('batches', 'pretty.json', JSON.stringify(batches, null, 2));

// plan_jsonl: plans written by `hydraulis plan` for those batches (when the subcommand runs),
// plus a hand-written line of the design.md form.
const batchesFile = path.join(work, 'batches.json');
fs.writeFileSync(batchesFile, JSON.stringify(batches));
for (const method of ['4', '0', '1']) {
  const planFile = path.join(work, `plan_${method}.jsonl`);
  const plan = spawnSync(hydraulis, ['plan', '--scheme-space',
    'configs/scheme_space/parallel_scheme_space_7b.json', '--num-gpus', '8', '--strategies',
    '[[(1, 2, 1), (1, 2, 1), (1, 2, 1), (1, 2, 1)], [(1, 4, 1), (1, 2, 2)]]', '--batches',
    batchesFile, '--method', method, '--max-seq-len', '16384', '--output', planFile],
    { encoding: 'utf8' });
  if (plan.status !== 0) {
    console.error(`make_seeds: hydraulis plan --method ${method} failed (seed skipped):\n${plan.stderr}`);
    continue;
  }
  seed('plan_jsonl', `method_${method}.jsonl`, fs.readFileSync(planFile));
}
seed('plan_jsonl', 'design_form.jsonl', JSON.stringify({ batch: 0, strategy: 1,
  estimated_ms: 12.5, lower_bound_ms: 11.0, planning_ms: 0.4, pipelines: [
    { scheme: [1, 2, 1], max_tokens: 16384, estimated_ms: 12.5, micro_batches: [[0, 2], [1]] },
    { scheme: [1, 1, 2], max_tokens: 8192, estimated_ms: 0, micro_batches: [] }] }) + '\n');

// checkpoint: a real checkpoint written by `hydraulis train` (tiny, 1 step, 87 MB) is too large
// to mutate, so the seeds are small checkpoints cut from it: its metadata (training settings,
// sampler state, step counts) with a 1- or 2-layer model of width 4, and its real tensor values
// (the first elements of the same parameter and role), in the layout of docs/formats.md, once with
// the real 1 MiB chunk and once with 16-byte chunks (so tensors span several checksums).
function crc32c(bytes, previous = 0) {
  if (!crc32c.table) {
    crc32c.table = new Uint32Array(256);
    for (let b = 0; b < 256; ++b) {
      let r = b;
      for (let i = 0; i < 8; ++i) r = r & 1 ? (r >>> 1) ^ 0x82f63b78 : r >>> 1;
      crc32c.table[b] = r >>> 0;
    }
  }
  let state = ~previous >>> 0;
  for (const byte of bytes) state = (crc32c.table[(state ^ byte) & 0xff] ^ (state >>> 8)) >>> 0;
  return ~state >>> 0;
}
function specs(model) {
  const { hidden: C, ffn_hidden: F, vocab_size: V, num_heads: H, num_kv_heads: K } = model;
  const D = C / H;
  const list = [['model.embed_tokens.weight', [V, C]]];
  for (let i = 0; i < model.num_layers; ++i) {
    const p = `model.layers.${i}.`;
    list.push([p + 'input_layernorm.weight', [C]], [p + 'self_attn.q_proj.weight', [H * D, C]],
              [p + 'self_attn.k_proj.weight', [K * D, C]], [p + 'self_attn.v_proj.weight', [K * D, C]],
              [p + 'self_attn.o_proj.weight', [C, H * D]], [p + 'post_attention_layernorm.weight', [C]],
              [p + 'mlp.gate_up_proj.weight', [2 * F, C]], [p + 'mlp.down_proj.weight', [C, F]]);
  }
  list.push(['model.norm.weight', [C]]);
  if (model.lm_head === 'untied') list.push(['lm_head.weight', [V, C]]);
  return list;
}
function checkpointSeed(real, model, chunk) {
  const metaBytes = Number(real.readBigUInt64LE(16));
  const meta = JSON.parse(real.subarray(32, 32 + metaBytes).toString('utf8'));
  const realOffsets = {};
  const dataStart = Math.ceil((32 + metaBytes) / 64) * 64;
  for (const t of meta.tensors) realOffsets[t.name + '/' + t.role] = dataStart + t.offset;
  const roles = ['value', 'exp_avg', 'exp_avg_sq'];
  const tensors = [], blobs = [];
  let offset = 0;
  for (const role of roles) {
    for (const [name, shape] of specs(model)) {
      const bytes = 4 * shape.reduce((a, b) => a * b, 1);
      // Layer 1 takes layer 0's values; an untied head the (tied) real embedding's.
      const from = name.replace(/layers\.1\./, 'layers.0.').replace('lm_head', 'model.embed_tokens');
      const source = realOffsets[from + '/' + role];
      const data = Buffer.from(real.subarray(source, source + bytes));
      const crcs = Buffer.alloc(4 * Math.ceil(bytes / chunk));
      for (let c = 0; c * chunk < bytes; ++c) {
        crcs.writeUInt32LE(crc32c(data.subarray(c * chunk, Math.min(bytes, (c + 1) * chunk))), 4 * c);
      }
      tensors.push({ name, role, shape, offset, bytes });
      blobs.push(data, crcs);
      offset += bytes + crcs.length;
    }
  }
  meta.model = model;
  meta.tensors = tensors;
  const json = Buffer.from(JSON.stringify(meta));
  const header = Buffer.alloc(32);
  header.write('HYDCKPT\0', 0, 'latin1');
  header.writeUInt32LE(1, 8);
  header.writeUInt32LE(chunk, 12);
  header.writeBigUInt64LE(BigInt(json.length), 16);
  header.writeUInt32LE(crc32c(json), 24);
  header.writeUInt32LE(crc32c(header.subarray(0, 28)), 28);
  const pad = Buffer.alloc(Math.ceil((32 + json.length) / 64) * 64 - 32 - json.length);
  const footer = Buffer.alloc(16);
  footer.write('HYDCKEND', 0, 'latin1');
  footer.writeBigUInt64LE(BigInt(tensors.length), 8);
  return Buffer.concat([header, json, pad, ...blobs, footer]);
}
const trainDir = path.join(work, 'train');
const ckRun = spawnSync(hydraulis, ['train', '--model', 'tiny', '--data', path.join(work, 'five_docs'),
  '--steps', '1', '--global-token-num', '64', '--max-seq-len', '32', '--checkpoint-dir', trainDir],
  { encoding: 'utf8' });
if (ckRun.status !== 0) {
  console.error(`make_seeds: hydraulis train failed (checkpoint seeds skipped):\n${ckRun.stderr}`);
} else {
  const real = fs.readFileSync(path.join(trainDir, 'step-00000001', 'checkpoint.hcp'));
  const small = { name: 'seed', num_layers: 1, hidden: 4, num_heads: 2, num_kv_heads: 1,
    ffn_hidden: 4, vocab_size: 8, max_seq_len: 16, rope_theta: 10000.0, norm_eps: 1e-5,
    lm_head: 'untied' };
  seed('checkpoint', 'one_layer.hcp', checkpointSeed(real, small, 1 << 20));
  seed('checkpoint', 'one_layer_16b_chunks.hcp', checkpointSeed(real, small, 16));
  seed('checkpoint', 'two_layers_tied.hcp',
       checkpointSeed(real, { ...small, num_layers: 2, lm_head: 'tied' }, 64));
  seed('checkpoint', 'real_header_and_metadata.hcp',
       real.subarray(0, Math.ceil((32 + Number(real.readBigUInt64LE(16))) / 64) * 64));
}

fs.rmSync(work, { recursive: true, force: true });
