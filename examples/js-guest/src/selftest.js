// Checks the pure-JS SHA-256 against FIPS 180-4 vectors and Node's own, in Node:
//   node examples/js-guest/src/selftest.js
import { createHash } from 'node:crypto';
import { sha256, hex } from './sha256.js';

const cases = [
  ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
];
let failed = 0;
for (const [input, want] of cases) {
  const got = hex(sha256(input));
  if (got !== want) { failed++; console.error(`sha256(${JSON.stringify(input)}) = ${got}, want ${want}`); }
}
for (let n = 0; n < 300; n++) {
  const s = 'x'.repeat(n) + 'é✓';
  const want = createHash('sha256').update(s, 'utf8').digest('hex');
  if (hex(sha256(s)) !== want) { failed++; console.error(`length ${n}: mismatch`); }
}
if (failed) { console.error(`${failed} failed`); process.exit(1); }
console.log('sha256: all vectors pass');
