// The reference side of Hydraulis' tokenizer tests: runs npm gpt-3-encoder (the reference GPT-2
// encoder) and node's UTF-8 decoder on inputs written by tests/data/tokenizer_test.cpp.
//   node reference_encode.js encode <docs.jsonl>    one JSON array of token ids per {"content"} line
//   node reference_encode.js split <docs.jsonl>     the regex words of each doc, as a JSON array
//   node reference_encode.js decode-utf8 <hex.txt>  per line: hex bytes -> hex of the UTF-8 of
//                                                   Buffer.toString('utf8') (invalid -> U+FFFD)
// Output goes to stdout, one line per input line.
'use strict';
const fs = require('fs');
const path = require('path');

const [mode, file] = process.argv.slice(2);
if (!mode || !file) {
  console.error('usage: node reference_encode.js encode|split|decode-utf8 <file>');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);
const out = [];
if (mode === 'encode' || mode === 'split') {
  const encoder = require(path.join(__dirname, 'node_modules', 'gpt-3-encoder'));
  // The reference's own pattern (Encoder.js does not export it).
  const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  for (const line of lines) {
    const text = JSON.parse(line).content;
    if (mode === 'encode') out.push(JSON.stringify(encoder.encode(text)));
    else out.push(JSON.stringify(Array.from(text.matchAll(pat)).map((m) => m[0])));
  }
} else if (mode === 'decode-utf8') {
  for (const line of lines) {
    const decoded = Buffer.from(line.trim(), 'hex').toString('utf8');
    out.push(Buffer.from(decoded, 'utf8').toString('hex'));
  }
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
process.stdout.write(out.join('\n') + '\n');
