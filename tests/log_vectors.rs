//! Committed test vectors of the verifiable audit log
//! (`tests/vectors/sesphr-v1-log.txt`, SPEC §6): four audit entries, their
//! chain hashes and leaf hashes, two signed checkpoints (after entries 2
//! and 4), an inclusion proof of entry 3 against the second and a
//! consistency proof between the two.
//!
//! Everything here is computed from SPEC's formulas with SHA-256 and
//! Ed25519 directly — the chain, the RFC 9162 tree and proofs, the
//! checkpoint's bytes and signature — and then checked through the crate's
//! public verifiers (`verify_checkpoint`, `verify_inclusion`,
//! `verify_consistency`), so the file and the crate must agree with SPEC
//! and with each other. The crate's own entry encoding must give the same
//! bytes. Regenerate only when the format changes on purpose:
//! `SESPHR_REGENERATE_VECTORS=1 cargo test --test log_vectors`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use sesphr::merkle::{ConsistencyProof, InclusionProof};
use sesphr::srs::{
    AuditAction, AuditEntry, AuditOutcome, Checkpoint, Denial, Purpose, Signer, SigningKey,
    verify_checkpoint, verify_consistency, verify_inclusion,
};
use sesphr::{Identity, PortionLabel, RecordId};
use sha2::{Digest, Sha256};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/sesphr-v1-log.txt"
);

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The four entries: a patient registered, a grant filed (with evidence),
/// a re-encryption served for treatment, one denied after a revocation.
fn entries() -> Vec<AuditEntry> {
    let patient = Identity::new("patient-0042").unwrap();
    let doctor = Identity::new("dr-house").unwrap();
    let lab = PortionLabel::new("lab").unwrap();
    let record = RecordId::from_bytes([0x5a; 16]);
    let base = |seq: u64, action: AuditAction, actor: &str| AuditEntry {
        seq,
        time: 1_700_000_000 + 60 * seq,
        actor: actor.to_owned(),
        action,
        patient: Some(patient.clone()),
        label: None,
        user: None,
        record_id: None,
        outcome: AuditOutcome::Ok,
        detail: String::new(),
        purpose: None,
        emergency: false,
        evidence: Vec::new(),
    };
    let mut e1 = base(1, AuditAction::RegisterPatient, "patient-0042");
    e1.detail = "portions=lab:0".to_owned();
    let mut e2 = base(2, AuditAction::Grant, "patient-0042");
    e2.label = Some(lab.clone());
    e2.user = Some(doctor.clone());
    e2.evidence = (0u8..48).collect();
    let mut e3 = base(3, AuditAction::ReEncrypt, "dr-house");
    e3.label = Some(lab.clone());
    e3.user = Some(doctor.clone());
    e3.record_id = Some(record);
    e3.purpose = Some(Purpose::Treatment);
    let mut e4 = e3.clone();
    e4.seq = 4;
    e4.time = 1_700_000_240;
    e4.outcome = AuditOutcome::Denied(Denial::Revoked);
    vec![e1, e2, e3, e4]
}

/// RFC 9162 §2.1.1: the root of `leaves`.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = n.next_power_of_two() / 2;
            let k = if k == n { n / 2 } else { k };
            sha256(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// RFC 9162 §2.1.3.1: the audit path of leaf `m` in `leaves`.
fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = n.next_power_of_two() / 2;
    let k = if k == n { n / 2 } else { k };
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 9162 §2.1.4.1: the consistency proof from `m` leaves to all of
/// `leaves`.
fn subproof(m: usize, leaves: &[[u8; 32]], whole: bool) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = n.next_power_of_two() / 2;
    let k = if k == n { n / 2 } else { k };
    if m <= k {
        let mut p = subproof(m, &leaves[..k], whole);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// `"SPIP"`/`"SPCN"` ‖ 0x01 ‖ u64 ‖ u64 ‖ u8(n) ‖ n hashes (SPEC §6.4).
fn proof_bytes(magic: &[u8; 4], a: u64, b: u64, hashes: &[[u8; 32]]) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.push(1);
    v.extend_from_slice(&a.to_be_bytes());
    v.extend_from_slice(&b.to_be_bytes());
    v.push(u8::try_from(hashes.len()).unwrap());
    for h in hashes {
        v.extend_from_slice(h);
    }
    v
}

/// SPEC §6.2: a version-2 checkpoint, signed.
fn checkpoint(key: &SigningKey, seq: u64, time: u64, chain: [u8; 32], root: [u8; 32]) -> Vec<u8> {
    let digest = sha256(&[b"registry digest (opaque to verifiers)", &seq.to_be_bytes()]);
    let mut v = b"SPCP".to_vec();
    v.push(2);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&time.to_be_bytes());
    v.extend_from_slice(&chain);
    v.extend_from_slice(&root);
    v.extend_from_slice(&digest);
    assert_eq!(v.len(), 117);
    let mut msg = b"sesphr/v1/checkpoint".to_vec();
    msg.extend_from_slice(&v);
    v.extend_from_slice(&key.sign(&msg).to_bytes());
    v
}

fn hex(b: &[u8]) -> String {
    common::hex(b)
}

fn render() -> String {
    let key = SigningKey::from_bytes(&sha256(&[b"sesphr/v1/vectors/srs-signing-key"]));
    let entries = entries();
    let encoded: Vec<Vec<u8>> = entries.iter().map(AuditEntry::to_bytes).collect();
    let mut out = String::from(
        "# sesphr verifiable audit log vectors (SPEC §6). Generated by\n\
         # `SESPHR_REGENERATE_VECTORS=1 cargo test --test log_vectors` (tests/log_vectors.rs).\n\
         # Values are lowercase hex; seq and time decimal.\n\n[case log]\n",
    );
    let mut line = |k: &str, v: String| out.push_str(&format!("{k} = {v}\n"));
    line("srs_signing_seed", hex(&key.to_bytes()));
    line("srs_public", hex(key.verifying_key().as_bytes()));
    let mut chain = sha256(&[b"sesphr/v1/audit-genesis"]);
    line("chain_hash_0", hex(&chain));
    let mut leaves = Vec::new();
    let mut chains = vec![chain];
    for (i, e) in encoded.iter().enumerate() {
        let n = i + 1;
        chain = sha256(&[&chain, e]);
        chains.push(chain);
        let leaf = sha256(&[&[0], e]);
        leaves.push(leaf);
        line(&format!("entry_{n}"), hex(e));
        line(&format!("chain_hash_{n}"), hex(&chain));
        line(&format!("leaf_hash_{n}"), hex(&leaf));
    }
    for size in 0..=leaves.len() {
        line(&format!("tree_root_{size}"), hex(&mth(&leaves[..size])));
    }
    for (seq, time) in [(2u64, 1_700_000_130u64), (4, 1_700_000_250)] {
        let s = usize::try_from(seq).unwrap();
        line(
            &format!("checkpoint_{seq}"),
            hex(&checkpoint(&key, seq, time, chains[s], mth(&leaves[..s]))),
        );
    }
    line(
        "inclusion_3_of_4",
        hex(&proof_bytes(b"SPIP", 2, 4, &path(2, &leaves))),
    );
    line(
        "consistency_2_to_4",
        hex(&proof_bytes(b"SPCN", 2, 4, &subproof(2, &leaves, true))),
    );
    out
}

fn parse(text: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap();
            (k.to_owned(), common::unhex(v))
        })
        .collect()
}

#[test]
fn log_vectors_are_reproduced_exactly() {
    let text = render();
    if std::env::var_os("SESPHR_REGENERATE_VECTORS").is_some() {
        std::fs::write(PATH, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(PATH).unwrap(),
        text,
        "tests/vectors/sesphr-v1-log.txt differs from what SPEC's formulas give"
    );
}

#[test]
fn the_crate_verifies_the_file_and_refuses_every_altered_byte() {
    let v = parse(&std::fs::read_to_string(PATH).unwrap());
    let key = sesphr::consent::decode_verifying_key(&v["srs_public"].clone().try_into().unwrap())
        .unwrap();
    // The crate encodes the entries to the file's bytes, and decodes them.
    for (i, e) in entries().iter().enumerate() {
        let bytes = &v[&format!("entry_{}", i + 1)];
        assert_eq!(&e.to_bytes(), bytes);
        assert_eq!(&AuditEntry::from_bytes(bytes).unwrap(), e);
        assert_eq!(
            sesphr::merkle::leaf_hash(bytes).to_vec(),
            v[&format!("leaf_hash_{}", i + 1)]
        );
    }
    let cp2 = Checkpoint::from_bytes(&v["checkpoint_2"]).unwrap();
    let cp4 = Checkpoint::from_bytes(&v["checkpoint_4"]).unwrap();
    verify_checkpoint(&cp2, &key).unwrap();
    verify_checkpoint(&cp4, &key).unwrap();
    assert_eq!(cp4.tree_root.unwrap().to_vec(), v["tree_root_4"]);
    assert_eq!(cp4.chain_hash.to_vec(), v["chain_hash_4"]);
    let entry3 = AuditEntry::from_bytes(&v["entry_3"]).unwrap();
    let inclusion = InclusionProof::from_bytes(&v["inclusion_3_of_4"]).unwrap();
    verify_inclusion(&entry3, &inclusion, &cp4, &key).unwrap();
    let consistency = ConsistencyProof::from_bytes(&v["consistency_2_to_4"]).unwrap();
    verify_consistency(&cp2, &cp4, &consistency, &key).unwrap();
    // The crate's own tree gives the same roots.
    let mut tree = sesphr::merkle::Tree::new();
    for i in 1..=4 {
        tree.push(v[&format!("leaf_hash_{i}")].clone().try_into().unwrap());
    }
    for size in 0..=4 {
        assert_eq!(
            tree.root(size).unwrap().to_vec(),
            v[&format!("tree_root_{size}")]
        );
    }

    // Every single-byte change of a checkpoint, the entry or a proof is
    // refused.
    let flip = |b: &[u8], i: usize| {
        let mut c = b.to_vec();
        c[i] ^= 0x01;
        c
    };
    for i in 0..v["checkpoint_4"].len() {
        let ok = Checkpoint::from_bytes(&flip(&v["checkpoint_4"], i))
            .is_ok_and(|c| verify_checkpoint(&c, &key).is_ok());
        assert!(!ok, "checkpoint byte {i}");
    }
    for i in 0..v["entry_3"].len() {
        let ok = AuditEntry::from_bytes(&flip(&v["entry_3"], i))
            .is_ok_and(|e| verify_inclusion(&e, &inclusion, &cp4, &key).is_ok());
        assert!(!ok, "entry byte {i}");
    }
    for i in 0..v["inclusion_3_of_4"].len() {
        let ok = InclusionProof::from_bytes(&flip(&v["inclusion_3_of_4"], i))
            .is_ok_and(|p| verify_inclusion(&entry3, &p, &cp4, &key).is_ok());
        assert!(!ok, "inclusion proof byte {i}");
    }
    for i in 0..v["consistency_2_to_4"].len() {
        let ok = ConsistencyProof::from_bytes(&flip(&v["consistency_2_to_4"], i))
            .is_ok_and(|p| verify_consistency(&cp2, &cp4, &p, &key).is_ok());
        assert!(!ok, "consistency proof byte {i}");
    }
    // The older checkpoint is not the newer one's, and the proof does not
    // run backwards.
    assert!(verify_inclusion(&entry3, &inclusion, &cp2, &key).is_err());
    assert!(verify_consistency(&cp4, &cp2, &consistency, &key).is_err());
}
