//! WebAssembly bindings of sesphr (wasm-bindgen), for browsers and Node:
//! the patient's side (keys, sealing, re-encryption keys, signed grants and
//! revocations, registration) and the reader's side (opening what the SRS
//! re-encrypted, verifying the SRS's receipts and checkpoints). No SRS runs
//! here.
//!
//! `Uint8Array` in and out; identities and labels are strings. Dates are
//! seconds since the Unix epoch, taken from `Date.now()` when not given
//! (WebAssembly has no system clock). Randomness comes from the platform
//! (`crypto.getRandomValues`). Errors are JS `Error`s with a `kind` (the
//! Rust error's name in snake case, e.g. `"decryption_failed"`).
#![allow(unsafe_code)] // wasm-bindgen's macros expand to `unsafe` (the binding framework requires it).
#![allow(clippy::needless_pass_by_value)]
// wasm-bindgen hands owned arguments.
// Every function that returns a `Result` throws a JS `Error` with a `kind`
// (see above); the per-function rule is the Rust call it wraps.
#![allow(clippy::missing_errors_doc)]

mod stream;
mod threshold;

use wasm_bindgen::prelude::*;

use sesphr::consent::{GrantOptions, PatientRegistration, RevocationReceipt};
use sesphr::model::Scope;
use sesphr::{Error, Identity, PortionLabel, RecordId};

/// A JS `Error` with the message and `kind` of a sesphr error.
fn js_error(message: &str, kind: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("SesphrError");
    // Setting a property on a fresh Error object cannot fail; if it did, the
    // error still carries its message and name.
    let _ = js_sys::Reflect::set(&e, &"kind".into(), &kind.into());
    e.into()
}

fn err(e: Error) -> JsValue {
    js_error(&e.to_string(), e.kind())
}

fn srs_err(e: sesphr::srs::SrsError) -> JsValue {
    js_error(&e.to_string(), e.kind())
}

trait Js<T> {
    fn js(self) -> Result<T, JsValue>;
}
impl<T> Js<T> for Result<T, Error> {
    fn js(self) -> Result<T, JsValue> {
        self.map_err(err)
    }
}

fn identity(s: &str) -> Result<Identity, JsValue> {
    Identity::new(s).js()
}
fn label(s: &str) -> Result<PortionLabel, JsValue> {
    PortionLabel::new(s).js()
}
fn array32(what: &'static str, b: &[u8]) -> Result<[u8; 32], JsValue> {
    b.try_into().map_err(|_| {
        err(Error::InvalidLength {
            what,
            expected: 32,
            actual: b.len(),
        })
    })
}

/// Seconds given by JS (a `number`): a whole, non-negative count below 2^53.
fn secs(what: &'static str, x: f64) -> Result<u64, JsValue> {
    const MAX: f64 = 9_007_199_254_740_991.0; // 2^53 - 1: exact in a JS number
    if (0.0..=MAX).contains(&x) && x.fract() == 0.0 {
        // A whole number in [0, 2^53): exact as u64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(x as u64)
    } else {
        Err(js_error(
            &format!("{what}: not a whole number of seconds in [0, 2^53)"),
            "invalid_argument",
        ))
    }
}

/// Grant options from JS: `since` (0: every record) and `expiry` (0:
/// none) in seconds, issued now.
fn grant_options(since: f64, expiry: f64) -> Result<GrantOptions, JsValue> {
    let (since, expiry) = (secs("since", since)?, secs("expiry", expiry)?);
    Ok(GrantOptions {
        scope: if since == 0 {
            Scope::AllRecords
        } else {
            Scope::Since(since)
        },
        expiry: (expiry != 0).then_some(expiry),
        issued_at: Some(now()),
        ..GrantOptions::default()
    })
}

/// Seconds since the Unix epoch, from the platform's clock.
fn now() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        // Whole seconds of a positive, finite millisecond count.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let s = (ms / 1000.0) as u64;
        s
    } else {
        0
    }
}

/// A patient's keys: one master secret, one key per (portion, epoch), and
/// the consent signing key.
#[wasm_bindgen]
pub struct PatientKeys(sesphr::PatientKeys);

#[wasm_bindgen]
impl PatientKeys {
    /// Fresh keys for `identity`.
    pub fn generate(identity_: &str) -> Result<PatientKeys, JsValue> {
        Ok(Self(sesphr::PatientKeys::generate(identity(identity_)?)))
    }

    /// The keys from their export (`toBytes`).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(data: &[u8]) -> Result<PatientKeys, JsValue> {
        sesphr::PatientKeys::from_bytes(data).js().map(Self)
    }

    /// The secret export; keep it like a password.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    /// The patient's identity.
    #[wasm_bindgen(getter)]
    pub fn identity(&self) -> String {
        self.0.patient().as_str().to_owned()
    }

    /// The public key of a portion: anyone holding it can add records.
    #[wasm_bindgen(js_name = portionPublicKey)]
    pub fn portion_public_key(&self, label_: &str, epoch: u32) -> Result<Vec<u8>, JsValue> {
        Ok(self.0.portion_public(&label(label_)?, epoch).to_bytes())
    }

    /// The hybrid (post-quantum) public key of a portion (`"SPHK"`),
    /// sealing to the SRS's post-quantum key `srsPqKey` (`"SPQK"`): `seal`
    /// with it makes headers whose key also needs ML-KEM-768.
    #[wasm_bindgen(js_name = hybridPortionPublicKey)]
    pub fn hybrid_portion_public_key(
        &self,
        label_: &str,
        epoch: u32,
        srs_pq_key: &[u8],
    ) -> Result<Vec<u8>, JsValue> {
        let srs = sesphr::SrsPqPublicKey::from_bytes(srs_pq_key).js()?;
        self.0
            .hybrid_portion_public(&label(label_)?, epoch, &srs)
            .map(|k| k.to_bytes())
            .js()
    }

    /// The hybrid public key of a portion for a threshold SRS: each
    /// header's post-quantum secret split `threshold`-of-n among the n
    /// nodes whose `"SPQK"` keys are concatenated in `srsPqKeys` (node 1
    /// first; each 1,193 bytes).
    #[wasm_bindgen(js_name = hybridPortionPublicKeySplit)]
    pub fn hybrid_portion_public_key_split(
        &self,
        label_: &str,
        epoch: u32,
        threshold: u8,
        srs_pq_keys: &[u8],
    ) -> Result<Vec<u8>, JsValue> {
        let len = sesphr::SrsPqPublicKey::LEN;
        if srs_pq_keys.is_empty() || !srs_pq_keys.len().is_multiple_of(len) {
            return Err(sesphr::Error::InvalidLength {
                what: "SRS post-quantum keys",
                expected: len,
                actual: srs_pq_keys.len(),
            })
            .js();
        }
        let nodes = srs_pq_keys
            .chunks(len)
            .map(sesphr::SrsPqPublicKey::from_bytes)
            .collect::<Result<Vec<_>, _>>()
            .js()?;
        self.0
            .hybrid_portion_public_split(&label(label_)?, epoch, threshold, &nodes)
            .map(|k| k.to_bytes())
            .js()
    }

    /// The consent public key (Ed25519, 32 bytes).
    #[wasm_bindgen(js_name = consentPublicKey)]
    pub fn consent_public_key(&self) -> Vec<u8> {
        self.0.consent_public().to_bytes().to_vec()
    }

    /// Opens a sealed portion of this patient's record.
    #[wasm_bindgen(js_name = openAsOwner)]
    pub fn open_as_owner(&self, sealed: &[u8]) -> Result<Vec<u8>, JsValue> {
        let s = sesphr::SealedPortion::from_bytes(sealed).js()?;
        let c = s.header().context();
        s.open_as_owner(&self.0.portion_secret(c.label(), c.epoch()))
            .js()
    }

    /// The signed registration with portions `labels` (all of epoch
    /// `epoch`), for the SRS.
    pub fn registration(&self, labels: Vec<String>, epoch: u32) -> Result<Vec<u8>, JsValue> {
        let portions = labels
            .iter()
            .map(|l| Ok((label(l)?, epoch)))
            .collect::<Result<Vec<_>, JsValue>>()?;
        PatientRegistration::new(&self.0, &portions)
            .map(|r| r.to_bytes())
            .js()
    }

    /// A grant of (`label`, `epoch`) to `user` with `rekey`, signed now.
    /// `since` (0: every record) and `expiry` (0: none) in seconds.
    #[wasm_bindgen(js_name = signGrant)]
    pub fn sign_grant(
        &self,
        label_: &str,
        epoch: u32,
        user: &str,
        rekey: &ReKey,
        since: f64,
        expiry: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let options = grant_options(since, expiry)?;
        self.0
            .sign_grant(&label(label_)?, epoch, &identity(user)?, &rekey.0, &options)
            .map(|g| g.to_bytes())
            .js()
    }

    /// The keys as a text backup (Bech32m, `sesphr-patient1…`), for
    /// paper; a mistyped character is refused on import
    /// (`bad_checksum`), never another key.
    #[wasm_bindgen(js_name = toBackupText)]
    pub fn to_backup_text(&self) -> String {
        self.0.to_backup_text().to_string()
    }

    /// The keys of a text backup (`toBackupText`).
    #[wasm_bindgen(js_name = fromBackupText)]
    pub fn from_backup_text(text: &str) -> Result<PatientKeys, JsValue> {
        sesphr::PatientKeys::from_backup_text(text).js().map(Self)
    }

    /// A grant of (`label`, `epoch`) to `user` for a re-encryption key
    /// split among nodes (`ReKey.split`), naming its `commitments`, signed
    /// now. `since` and `expiry` as for `signGrant`.
    #[wasm_bindgen(js_name = signShareGrant)]
    pub fn sign_share_grant(
        &self,
        label_: &str,
        epoch: u32,
        user: &str,
        commitments: &[u8],
        since: f64,
        expiry: f64,
    ) -> Result<Vec<u8>, JsValue> {
        let c = sesphr::ShareCommitments::from_bytes(commitments).js()?;
        let options = grant_options(since, expiry)?;
        self.0
            .sign_share_grant(&label(label_)?, epoch, &identity(user)?, &c, &options)
            .map(|g| g.to_bytes())
            .js()
    }

    /// A revocation of every grant of `label` to `user`, signed now.
    #[wasm_bindgen(js_name = signRevocation)]
    pub fn sign_revocation(&self, label_: &str, user: &str) -> Result<Vec<u8>, JsValue> {
        self.0
            .sign_revocation_at(&label(label_)?, &identity(user)?, now())
            .map(|r| r.to_bytes())
            .js()
    }
}

/// A user's key pair.
#[wasm_bindgen]
pub struct KeyPair(sesphr::KeyPair);

#[wasm_bindgen]
impl KeyPair {
    /// A fresh key pair.
    pub fn generate() -> KeyPair {
        Self(sesphr::KeyPair::generate())
    }

    /// A fresh hybrid key pair: ristretto255 and an independent ML-KEM-768
    /// key, to read hybrid (post-quantum) portions.
    #[wasm_bindgen(js_name = generateHybrid)]
    pub fn generate_hybrid() -> KeyPair {
        Self(sesphr::KeyPair::generate_hybrid())
    }

    /// The hybrid key pair of a 32-byte secret key and a 64-byte ML-KEM
    /// seed (`pqSeed()`).
    #[wasm_bindgen(js_name = fromSecretBytesHybrid)]
    pub fn from_secret_bytes_hybrid(secret: &[u8], pq_seed: &[u8]) -> Result<KeyPair, JsValue> {
        let kp = sesphr::KeyPair::from_secret_bytes(&array32("secret key", secret)?).js()?;
        let seed: [u8; 64] = pq_seed
            .try_into()
            .map_err(|_| Error::InvalidLength {
                what: "ML-KEM-768 seed",
                expected: 64,
                actual: pq_seed.len(),
            })
            .js()?;
        Ok(Self(kp.with_pq(sesphr::PqSecretKey::from_seed(&seed))))
    }

    /// The ML-KEM-768 encapsulation key (1,184 bytes), or `undefined` for
    /// a classical key pair: what the SRS registers.
    #[wasm_bindgen(getter, js_name = pqPublicKey)]
    pub fn pq_public_key(&self) -> Option<Vec<u8>> {
        self.0.pq_public().map(|k| k.as_bytes().to_vec())
    }

    /// The ML-KEM-768 seed (64 bytes), or `undefined` for a classical key
    /// pair; keep it like a password.
    #[wasm_bindgen(js_name = pqSeed)]
    pub fn pq_seed(&self) -> Option<Vec<u8>> {
        self.0.pq().map(|k| k.seed_bytes().to_vec())
    }

    /// The key pair of a 32-byte secret key.
    #[wasm_bindgen(js_name = fromSecretBytes)]
    pub fn from_secret_bytes(secret: &[u8]) -> Result<KeyPair, JsValue> {
        sesphr::KeyPair::from_secret_bytes(&array32("secret key", secret)?)
            .js()
            .map(Self)
    }

    /// The secret key (32 bytes).
    #[wasm_bindgen(js_name = secretBytes)]
    pub fn secret_bytes(&self) -> Vec<u8> {
        self.0.secret().to_bytes().to_vec()
    }

    /// The secret key as a backup (`SPKB` with a check value).
    #[wasm_bindgen(js_name = toBackup)]
    pub fn to_backup(&self) -> Vec<u8> {
        self.0.secret().to_backup().to_vec()
    }

    /// The secret key as a text backup (Bech32m, `sesphr-secret1…`).
    #[wasm_bindgen(js_name = toBackupText)]
    pub fn to_backup_text(&self) -> String {
        self.0.secret().to_backup_text().to_string()
    }

    /// The key pair of a backup (`toBackup` or `toBackupText`, as bytes or
    /// a string); a corrupted one is refused (`bad_checksum`).
    #[wasm_bindgen(js_name = fromBackup)]
    pub fn from_backup(data: &[u8]) -> Result<KeyPair, JsValue> {
        sesphr::SecretKey::from_backup(data)
            .map(sesphr::KeyPair::from_secret)
            .js()
            .map(Self)
    }

    /// The key pair of a text backup (`toBackupText`).
    #[wasm_bindgen(js_name = fromBackupText)]
    pub fn from_backup_text(text: &str) -> Result<KeyPair, JsValue> {
        sesphr::SecretKey::from_backup_text(text)
            .map(sesphr::KeyPair::from_secret)
            .js()
            .map(Self)
    }

    /// The public key (32 bytes).
    #[wasm_bindgen(getter, js_name = publicKey)]
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public().to_bytes().to_vec()
    }

    /// A proof that `identity` holds this key, for the SRS's registration.
    #[wasm_bindgen(js_name = provePossession)]
    pub fn prove_possession(&self, identity_: &str) -> Result<Vec<u8>, JsValue> {
        Ok(self
            .0
            .prove_possession(&identity(identity_)?)
            .to_bytes()
            .to_vec())
    }

    /// Opens a sealed portion with the re-capsule the SRS returned for it.
    #[wasm_bindgen(js_name = openAsDelegatee)]
    pub fn open_as_delegatee(&self, sealed: &[u8], recapsule: &[u8]) -> Result<Vec<u8>, JsValue> {
        let s = sesphr::SealedPortion::from_bytes(sealed).js()?;
        let rc = sesphr::ReCapsule::from_bytes(recapsule).js()?;
        s.open_as_delegatee(&self.0, &rc).js()
    }
}

/// A re-encryption key from one portion of the patient to one user.
#[wasm_bindgen]
pub struct ReKey(sesphr::ReKey);

#[wasm_bindgen]
impl ReKey {
    /// The re-encryption key from (`label`, `epoch`) to `userPublicKey`.
    pub fn generate(
        patient: &PatientKeys,
        label_: &str,
        epoch: u32,
        user_public_key: &[u8],
    ) -> Result<ReKey, JsValue> {
        let user = sesphr::PublicKey::from_bytes(&array32("public key", user_public_key)?).js()?;
        Ok(Self(sesphr::ReKey::generate(
            &patient.0.portion_secret(&label(label_)?, epoch),
            &user,
        )))
    }

    /// From its encoding.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(data: &[u8]) -> Result<ReKey, JsValue> {
        sesphr::ReKey::from_bytes(data).js().map(Self)
    }

    /// Its encoding (secret: what the SRS keeps sealed).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes().to_vec()
    }

    /// Re-encrypts a sealed portion (or its header), as the SRS would.
    pub fn reencrypt(&self, sealed_or_header: &[u8]) -> Result<Vec<u8>, JsValue> {
        let h = header_of(sealed_or_header).js()?;
        self.0
            .reencrypt(h.verify().js()?)
            .map(|rc| rc.to_bytes())
            .js()
    }
}

fn header_of(bytes: &[u8]) -> Result<sesphr::PortionHeader, Error> {
    let len = sesphr::PortionHeader::len_from_prefix(bytes)?;
    let head = bytes.get(..len).ok_or(Error::InvalidLength {
        what: "portion header",
        expected: len,
        actual: bytes.len(),
    })?;
    sesphr::PortionHeader::from_bytes(head)
}

/// The header of a sealed portion (what the SRS needs to re-encrypt it).
#[wasm_bindgen]
pub fn header(sealed: &[u8]) -> Result<Vec<u8>, JsValue> {
    header_of(sealed).map(|h| h.to_bytes()).js()
}

/// What sealing takes from JS: the portion public key (classical, or
/// hybrid from `PatientKeys.hybridPortionPublicKey`), a record id (16
/// bytes, or empty for a random one) and the creation time (0 for now).
fn seal_args(
    portion_public_key: &[u8],
    record_id: &[u8],
    created_at: f64,
) -> Result<(sesphr::AnyPortionKey, RecordId, u64), JsValue> {
    let created_at = secs("createdAt", created_at)?;
    let key = sesphr::AnyPortionKey::from_bytes(portion_public_key).js()?;
    let id = if record_id.is_empty() {
        RecordId::random()
    } else {
        RecordId::from_slice(record_id).js()?
    };
    Ok((key, id, if created_at == 0 { now() } else { created_at }))
}

/// Seals `plaintext` as a new record of the portion whose public key is
/// given. `recordId`: 16 bytes, or empty for a random one; `createdAt`:
/// seconds, or 0 for now.
#[wasm_bindgen]
pub fn seal(
    portion_public_key: &[u8],
    plaintext: &[u8],
    record_id: &[u8],
    created_at: f64,
) -> Result<Vec<u8>, JsValue> {
    let (key, id, at) = seal_args(portion_public_key, record_id, created_at)?;
    sesphr::SealedPortion::seal(&key, id, at, plaintext)
        .map(|s| s.to_bytes())
        .js()
}

/// Verifies a revocation receipt under the SRS's public key (32 bytes);
/// throws unless it verifies.
#[wasm_bindgen(js_name = verifyReceipt)]
pub fn verify_receipt(receipt: &[u8], srs_key: &[u8]) -> Result<(), JsValue> {
    let r = RevocationReceipt::from_bytes(receipt).js()?;
    let k = sesphr::consent::decode_verifying_key(&array32("srs key", srs_key)?).js()?;
    r.verify(&k).js()
}

/// Verifies a signed checkpoint of the SRS's audit log; throws unless it
/// verifies.
#[wasm_bindgen(js_name = verifyCheckpoint)]
pub fn verify_checkpoint(checkpoint: &[u8], srs_key: &[u8]) -> Result<(), JsValue> {
    let c = sesphr::srs::Checkpoint::from_bytes(checkpoint).js()?;
    let k = sesphr::consent::decode_verifying_key(&array32("srs key", srs_key)?).js()?;
    sesphr::srs::verify_checkpoint(&c, &k).map_err(srs_err)
}

/// Verifies a patient's disclosure report (every disclosure proven in the
/// SRS's log, signed as complete) under the SRS's public key; returns the
/// number of disclosures it lists.
#[wasm_bindgen(js_name = verifyDisclosureReport)]
pub fn verify_disclosure_report(report: &[u8], srs_key: &[u8]) -> Result<u32, JsValue> {
    let r = sesphr::srs::DisclosureReport::from_bytes(report).map_err(srs_err)?;
    let k = sesphr::consent::decode_verifying_key(&array32("srs key", srs_key)?).js()?;
    let listed = r.verify(&k).map_err(srs_err)?;
    Ok(u32::try_from(listed.len()).unwrap_or(u32::MAX))
}

/// The library's version.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The fixture the Node tests verify (`tests/fixtures/srs.json`): an SRS's
/// key, a revocation receipt, a checkpoint and a disclosure report, made by
/// a native SRS. `SESPHR_WRITE_WASM_FIXTURE=1 cargo test -p sesphr-wasm`
/// rewrites it; otherwise the test checks the committed one still verifies
/// natively, so the Node tests never check against a stale file.
#[cfg(test)]
mod fixture {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sesphr::consent::{GrantOptions, PatientRegistration, RevocationReceipt};
    use sesphr::srs::{Checkpoint, DisclosureReport, Purpose, Role, Srs};
    use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, ReKey, RecordId, SealedPortion};

    const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/srs.json");

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn field<'a>(json: &'a str, key: &str) -> &'a str {
        let start = json.find(&format!("\"{key}\": \"")).unwrap() + key.len() + 5;
        let end = start + json[start..].find('"').unwrap();
        &json[start..end]
    }

    fn make() -> String {
        let srs = Srs::in_memory().unwrap();
        let patient = PatientKeys::generate(Identity::new("patient-0042").unwrap());
        let lab = PortionLabel::new("lab").unwrap();
        srs.register_patient(&PatientRegistration::new(&patient, &[(lab.clone(), 0)]).unwrap())
            .unwrap();
        let doctor = (Identity::new("dr-house").unwrap(), KeyPair::generate());
        srs.register_user(
            &doctor.0,
            Role::Doctor,
            doctor.1.public(),
            &doctor.1.prove_possession(&doctor.0),
        )
        .unwrap();
        let rekey = ReKey::generate(&patient.portion_secret(&lab, 0), doctor.1.public());
        let grant = patient
            .sign_grant(&lab, 0, &doctor.0, &rekey, &GrantOptions::default())
            .unwrap();
        srs.grant(&grant, rekey).unwrap();
        let sealed = SealedPortion::seal(
            &patient.portion_public(&lab, 0),
            RecordId::random(),
            sesphr::unix_now(),
            b"HbA1c 5.4%",
        )
        .unwrap();
        for _ in 0..3 {
            srs.reencrypt(&doctor.0, sealed.header(), Purpose::Treatment)
                .unwrap();
        }
        let receipt = srs
            .revoke(&patient.sign_revocation(&lab, &doctor.0).unwrap())
            .unwrap();
        let report = srs
            .disclosure_report(patient.patient(), 0, u64::MAX)
            .unwrap();
        let checkpoint = srs.checkpoint().unwrap();
        format!(
            "{{\n  \"srs_key\": \"{}\",\n  \"receipt\": \"{}\",\n  \"checkpoint\": \"{}\",\n  \"report\": \"{}\",\n  \"disclosures\": \"3\"\n}}\n",
            hex(&srs.verifying_key().to_bytes()),
            hex(&receipt.to_bytes()),
            hex(&checkpoint.to_bytes()),
            hex(&report.to_bytes()),
        )
    }

    #[test]
    fn the_node_fixture_verifies() {
        if std::env::var_os("SESPHR_WRITE_WASM_FIXTURE").is_some() {
            std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
                .unwrap();
            std::fs::write(PATH, make()).unwrap();
        }
        let json = std::fs::read_to_string(PATH).expect("run with SESPHR_WRITE_WASM_FIXTURE=1");
        let key = unhex(field(&json, "srs_key"));
        let key =
            sesphr::consent::decode_verifying_key(&<[u8; 32]>::try_from(key.as_slice()).unwrap())
                .unwrap();
        RevocationReceipt::from_bytes(&unhex(field(&json, "receipt")))
            .unwrap()
            .verify(&key)
            .unwrap();
        sesphr::srs::verify_checkpoint(
            &Checkpoint::from_bytes(&unhex(field(&json, "checkpoint"))).unwrap(),
            &key,
        )
        .unwrap();
        let listed = DisclosureReport::from_bytes(&unhex(field(&json, "report")))
            .unwrap()
            .verify(&key)
            .unwrap();
        assert_eq!(listed.len().to_string(), field(&json, "disclosures"));
    }
}
