//! Hybrid (post-quantum) portions under a threshold SRS (DESIGN §12, §16;
//! SPEC §4.6): `σ` split t-of-n, one stanza and one commitment per node;
//! each node re-wraps its share; the delegatee judges every share on its
//! own and opens whenever `t` are right — a liar among three answers can
//! neither block the open nor get an honest node named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;

use common::*;
use sesphr::*;

struct Split {
    lab: PortionSecretKey,
    nodes: Vec<SrsPqSecretKey>,
    key: HybridPortionKey,
    doctor: KeyPair,
    rekey: ReKey,
    commitments: ShareCommitments,
    shares: Vec<ReKeyShare>,
    sealed: SealedPortion,
}

const TEXT: &[u8] = b"potassium 4.1 mmol/L; creatinine 88 umol/L";

fn split(t: u8, n: u8, seed: u8) -> Split {
    let p = patient(seed);
    let lab = portion(&p, "lab");
    let nodes: Vec<SrsPqSecretKey> = (1..=n)
        .map(|i| {
            SrsPqSecretKey::new(
                u32::from(i),
                PqSecretKey::generate_with_rng(&mut rng(seed ^ i)),
            )
        })
        .collect();
    let publics: Vec<SrsPqPublicKey> = nodes.iter().map(SrsPqSecretKey::public).collect();
    let key = lab.hybrid_public_split(t, &publics).unwrap();
    let doctor = KeyPair::generate_hybrid_with_rng(&mut rng(seed.wrapping_add(1)));
    let rekey = ReKey::generate_with_rng(&lab, doctor.public(), &mut rng(seed.wrapping_add(2)));
    let (commitments, shares) = rekey
        .split_with_rng(t, n, &mut rng(seed.wrapping_add(3)))
        .unwrap();
    let sealed = SealedPortion::seal(&key, RecordId::random(), T0, TEXT).unwrap();
    Split {
        lab,
        nodes,
        key,
        doctor,
        rekey,
        commitments,
        shares,
        sealed,
    }
}

impl Split {
    /// Node `i`'s honest answer, with a proof.
    fn answer(&self, i: usize) -> ReCapsule {
        self.shares[i]
            .reencrypt_hybrid_with_proof(
                self.sealed.header().verify().unwrap(),
                &self.nodes[i],
                self.doctor.pq_public().unwrap(),
            )
            .unwrap()
    }

    fn opener(&self) -> ThresholdOpener {
        ThresholdOpener::new_unauthenticated(&self.doctor, &self.commitments).unwrap()
    }
}

#[test]
fn owner_and_any_t_nodes_open_a_split_hybrid_record() {
    for (t, n) in [(2u8, 3u8), (3, 5)] {
        let s = split(t, n, 10 + t);
        let h = s.sealed.header();
        assert!(h.is_hybrid());
        assert_eq!(h.pq_split(), Some((t, n)));
        for i in 1..=n {
            assert_eq!(h.node_pq_version(i), Some(u32::from(i)));
        }
        assert_eq!(h.node_pq_version(n + 1), None);
        // 2,310 bytes for one SRS, 1,172 more per further node.
        let classical = SealedPortion::seal(s.lab.public(), RecordId::random(), T0, TEXT).unwrap();
        assert_eq!(
            h.encoded_len(),
            classical.header().encoded_len() + 2310 + 1172 * usize::from(n - 1)
        );
        assert!(h.encoded_len() <= PortionHeader::MAX_LEN);
        // The encoding round-trips, whole and from a stream.
        let bytes = s.sealed.to_bytes();
        assert_eq!(
            PortionHeader::len_from_prefix(&bytes[..PortionHeader::PREFIX_LEN]).unwrap(),
            h.encoded_len()
        );
        assert_eq!(SealedPortion::from_bytes(&bytes).unwrap(), s.sealed);
        assert_eq!(s.sealed.open_as_owner(&s.lab).unwrap(), TEXT);

        let answers: Vec<ReCapsule> = (0..usize::from(n)).map(|i| s.answer(i)).collect();
        let opener = s.opener();
        // Every window of t consecutive nodes opens, optimistic and verified.
        for start in 0..=usize::from(n - t) {
            let pick = &answers[start..start + usize::from(t)];
            let opened = opener.open(&s.sealed, pick).unwrap();
            assert_eq!(opened.plaintext(), TEXT);
            assert!(opened.bad_nodes().is_empty());
            assert_eq!(
                opener.open_verified(&s.sealed, pick).unwrap().plaintext(),
                TEXT
            );
        }
        // Streaming: the body read once.
        let stored = s.sealed.to_bytes();
        let reader = PortionReader::new(&stored[..]).unwrap();
        let (mut plain, report) = opener.open_stream(reader, &answers).unwrap();
        let mut out = Vec::new();
        plain.read_to_end(&mut out).unwrap();
        assert_eq!(out, TEXT);
        assert_eq!(report.used().len(), usize::from(t));
        // t − 1 answers are too few.
        assert!(matches!(
            opener.open(&s.sealed, &answers[..usize::from(t) - 1]),
            Err(Error::TooFewShares { .. })
        ));
    }
}

#[test]
fn two_of_three_with_a_liar_opens_and_names_only_the_liar() {
    let s = split(2, 3, 30);
    let honest: Vec<ReCapsule> = (0..3).map(|i| s.answer(i)).collect();
    let opener = s.opener();

    // Liar 1: node 2 answers with a correct `E'_2` but node 3's share of
    // σ (re-wrapped to the doctor; its commitment is node 3's).
    let mut wrong_sigma = honest[1].to_bytes();
    let other = honest[2].to_bytes();
    let stanza = ReCapsule::SHARE_LEN..ReCapsule::SHARE_LEN + PQ_STANZA_LEN;
    wrong_sigma[stanza.clone()].copy_from_slice(&other[stanza]);
    // Liar 2: node 2 answers with a share of another split of the same
    // key (a wrong `E'_2`) and the right share of σ, proved against its
    // own (wrong) share: the proof fails against the patient's commitments.
    let (_, others) = s.rekey.split_with_rng(2, 3, &mut rng(99)).unwrap();
    let wrong_e = others[1]
        .reencrypt_hybrid_with_proof(
            s.sealed.header().verify().unwrap(),
            &s.nodes[1],
            s.doctor.pq_public().unwrap(),
        )
        .unwrap()
        .to_bytes();

    for (what, liar, fault) in [
        ("wrong share of σ", wrong_sigma, "pq"),
        ("wrong E'", wrong_e, "proof"),
    ] {
        // The liar first, second or last; answers attributed to their
        // senders.
        let good1 = honest[0].to_bytes();
        let good3 = honest[2].to_bytes();
        for order in [[2u8, 1, 3], [1, 2, 3], [1, 3, 2]] {
            let answers: Vec<(u8, &[u8])> = order
                .iter()
                .map(|&i| {
                    let b: &[u8] = match i {
                        1 => &good1,
                        2 => &liar,
                        _ => &good3,
                    };
                    (i, b)
                })
                .collect();
            for verified in [false, true] {
                let opened = if verified {
                    opener.open_verified(&s.sealed, &answers)
                } else {
                    opener.open(&s.sealed, &answers)
                }
                .unwrap_or_else(|e| panic!("{what}, {order:?}: {e}"));
                assert_eq!(opened.plaintext(), TEXT, "{what}");
                assert!(!opened.used().contains(&2), "{what}, {order:?}");
                // Named when its answer was looked at (always, for a
                // wrong share of σ: every share is checked on arrival).
                let looked_at = fault == "pq" || verified || order[..2].contains(&2);
                if looked_at {
                    assert_eq!(opened.bad_nodes(), &[2], "{what}, {order:?}");
                    let v = opened
                        .verdicts()
                        .iter()
                        .find(|v| v.node() == Some(2))
                        .unwrap();
                    match fault {
                        "pq" => assert!(matches!(v.fault(), Some(ShareFault::BadPqShare))),
                        _ => assert!(matches!(v.fault(), Some(ShareFault::BadProof))),
                    }
                } else {
                    assert!(opened.bad_nodes().is_empty(), "{what}, {order:?}");
                }
            }
        }
        // The liar and one honest node are too few.
        let answers: Vec<(u8, &[u8])> = vec![(1, &good1), (2, &liar)];
        assert!(
            matches!(
                opener.open(&s.sealed, &answers),
                Err(Error::TooFewShares { valid: 1, .. })
            ),
            "{what}"
        );
    }
}

#[test]
fn a_split_header_refuses_what_does_not_belong_to_it() {
    let s = split(2, 3, 50);
    let v = || s.sealed.header().verify().unwrap();
    let pq = s.doctor.pq_public().unwrap();
    // A node with another node's ML-KEM key, or its key at another version.
    assert!(matches!(
        s.shares[0].reencrypt_hybrid(v(), &s.nodes[1], pq),
        Err(Error::KeyMismatch)
    ));
    let other_version = SrsPqSecretKey::new(9, PqSecretKey::generate());
    assert!(matches!(
        s.shares[0].reencrypt_hybrid(v(), &other_version, pq),
        Err(Error::KeyMismatch)
    ));
    // A node whose key is at the right version but is not the sealed one.
    let impostor = SrsPqSecretKey::new(1, PqSecretKey::generate());
    assert!(matches!(
        s.shares[0].reencrypt_hybrid(v(), &impostor, pq),
        Err(Error::DecryptionFailed)
    ));
    // A whole key cannot serve a split header (its σ needs t nodes).
    assert!(matches!(
        s.rekey.reencrypt_hybrid(v(), &s.nodes[0], pq),
        Err(Error::KeyMismatch)
    ));
    // A user without an ML-KEM key.
    let answers: Vec<ReCapsule> = (0..2).map(|i| s.answer(i)).collect();
    let classical_user = KeyPair::from_secret(s.doctor.secret().clone());
    let opener = ThresholdOpener::new_unauthenticated(&classical_user, &s.commitments).unwrap();
    assert!(matches!(
        opener.open(&s.sealed, &answers),
        Err(Error::PqKeyMissing)
    ));
    // Commitments of a split with another n than the header's.
    let (c4, _) = s.rekey.split_with_rng(2, 4, &mut rng(51)).unwrap();
    let opener4 = ThresholdOpener::new_unauthenticated(&s.doctor, &c4).unwrap();
    assert!(matches!(
        opener4.open(&s.sealed, &answers),
        Err(Error::KeyMismatch)
    ));
    // An answer without its share of σ (flag cleared, stanza cut) is set
    // aside, and names its node.
    let mut cut = answers[0].to_bytes();
    let proof = cut[cut.len() - 64..].to_vec();
    cut.truncate(ReCapsule::SHARE_LEN);
    cut[5] &= !4;
    cut.extend_from_slice(&proof);
    let (second, third) = (answers[1].to_bytes(), s.answer(2).to_bytes());
    let given: Vec<(u8, &[u8])> = vec![(1, &cut), (2, &second), (3, &third)];
    let opened = s.opener().open(&s.sealed, &given).unwrap();
    assert_eq!(opened.plaintext(), TEXT);
    assert_eq!(opened.bad_nodes(), &[1]);
    // A header whose split was edited no longer verifies.
    let mut edited = s.sealed.header().to_bytes();
    edited[66] = 4; // n: 3 → 4 (and a length that no longer fits)
    assert!(PortionHeader::from_bytes(&edited).is_err());
    let mut edited = s.sealed.header().to_bytes();
    edited[65] = 3; // t: 2 → 3
    let edited = PortionHeader::from_bytes(&edited).unwrap();
    assert!(matches!(edited.verify(), Err(Error::InvalidCapsule)));
    // Hybrid key encodings round-trip, and refuse a bad split.
    let kb = s.key.to_bytes();
    assert_eq!(HybridPortionKey::from_bytes(&kb).unwrap(), s.key);
    assert_eq!(s.key.threshold(), 2);
    assert_eq!(s.key.srs_keys().len(), 3);
    let label_len = usize::from(kb[9]);
    let at = 10 + label_len + 32 + PQ_PUBLIC_KEY_LEN;
    for (t, n) in [(1u8, 3u8), (4, 3), (0, 0)] {
        let mut bad = kb.clone();
        bad[at] = t;
        bad[at + 1] = n;
        assert!(HybridPortionKey::from_bytes(&bad).is_err(), "{t} of {n}");
    }
    let publics: Vec<SrsPqPublicKey> = s.nodes.iter().map(SrsPqSecretKey::public).collect();
    for t in [0u8, 1, 4] {
        assert!(matches!(
            s.lab.hybrid_public_split(t, &publics),
            Err(Error::InvalidThreshold)
        ));
    }
    let many: Vec<SrsPqPublicKey> = (0..17).map(|_| publics[0].clone()).collect();
    assert!(matches!(
        s.lab.hybrid_public_split(2, &many),
        Err(Error::InvalidThreshold)
    ));
}

/// Three SRS nodes, each with its own store and storage key (so its own
/// ML-KEM key), serve a split hybrid record; one node lies.
#[cfg(feature = "srs")]
#[test]
fn three_srs_nodes_serve_a_split_hybrid_record() {
    use sesphr::consent::GrantOptions;
    use sesphr::srs::*;
    const NOW: u64 = 1_800_000_000;
    let nodes: Vec<Srs> = (0..3)
        .map(|_| {
            Srs::open(
                SrsConfig::new(store::MemoryStore::new(), StorageKey::generate())
                    .clock(ManualClock::new(NOW)),
            )
            .unwrap()
        })
        .collect();
    let alice = patient(60);
    let doc = Identity::new("dr-grey").unwrap();
    let doc_keys = KeyPair::generate_hybrid();
    for n in &nodes {
        n.add_patient(&alice, &[(label("lab"), 0)]).unwrap();
        n.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
        n.register_pq_key(&doc, doc_keys.pq_public().unwrap())
            .unwrap();
    }
    let lab = alice.portion_secret(&label("lab"), 0);
    let (commitments, shares) = ReKey::generate(&lab, doc_keys.public())
        .split(2, 3)
        .unwrap();
    let signed = alice
        .sign_share_grant(
            &label("lab"),
            0,
            &doc,
            &commitments,
            &GrantOptions {
                issued_at: Some(NOW),
                user_pq_key: Some(doc_keys.pq_public().unwrap().fingerprint()),
                ..Default::default()
            },
        )
        .unwrap();
    for (n, share) in nodes.iter().zip(shares) {
        n.grant_share(&signed, share).unwrap();
    }
    let publics: Vec<SrsPqPublicKey> = nodes.iter().map(|n| n.pq_public_key().unwrap()).collect();
    let key = lab.hybrid_public_split(2, &publics).unwrap();
    let sealed = SealedPortion::seal(&key, RecordId::random(), NOW - 10, TEXT).unwrap();
    let answers: Vec<Vec<u8>> = nodes
        .iter()
        .map(|n| {
            n.reencrypt_with_proof(&doc, sealed.header(), model::Purpose::Treatment)
                .unwrap()
                .to_bytes()
        })
        .collect();
    let opener = checked_opener(&doc_keys, &signed, &alice.consent_public(), &commitments);
    let given: Vec<(u8, &[u8])> = answers
        .iter()
        .enumerate()
        .map(|(i, b)| (u8::try_from(i + 1).unwrap(), b.as_slice()))
        .collect();
    let opened = opener.open(&sealed, &given).unwrap();
    assert_eq!(opened.plaintext(), TEXT);
    // Node 1 lies: it answers with node 2's share of σ in its re-capsule.
    let mut liar = answers[0].clone();
    let stanza = ReCapsule::SHARE_LEN..ReCapsule::SHARE_LEN + PQ_STANZA_LEN;
    liar[stanza.clone()].copy_from_slice(&answers[1][stanza]);
    let given: Vec<(u8, &[u8])> = vec![(1, &liar), (2, &answers[1]), (3, &answers[2])];
    let opened = opener.open(&sealed, &given).unwrap();
    assert_eq!(opened.plaintext(), TEXT);
    assert_eq!(opened.bad_nodes(), &[1]);
    // Batches stay batched: three records at once from nodes 2 and 3 (a
    // classical one among them), each opened from the two answers.
    let classical =
        SealedPortion::seal(lab.public(), RecordId::random(), NOW - 9, b"K 4.1").unwrap();
    let second = SealedPortion::seal(&key, RecordId::random(), NOW - 8, b"Na 139").unwrap();
    let records = [&sealed, &classical, &second];
    let headers: Vec<&PortionHeader> = records.iter().map(|s| s.header()).collect();
    let batches: Vec<Vec<ReCapsule>> = nodes[1..]
        .iter()
        .map(|n| {
            n.reencrypt_batch(&doc, &headers, model::Purpose::Treatment)
                .unwrap()
                .into_iter()
                .map(Result::unwrap)
                .collect()
        })
        .collect();
    for (k, record) in records.iter().enumerate() {
        let answers = [batches[0][k].clone(), batches[1][k].clone()];
        assert_eq!(answers[0].is_hybrid(), record.header().is_hybrid());
        let opened = opener.open(record, &answers[..]).unwrap();
        assert_eq!(
            opened.plaintext(),
            record.open_as_owner(&lab).unwrap(),
            "record {k}"
        );
    }
    // A header of a portion no grant covers is refused by every node.
    let medical = alice.portion_secret(&label("medical"), 0);
    let other = SealedPortion::seal(
        &medical.hybrid_public_split(2, &publics).unwrap(),
        RecordId::random(),
        NOW - 5,
        b"x",
    )
    .unwrap();
    for n in &nodes {
        assert!(
            n.reencrypt(&doc, other.header(), model::Purpose::Treatment)
                .is_err()
        );
    }
}
