// Streaming, threshold opening and key backups under Node, through the
// wasm build. Run: node --test tests/
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const sesphr = require('../pkg/sesphr_wasm.js');

const { kindOf } = require('./helpers.cjs');

/** A ReadableStream of `total` pseudo-random bytes in uneven chunks, and their hash. */
function source(total, seed) {
  const hash = crypto.createHash('sha256');
  let left = total;
  let n = 0;
  const stream = new ReadableStream({
    pull(c) {
      if (left === 0) {
        c.close();
        return;
      }
      const size = Math.min(left, 1 + ((n++ * 7919 + seed) % 200000));
      const chunk = crypto.randomBytes(size);
      hash.update(chunk);
      left -= size;
      c.enqueue(new Uint8Array(chunk));
    },
  });
  return { stream, hash };
}

/** A TransformStream running `push` on each chunk and `finish` at the end. */
const through = (x) =>
  new TransformStream({
    transform(chunk, c) {
      const out = x.push(chunk);
      if (out.length) c.enqueue(out);
    },
    flush(c) {
      const out = x.finish();
      if (out.length) c.enqueue(out);
    },
  });

async function collect(stream) {
  const parts = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

test('a ReadableStream sealed and opened on the fly, by the owner and a granted user', async () => {
  const patient = sesphr.PatientKeys.generate('patient-stream');
  const total = 5 * 1024 * 1024 + 321;
  const { stream, hash } = source(total, 3);
  const sealer = new sesphr.Sealer(patient.portionPublicKey('imaging', 0), new Uint8Array(), 0);
  const header = sealer.header;
  const body = await collect(stream.pipeThrough(through(sealer)));
  const sealed = new Uint8Array(Buffer.concat([header, body]));
  // The in-memory form opens the same bytes.
  assert.equal(patient.openAsOwner(sealed).length, total);

  // Owner, fed in odd slices.
  const opener = sesphr.Opener.forOwner(patient);
  const slices = new ReadableStream({
    start(c) {
      for (let i = 0; i < sealed.length; i += 99991) c.enqueue(sealed.subarray(i, i + 99991));
      c.close();
    },
  });
  const plain = await collect(slices.pipeThrough(through(opener)));
  assert.equal(crypto.createHash('sha256').update(plain).digest('hex'), hash.digest('hex'));

  // A granted user, with what the SRS would return for the header.
  const doctor = sesphr.KeyPair.generate();
  const rc = sesphr.ReKey.generate(patient, 'imaging', 0, doctor.publicKey).reencrypt(header);
  const d = sesphr.Opener.forDelegatee(doctor, rc);
  const got = Buffer.concat([Buffer.from(d.push(sealed)), Buffer.from(d.finish())]);
  assert.ok(got.equals(plain));

  // A flipped body byte, a cut end, no header: refused.
  const tampered = Uint8Array.from(sealed);
  tampered[header.length + 5000] ^= 1;
  const t = sesphr.Opener.forOwner(patient);
  assert.equal(kindOf(() => { t.push(tampered); t.finish(); }), 'decryption_failed');
  const cut = sesphr.Opener.forOwner(patient);
  cut.push(sealed.subarray(0, sealed.length - 10));
  assert.equal(kindOf(() => cut.finish()), 'decryption_failed');
  const none = sesphr.Opener.forOwner(patient);
  none.push(sealed.subarray(0, 10));
  assert.equal(kindOf(() => none.finish()), 'invalid_length');
  // A finished sealer stays finished.
  assert.equal(kindOf(() => sealer.push(new Uint8Array(1))), 'invalid_state');
});

test('threshold: 2 of 3 nodes, one lying, opened at once and streamed', () => {
  const patient = sesphr.PatientKeys.generate('patient-t');
  const doctor = sesphr.KeyPair.generate();
  const rekey = sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey);
  const split = rekey.split(2, 3);
  assert.equal(split.count, 3);
  const grant = patient.signShareGrant('lab', 0, 'dr-t', split.commitments, 0, 0);
  const opener = new sesphr.ThresholdOpener(doctor, grant, split.commitments, patient.consentPublicKey());
  const sealed = sesphr.seal(patient.portionPublicKey('lab', 0), new TextEncoder().encode('ferritin 12'), new Uint8Array(), 0);
  const a = [1, 2, 3].map((n) => split.reencryptAs(n, sealed));
  assert.equal(new TextDecoder().decode(opener.open(sealed, Uint8Array.from([1, 2]), [a[0], a[1]])), 'ferritin 12');
  // Node 1 answers with node 3's share: set aside; 2 and 3 open.
  const o = opener.opener(Uint8Array.from([1, 2, 3]), [a[2], a[1], a[2]]);
  const out = Buffer.concat([Buffer.from(o.push(sealed)), Buffer.from(o.finish())]);
  assert.equal(out.toString(), 'ferritin 12');
  assert.deepEqual([...o.used], [2, 3]);
  assert.ok([...o.badNodes].includes(1));
  assert.equal(kindOf(() => opener.open(sealed, Uint8Array.from([1]), [a[0]])), 'too_few_shares');
  assert.equal(kindOf(() => opener.open(sealed, Uint8Array.from([1, 2]), [a[0]])), 'invalid_argument');
  assert.equal(kindOf(() => split.share(4)), 'invalid_argument');
  // Another user cannot make an opener of this grant.
  assert.equal(
    kindOf(() => new sesphr.ThresholdOpener(sesphr.KeyPair.generate(), grant, split.commitments, patient.consentPublicKey())),
    'key_mismatch',
  );
});

test('key backups: text for paper, a mistyped character refused', () => {
  const patient = sesphr.PatientKeys.generate('patient-b');
  const text = patient.toBackupText();
  assert.ok(text.startsWith('sesphr-patient1'));
  assert.deepEqual(sesphr.PatientKeys.fromBackupText(text).portionPublicKey('lab', 0), patient.portionPublicKey('lab', 0));
  const swap = text.slice(0, 30) + (text[30] === 'q' ? 'p' : 'q') + text.slice(31);
  assert.equal(kindOf(() => sesphr.PatientKeys.fromBackupText(swap)), 'bad_checksum');

  const user = sesphr.KeyPair.generate();
  assert.deepEqual(sesphr.KeyPair.fromBackup(user.toBackup()).publicKey, user.publicKey);
  const t = user.toBackupText();
  assert.ok(t.startsWith('sesphr-secret1'));
  assert.deepEqual(sesphr.KeyPair.fromBackupText(t).publicKey, user.publicKey);
  const b = user.toBackup();
  b[b.length - 1] ^= 1;
  assert.equal(kindOf(() => sesphr.KeyPair.fromBackup(b)), 'bad_checksum');
});
