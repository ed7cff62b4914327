// The patient's side in an ES module: seal a record, stream a larger one
// through a TransformStream, grant a doctor (plain and 2-of-3 threshold),
// and open as the doctor. Under Node, after building the package
// (bindings/wasm/README: `wasm-bindgen --target nodejs --out-dir pkg`):
//
//   node bindings/wasm/examples/seal_and_grant.mjs
//
// In a browser, build with `--target web` and `import init, * as sesphr
// from './pkg/sesphr_wasm.js'; await init();` — the calls are the same.
import sesphr from '../pkg/sesphr_wasm.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

// The patient's keys (kept as a text backup, for paper) and a record.
const patient = sesphr.PatientKeys.generate('patient-0042');
const backup = patient.toBackupText();
const lab = patient.portionPublicKey('lab', 0);
const record = sesphr.seal(lab, enc.encode('HbA1c 5.4%'), new Uint8Array(), 0);

// A larger record sealed as it streams in.
const sealer = new sesphr.Sealer(patient.portionPublicKey('imaging', 0), new Uint8Array(), 0);
const scan = new ReadableStream({
  start(c) {
    for (let i = 0; i < 32; i++) c.enqueue(new Uint8Array(64 * 1024).fill(i));
    c.close();
  },
});
const sealedParts = [sealer.header];
for await (const part of scan.pipeThrough(
  new TransformStream({
    transform: (chunk, c) => c.enqueue(sealer.push(chunk)),
    flush: (c) => c.enqueue(sealer.finish()),
  }),
)) {
  sealedParts.push(part);
}
const scanBytes = sealedParts.reduce((n, p) => n + p.length, 0);

// A doctor; the patient signs a grant with its re-encryption key (both go
// to the SRS), and splits another among three SRS nodes.
const doctor = sesphr.KeyPair.generate();
const rekey = sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey);
const grant = patient.signGrant('lab', 0, 'dr-house', rekey, 0, 0);
const split = rekey.split(2, 3);
const shareGrant = patient.signShareGrant('lab', 0, 'dr-house', split.commitments, 0, 0);

// The doctor opens what the SRS re-encrypted (here: the re-key itself),
// and, from two of the three nodes, the threshold way.
const opened = doctor.openAsDelegatee(record, rekey.reencrypt(sesphr.header(record)));
const opener = new sesphr.ThresholdOpener(doctor, shareGrant, split.commitments, patient.consentPublicKey());
const answers = [2, 3].map((n) => split.reencryptAs(n, record));
const fromNodes = opener.open(record, Uint8Array.from([2, 3]), answers);

console.log(`backup: ${backup.length} characters (${backup.slice(0, 15)}…)`);
console.log(`record: ${record.length} bytes sealed; scan: ${scanBytes} bytes sealed while streaming`);
console.log(`grant: ${grant.length} bytes, threshold grant: ${shareGrant.length} bytes`);
console.log(`doctor reads: ${dec.decode(opened)}; from nodes 2 and 3: ${dec.decode(fromNodes)}`);
