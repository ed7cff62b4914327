// Compiled (not run) against the generated declarations, by `tsc --strict
// --noEmit` in CI: the API's types as a TypeScript user sees them.
import * as sesphr from '../pkg/sesphr_wasm';

const patient: sesphr.PatientKeys = sesphr.PatientKeys.generate('patient-ts');
const key: Uint8Array = patient.portionPublicKey('lab', 0);
const sealed: Uint8Array = sesphr.seal(key, new Uint8Array([1, 2, 3]), new Uint8Array(), 0);
const doctor: sesphr.KeyPair = sesphr.KeyPair.generate();
const rekey: sesphr.ReKey = sesphr.ReKey.generate(patient, 'lab', 0, doctor.publicKey);
const grant: Uint8Array = patient.signGrant('lab', 0, 'dr', rekey, 0, 0);
const plain: Uint8Array = doctor.openAsDelegatee(sealed, rekey.reencrypt(sesphr.header(sealed)));
const sealer: sesphr.Sealer = new sesphr.Sealer(key, new Uint8Array(), 0);
const parts: Uint8Array[] = [sealer.header, sealer.push(plain), sealer.finish()];
const opener: sesphr.Opener = sesphr.Opener.forOwner(patient);
const back: Uint8Array = opener.push(parts[0]);
const split: sesphr.ReKeySplit = rekey.split(2, 3);
const count: number = split.count;
const share: Uint8Array = split.share(1);
const t = new sesphr.ThresholdOpener(doctor, patient.signShareGrant('lab', 0, 'dr', split.commitments, 0, 0), split.commitments, patient.consentPublicKey());
const viaNodes: Uint8Array = t.open(sealed, Uint8Array.from([1, 2]), [split.reencryptAs(1, sealed), split.reencryptAs(2, sealed)]);
const used: Uint8Array = t.opener(Uint8Array.from([1]), [share]).used;
const text: string = patient.toBackupText();
const restored: sesphr.KeyPair = sesphr.KeyPair.fromBackupText(doctor.toBackupText());
const n: number = sesphr.verifyDisclosureReport(new Uint8Array(), new Uint8Array(32));
// @ts-expect-error: a label is a string, not a number.
patient.portionPublicKey(7, 0);
const hybrid: sesphr.KeyPair = sesphr.KeyPair.generateHybrid();
const pq: Uint8Array | undefined = hybrid.pqPublicKey;
const seed: Uint8Array | undefined = hybrid.pqSeed();
const again: sesphr.KeyPair = sesphr.KeyPair.fromSecretBytesHybrid(hybrid.secretBytes(), seed ?? new Uint8Array(64));
const hybridKey: Uint8Array = patient.hybridPortionPublicKey('lab', 0, new Uint8Array(1193));
const splitKey: Uint8Array = patient.hybridPortionPublicKeySplit('lab', 0, 2, new Uint8Array(3 * 1193));
export { grant, back, count, viaNodes, used, text, restored, n, pq, again, hybridKey, splitKey };
