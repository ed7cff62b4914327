// The patient's and the reader's side under Node, through the wasm build
// (`pkg/`, made by wasm-bindgen --target nodejs). Run: node --test tests/
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const sesphr = require('../pkg/sesphr_wasm.js');

const root = path.resolve(__dirname, '..', '..', '..');
const enc = (s) => new TextEncoder().encode(s);
const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'));

const { kindOf } = require('./helpers.cjs');

test('seal, grant, re-encrypt, open, revoke', () => {
  const patient = sesphr.PatientKeys.generate('patient-0042');
  const doctor = sesphr.KeyPair.generate();
  const lab = patient.portionPublicKey('lab', 0);
  const sealed = sesphr.seal(lab, enc('HbA1c 5.4%'), new Uint8Array(), 0);
  assert.deepEqual(patient.openAsOwner(sealed), enc('HbA1c 5.4%'));

  const rekey = sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey);
  const grant = patient.signGrant('lab', 0, 'dr-house', rekey, 0, 0);
  assert.ok(grant.length > 100);
  const registration = patient.registration(['lab', 'medical'], 0);
  assert.ok(registration.length > 100);
  const proof = doctor.provePossession('dr-house');
  assert.equal(proof.length, 64);
  const revocation = patient.signRevocation('lab', 'dr-house');
  assert.ok(revocation.length > 64);

  // What the SRS does with the rekey, done here: the header alone.
  const rc = rekey.reencrypt(sesphr.header(sealed));
  assert.deepEqual(doctor.openAsDelegatee(sealed, rc), enc('HbA1c 5.4%'));
  const stranger = sesphr.KeyPair.generate();
  assert.equal(kindOf(() => stranger.openAsDelegatee(sealed, rc)), 'decryption_failed');
});

test('keys export and import; secrets round-trip', () => {
  const patient = sesphr.PatientKeys.generate('patient-7');
  const again = sesphr.PatientKeys.fromBytes(patient.toBytes());
  assert.equal(again.identity, 'patient-7');
  assert.deepEqual(again.portionPublicKey('lab', 2), patient.portionPublicKey('lab', 2));
  const user = sesphr.KeyPair.generate();
  assert.deepEqual(sesphr.KeyPair.fromSecretBytes(user.secretBytes()).publicKey, user.publicKey);
});

test('wrong key, tampered byte and forged objects are refused with their kind', () => {
  const patient = sesphr.PatientKeys.generate('patient-0042');
  const sealed = sesphr.seal(patient.portionPublicKey('lab', 0), enc('x'), new Uint8Array(), 0);
  const tampered = Uint8Array.from(sealed);
  tampered[tampered.length - 1] ^= 1;
  assert.equal(kindOf(() => patient.openAsOwner(tampered)), 'decryption_failed');
  const other = sesphr.PatientKeys.generate('patient-0042');
  // Another patient's keys: the header names a portion key that is not theirs.
  assert.equal(kindOf(() => other.openAsOwner(sealed)), 'key_mismatch');
  assert.equal(kindOf(() => sesphr.PatientKeys.fromBytes(enc('nope'))), 'invalid_length');
  assert.equal(kindOf(() => sesphr.PatientKeys.generate('')), 'invalid_identity');
  assert.equal(kindOf(() => sesphr.KeyPair.fromSecretBytes(new Uint8Array(31))), 'invalid_length');
  const key = patient.portionPublicKey('lab', 0);
  assert.equal(kindOf(() => sesphr.seal(key, enc('x'), new Uint8Array(), -1)), 'invalid_argument');
  assert.equal(kindOf(() => sesphr.seal(key, enc('x'), new Uint8Array(), 1.5)), 'invalid_argument');
});

test('the SRS receipt, checkpoint and disclosure report verify; any flipped byte does not', () => {
  const f = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'srs.json'), 'utf8'));
  const key = hex(f.srs_key);
  sesphr.verifyReceipt(hex(f.receipt), key);
  sesphr.verifyCheckpoint(hex(f.checkpoint), key);
  assert.equal(sesphr.verifyDisclosureReport(hex(f.report), key), Number(f.disclosures));
  for (const [name, verify] of [
    ['receipt', sesphr.verifyReceipt],
    ['checkpoint', sesphr.verifyCheckpoint],
    ['report', sesphr.verifyDisclosureReport],
  ]) {
    const bytes = hex(f[name]);
    for (let i = 0; i < bytes.length; i += Math.max(1, Math.floor(bytes.length / 97))) {
      const forged = Uint8Array.from(bytes);
      forged[i] ^= 0x01;
      assert.throws(() => verify(forged, key), (e) => typeof e.kind === 'string', `${name} byte ${i}`);
    }
  }
  const wrongKey = Uint8Array.from(key);
  wrongKey[0] ^= 1;
  assert.throws(() => sesphr.verifyReceipt(hex(f.receipt), wrongKey));
});

// The cases of a vector file (tests/vectors/NAME): hex values decoded,
// epoch, created_at and threshold as numbers.
function readVectors(name) {
  const text = fs.readFileSync(path.join(root, 'tests', 'vectors', name), 'utf8');
  const cases = [];
  let c = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('[case ')) {
      c = {};
      cases.push(c);
      continue;
    }
    const [k, v] = line.split('=').map((x) => x.trim());
    c[k] = ['epoch', 'created_at', 'threshold'].includes(k) ? Number(v) : hex(v);
  }
  return cases;
}

test('every vector of tests/vectors/sesphr-v1.txt', () => {
  const cases = readVectors('sesphr-v1.txt');
  assert.ok(cases.length >= 3);
  for (const v of cases) {
    const patient = sesphr.PatientKeys.fromBytes(v.patient_keys);
    const label = new TextDecoder().decode(v.label);
    assert.deepEqual(patient.portionPublicKey(label, v.epoch), v.portion_public_key);
    assert.deepEqual(patient.consentPublicKey(), v.consent_public);
    assert.deepEqual(patient.openAsOwner(v.sealed_portion), v.plaintext);
    const user = sesphr.KeyPair.fromSecretBytes(v.user_secret);
    assert.deepEqual(user.publicKey, v.user_public);
    const rekey = sesphr.ReKey.fromBytes(v.rekey);
    assert.deepEqual(rekey.reencrypt(v.header), v.recapsule);
    assert.deepEqual(user.openAsDelegatee(v.sealed_portion, v.recapsule_with_proof), v.plaintext);
    assert.deepEqual(sesphr.header(v.sealed_portion), v.header);
    // Key backups (text values are stored as hex of their ASCII).
    const ascii = (b) => new TextDecoder().decode(b);
    assert.deepEqual(sesphr.PatientKeys.fromBackupText(ascii(v.patient_keys_text)).toBytes(), v.patient_keys);
    assert.deepEqual(sesphr.KeyPair.fromBackup(v.user_secret_backup).publicKey, v.user_public);
    assert.deepEqual(sesphr.KeyPair.fromBackupText(ascii(v.user_secret_backup_text)).publicKey, v.user_public);
    // The share grant makes the user's threshold opener of the commitments.
    assert.ok(new sesphr.ThresholdOpener(user, v.signed_share_grant, v.share_commitments, v.consent_public));
  }
});

test('hybrid (post-quantum): every vector of tests/vectors/sesphr-v2-hybrid.txt, and sealing hybrid', () => {
  const all = readVectors('sesphr-v2-hybrid.txt');
  assert.equal(all.length, 3);
  // A split case (σ shared 2 of 3 among threshold nodes): the key from
  // the nodes' keys, the owner's open, the header.
  const splits = all.filter((v) => v.threshold !== undefined);
  assert.equal(splits.length, 1);
  for (const v of splits) {
    const label = new TextDecoder().decode(v.label);
    const patient = sesphr.PatientKeys.fromBytes(v.patient_keys);
    const nodes = new Uint8Array([...v.node_1_pq_public, ...v.node_2_pq_public, ...v.node_3_pq_public]);
    assert.deepEqual(patient.hybridPortionPublicKeySplit(label, v.epoch, v.threshold, nodes), v.hybrid_portion_key);
    assert.equal(kindOf(() => patient.hybridPortionPublicKeySplit(label, v.epoch, 4, nodes)), 'invalid_threshold');
    assert.equal(kindOf(() => patient.hybridPortionPublicKeySplit(label, v.epoch, 2, nodes.slice(1))), 'invalid_length');
    assert.deepEqual(patient.openAsOwner(v.sealed_portion), v.plaintext);
    assert.deepEqual(sesphr.header(v.sealed_portion), v.header);
  }
  const cases = all.filter((v) => v.threshold === undefined);
  for (const v of cases) {
    const label = new TextDecoder().decode(v.label);
    const patient = sesphr.PatientKeys.fromBytes(v.patient_keys);
    assert.deepEqual(patient.openAsOwner(v.sealed_portion), v.plaintext);
    assert.deepEqual(patient.hybridPortionPublicKey(label, v.epoch, v.srs_pq_public), v.hybrid_portion_key);
    const user = sesphr.KeyPair.fromSecretBytesHybrid(v.user_secret, v.user_pq_seed);
    assert.deepEqual(user.pqPublicKey, v.user_pq_public);
    assert.deepEqual(user.openAsDelegatee(v.sealed_portion, v.recapsule), v.plaintext);
    assert.deepEqual(user.openAsDelegatee(v.sealed_portion, v.recapsule_with_proof), v.plaintext);
    // Without its ML-KEM part the same user is told what is missing.
    const classical = sesphr.KeyPair.fromSecretBytes(v.user_secret);
    assert.equal(classical.pqPublicKey, undefined);
    assert.equal(kindOf(() => classical.openAsDelegatee(v.sealed_portion, v.recapsule)), 'pq_key_missing');
    assert.equal(kindOf(() => sesphr.KeyPair.fromSecretBytesHybrid(v.user_secret, v.user_pq_seed.slice(1))), 'invalid_length');
    assert.deepEqual(sesphr.header(v.sealed_portion), v.header);
  }
  // Sealing to a hybrid key, opened by the owner.
  const patient = sesphr.PatientKeys.generate('patient-0042');
  const key = patient.hybridPortionPublicKey('lab', 0, cases[0].srs_pq_public);
  const sealed = sesphr.seal(key, enc('HbA1c 5.4%'), new Uint8Array(), 0);
  assert.ok(sesphr.header(sealed).length > 2400);
  assert.deepEqual(patient.openAsOwner(sealed), enc('HbA1c 5.4%'));
  const hybrid = sesphr.KeyPair.generateHybrid();
  assert.equal(hybrid.pqPublicKey.length, 1184);
  assert.equal(hybrid.pqSeed().length, 64);
});
