// Speed under Node of the wasm build, beside native Rust measured on the
// same machine in the same run (through the Python wheel's native timer:
// `python3 -c ...` prints seconds per op). No target; the figures are
// published in the closing note and docs/BENCHMARKS.md.
//   node bindings/wasm/bench.cjs [PYTHON-WITH-SESPHR]
'use strict';
const { execFileSync } = require('node:child_process');
const sesphr = require('./pkg/sesphr_wasm.js');

function best(f, n, repeats = 7) {
  let b = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    b = Math.min(b, Number(process.hrtime.bigint() - t) / 1e9 / n);
  }
  return b;
}

const patient = sesphr.PatientKeys.generate('patient-bench');
const doctor = sesphr.KeyPair.generate();
const ppk = patient.portionPublicKey('lab', 0);
const data = new Uint8Array(32).fill(7);
const none = new Uint8Array();
const sealed = sesphr.seal(ppk, data, none, 1);
const rekey = sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey);
const rc = rekey.reencrypt(sealed);
const cases = {
  seal32: [() => sesphr.seal(ppk, data, none, 1), 200],
  open_delegatee: [() => doctor.openAsDelegatee(sealed, rc), 200],
  sign_grant: [() => patient.signGrant('lab', 0, 'dr-bench', sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey), 0, 0), 100],
};
const python = process.argv[2] || 'python3';
console.log('| operation | wasm (Node) | native Rust | ratio |');
console.log('|---|---:|---:|---:|');
for (const [name, [f, n]] of Object.entries(cases)) {
  const wasm = best(f, n);
  const native = Number(execFileSync(python, ['-c',
    `from sesphr import _sesphr; print(min(_sesphr._native_seconds_per_op("${name}", ${n}) for _ in range(7)))`]).toString());
  console.log(`| ${name} | ${(wasm * 1e6).toFixed(1)} µs | ${(native * 1e6).toFixed(1)} µs | ${(wasm / native).toFixed(2)}× |`);
}
