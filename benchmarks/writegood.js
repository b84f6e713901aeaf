// write-good, the peer of the docs benchmarks, driven from Python (benchmarks/docs_peer.py).
//
//   node writegood.js spans <check>                  stdin: JSON list of texts
//        stdout: JSON list, per text, of [start, end] spans write-good flags
//   node writegood.js time <check> <file> <rounds>   seconds for each round of one
//        write-good call on the whole file (after one warm-up call), as JSON
//
// <check> is "all" (write-good's default checks) or one check name ("passive",
// "weasel"): then only that check is on.
'use strict';

const fs = require('fs');
const writeGood = require('write-good');

// write-good's checks, and how to turn each off (its options are check: false).
const CHECKS = ['weasel', 'illusion', 'so', 'thereIs', 'passive', 'adverb', 'tooWordy', 'cliches'];

function options(check) {
  if (check === 'all') return {};
  if (!CHECKS.includes(check)) throw new Error(`unknown check ${check}`);
  const opts = {};
  for (const name of CHECKS) if (name !== check) opts[name] = false;
  return opts;
}

function spans(check) {
  const opts = options(check);
  const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = texts.map((text) =>
    writeGood(text, opts).map((s) => [s.index, s.index + s.offset]));
  process.stdout.write(JSON.stringify(out));
}

function time(check, file, rounds) {
  const opts = options(check);
  const text = fs.readFileSync(file, 'utf8');
  let found = writeGood(text, opts).length; // warm-up: the JIT compiles the regexes
  const seconds = [];
  for (let i = 0; i < rounds; i += 1) {
    const start = process.hrtime.bigint();
    found = writeGood(text, opts).length;
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  process.stdout.write(JSON.stringify({ seconds, found, node: process.version }));
}

const [mode, check, file, rounds] = process.argv.slice(2);
if (mode === 'spans') spans(check);
else if (mode === 'time') time(check, file, Number(rounds || 5));
else {
  process.stderr.write('usage: writegood.js spans <check> | time <check> <file> <rounds>\n');
  process.exit(2);
}
