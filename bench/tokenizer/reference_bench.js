// Times the reference GPT-2 encoder (npm gpt-3-encoder, as installed in tools/node) on the sample
// written by tokenizer_bench --sample-out: one cold pass (freshly loaded module, empty bpe cache)
// and `repeats` warm passes. Only the encode loop is timed (not file reading or JSON parsing).
// Prints JSON: MB/s (input UTF-8 bytes / 1e6 / s), token count and the ids' hash
// (h = h * 1000003 ^ id, 32-bit) that run.sh compares with ours.
// Usage: node bench/tokenizer/reference_bench.js <sample.jsonl> [repeats]
'use strict';
const fs = require('fs');
const path = require('path');

const [file, repeatsArg] = process.argv.slice(2);
const repeats = Number(repeatsArg || 2);
const docs = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0)
  .map((l) => JSON.parse(l).content);
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, 'utf8'), 0);
const { encode } = require(path.join(__dirname, '..', '..', 'tools', 'node', 'node_modules', 'gpt-3-encoder'));

function pass() {
  let tokens = 0;
  let hash = 0;
  const start = process.hrtime.bigint();
  for (const doc of docs) {
    const ids = encode(doc);
    tokens += ids.length;
    for (const id of ids) hash = (Math.imul(hash, 1000003) ^ id) >>> 0;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, tokens, hash };
}

const cold = pass();
const warm = [];
for (let r = 0; r < repeats; r++) warm.push(pass());
const median = (v) => v.map((p) => p.seconds).sort((a, b) => a - b)[Math.floor(v.length / 2)];
const mb = bytes / 1e6;
process.stdout.write(JSON.stringify({
  node: process.version,
  encoder: 'gpt-3-encoder ' + require(path.join(__dirname, '..', '..', 'tools', 'node', 'node_modules',
    'gpt-3-encoder', 'package.json')).version,
  docs: docs.length,
  text_bytes: bytes,
  tokens: cold.tokens,
  ids_hash: cold.hash,
  cold_seconds: [cold.seconds],
  warm_seconds: warm.map((p) => p.seconds),
  cold_mb_per_s: mb / cold.seconds,
  warm_mb_per_s: warm.length ? mb / median(warm) : null,
}) + '\n');
