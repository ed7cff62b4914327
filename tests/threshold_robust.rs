//! A threshold split that no single node can block or frame (DESIGN §12):
//! with `t` honest answers the open succeeds whatever the other answers
//! hold, and exactly the nodes that answered wrongly are named; with
//! `t − 1` it fails with every answer's verdict. Commitments are the
//! patient's; every byte of a proved re-capsule is covered by its proof; a
//! split is replaced with one call per node.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

mod common;
use common::*;
use proptest::prelude::*;
use sesphr::consent::{GrantOptions, SignedGrant};
use sesphr::*;

/// One grant split `t` of `n`, a sealed record, and what an adversary
/// needs: another grant's split, and a split of a forged key with the
/// grant's own `X_e` (its proofs verify against its own, forged,
/// commitments).
struct Grant {
    t: u8,
    n: u8,
    doctor: KeyPair,
    commitments: ShareCommitments,
    grant: SignedGrant,
    consent: ed25519_dalek::VerifyingKey,
    shares: Vec<ReKeyShare>,
    other_grant: Vec<ReKeyShare>,
    forged: Vec<ReKeyShare>,
    sealed: SealedPortion,
    want: Vec<u8>,
}

fn grant(t: u8, n: u8, seed: u8) -> Grant {
    let p = patient(seed);
    let lab = portion(&p, "lab");
    let doctor = user(seed);
    let rk = ReKey::generate_with_rng(&lab, doctor.public(), &mut rng(seed ^ 0x10));
    let (commitments, shares) = rk.split_with_rng(t, n, &mut rng(seed ^ 0x20)).unwrap();
    let grant = p
        .sign_share_grant_with_rng(
            &label("lab"),
            0,
            &Identity::new("dr-robust").unwrap(),
            &commitments,
            &GrantOptions::default(),
            &mut rng(seed ^ 0x30),
        )
        .unwrap();
    let other = ReKey::generate_with_rng(&lab, doctor.public(), &mut rng(seed ^ 0x40));
    let (_, other_grant) = other.split_with_rng(t, n, &mut rng(seed ^ 0x50)).unwrap();
    // A key of the adversary's own with the grant's X_e, X_{P,c}, X_U: its
    // shares re-encrypt with valid proofs against forged commitments.
    let rk_bytes = rk.to_bytes();
    let mut forged_bytes = rk_bytes.to_vec();
    let fake = KeyPair::generate_with_rng(&mut rng(seed ^ 0x60));
    forged_bytes[5..37].copy_from_slice(&fake.secret().to_bytes()[..]);
    let end = forged_bytes.len();
    forged_bytes[end - 32..].copy_from_slice(fake.public().as_bytes());
    let forged_rk = ReKey::from_bytes(&forged_bytes).unwrap();
    assert_eq!(forged_rk.ephemeral(), rk.ephemeral());
    let (_, forged) = forged_rk
        .split_with_rng(t, n, &mut rng(seed ^ 0x70))
        .unwrap();
    let want = plaintext(500, seed);
    let sealed = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([seed; 16]),
        T0,
        &want,
        &mut rng(seed ^ 0x80),
    )
    .unwrap();
    Grant {
        t,
        n,
        doctor,
        commitments,
        grant,
        consent: p.consent_public(),
        shares,
        other_grant,
        forged,
        sealed,
        want,
    }
}

impl Grant {
    fn opener(&self) -> ThresholdOpener {
        checked_opener(&self.doctor, &self.grant, &self.consent, &self.commitments)
    }

    fn header(&self) -> VerifiedHeader<'_> {
        self.sealed.header().verify().unwrap()
    }

    /// Node `i`'s honest answer, with its proof.
    fn honest(&self, i: u8) -> Vec<u8> {
        self.shares[usize::from(i) - 1]
            .reencrypt_with_proof_with_rng(self.header(), &mut rng(i))
            .unwrap()
            .to_bytes()
    }

    /// Node `i`'s answer as adversary `kind`.
    fn lie(&self, i: u8, kind: u8) -> Vec<u8> {
        let k = usize::from(i) - 1;
        let next = (k + 1) % usize::from(self.n);
        match kind % 6 {
            // Bytes that are no re-capsule at all.
            0 => vec![i; 40],
            // Another node's honest answer, sent as its own.
            1 => self.honest(next as u8 + 1),
            // Its own answer with the index changed to another node's.
            2 => {
                let mut b = self.honest(i);
                b[6] = next as u8 + 1;
                b
            }
            // A share of another grant (another X_e).
            3 => self.other_grant[k]
                .reencrypt_with_proof_with_rng(self.header(), &mut rng(i))
                .unwrap()
                .to_bytes(),
            // A wrong E'_i (another node's) beside its own proof.
            4 => {
                let mut b = self.honest(i);
                let other = self.honest(next as u8 + 1);
                b[103..135].copy_from_slice(&other[103..135]);
                b
            }
            // A valid proof against forged commitments (the framing attack).
            _ => self.forged[k]
                .reencrypt_with_proof_with_rng(self.header(), &mut rng(i))
                .unwrap()
                .to_bytes(),
        }
    }
}

/// Opens with the answers of `liars` (and their kinds) first, then of
/// `honest`; checks the verdict against the truth.
fn check(g: &Grant, honest: &[u8], liars: &[(u8, u8)]) {
    let mut answers: Vec<(u8, Vec<u8>)> = liars.iter().map(|&(i, k)| (i, g.lie(i, k))).collect();
    answers.extend(honest.iter().map(|&i| (i, g.honest(i))));
    let tagged: Vec<(u8, &[u8])> = answers.iter().map(|(i, b)| (*i, b.as_slice())).collect();
    let mut named: Vec<u8> = liars.iter().map(|&(i, _)| i).collect();
    named.sort_unstable();
    let opener = g.opener();
    for verified in [false, true] {
        let got = if verified {
            opener.open_verified(&g.sealed, &tagged)
        } else {
            opener.open(&g.sealed, &tagged)
        };
        if honest.len() >= usize::from(g.t) {
            let got = got.unwrap_or_else(|e| panic!("{honest:?} {liars:?}: {e}"));
            assert_eq!(got.plaintext(), g.want);
            assert_eq!(
                got.bad_nodes(),
                named,
                "{honest:?} {liars:?} verified={verified}"
            );
            assert!(got.used().iter().all(|i| honest.contains(i)));
            assert_eq!(got.verdicts().len(), tagged.len());
            for v in &got.verdicts()[..liars.len()] {
                assert!(v.fault().is_some(), "{v}");
            }
        } else {
            match got {
                Err(Error::TooFewShares {
                    needed,
                    valid,
                    verdicts,
                }) => {
                    assert_eq!(needed, g.t);
                    assert_eq!(usize::from(valid), honest.len());
                    assert_eq!(verdicts.len(), tagged.len());
                    for v in &verdicts[..liars.len()] {
                        assert!(v.fault().is_some(), "{v}");
                    }
                    for v in &verdicts[liars.len()..] {
                        assert!(v.fault().is_none(), "{v}");
                    }
                }
                other => panic!("{honest:?} {liars:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn t_honest_answers_open_whatever_the_others_hold() {
    for (t, n, seed) in [(2u8, 3u8, 1u8), (3, 5, 2), (4, 7, 3)] {
        let g = grant(t, n, seed);
        let liars: Vec<u8> = (t + 1..=n).collect();
        // Every kind of lie from every adversarial node at once.
        for kind in 0..6u8 {
            let set: Vec<(u8, u8)> = liars.iter().map(|&i| (i, kind + i)).collect();
            check(&g, &(1..=t).collect::<Vec<_>>(), &set);
        }
        // t − 1 honest answers and every liar: too few, every reason given.
        let set: Vec<(u8, u8)> = (t..=n).map(|i| (i, i)).collect();
        check(&g, &(1..t).collect::<Vec<_>>(), &set);
    }
}

/// Every single-bit flip of one honest answer (node 2 of 2-of-3, given
/// first): the record opens, and no one but node 2 is named; checking the
/// proofs first, node 2 is always named (a flip of the proof alone leaves
/// `E'_2` right: the optimistic open may use it, correctly).
#[test]
fn every_bit_flip_of_one_answer_is_set_aside_and_named() {
    let g = grant(2, 3, 9);
    let opener = g.opener();
    let good = g.honest(2);
    let (one, three) = (g.honest(1), g.honest(3));
    for bit in 0..good.len() * 8 {
        let mut b = good.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let tagged: [(u8, &[u8]); 3] = [(2, &b), (1, &one), (3, &three)];
        let got = opener.open(&g.sealed, &tagged).unwrap();
        assert_eq!(got.plaintext(), g.want);
        assert!(
            got.bad_nodes() == [2] || got.used().contains(&2),
            "bit {bit}"
        );
        assert!(!got.bad_nodes().contains(&1) && !got.bad_nodes().contains(&3));
        let got = opener.open_verified(&g.sealed, &tagged).unwrap();
        assert_eq!(got.plaintext(), g.want);
        assert_eq!(got.bad_nodes(), [2], "bit {bit}");
        assert!(got.verdicts()[0].fault().is_some());
        // Decoded shares (attributed to the index they carry) open too.
        if let Ok(rc) = ReCapsule::from_bytes(&b) {
            let decoded = [
                rc,
                ReCapsule::from_bytes(&one).unwrap(),
                ReCapsule::from_bytes(&three).unwrap(),
            ];
            let got = opener.open(&g.sealed, &decoded).unwrap();
            assert_eq!(got.plaintext(), g.want, "bit {bit}");
            assert!(!got.bad_nodes().contains(&1) && !got.bad_nodes().contains(&3));
        }
    }
}

/// The framing attack: a node that hands the user commitments of its own
/// (a `C_1` whose share it knows) cannot get them past the patient's proof
/// or signature; against the patient's commitments its answer — with a
/// proof valid for its forged ones — names it and no one else.
#[test]
fn a_node_cannot_frame_the_honest_ones() {
    let g = grant(2, 3, 11);
    // Forged commitments: C_1 replaced by a point whose log the node knows.
    let mut forged = g.commitments.to_bytes();
    let c1 = 7 + 96 + 32;
    forged[c1..c1 + 32].copy_from_slice(user(77).public().as_bytes());
    assert!(matches!(
        ShareCommitments::from_bytes(&forged),
        Err(Error::InvalidCommitments)
    ));
    // Commitments of another split of another key, with a proof of their
    // own: decode, but no signed grant of the patient names them.
    let (other_c, _) = ReKey::generate_with_rng(
        &portion(&patient(11), "lab"),
        g.doctor.public(),
        &mut rng(99),
    )
    .split(2, 3)
    .unwrap();
    assert!(matches!(
        g.grant.verify_commitments(&g.consent, &other_c),
        Err(Error::InvalidCommitments)
    ));
    assert!(matches!(
        VerifiedCommitments::new(&other_c, &g.grant, &g.consent),
        Err(Error::InvalidCommitments)
    ));
    let v = VerifiedCommitments::new(&g.commitments, &g.grant, &g.consent).unwrap();
    assert_eq!(v.commitments(), &g.commitments);
    assert!(matches!(
        g.grant
            .verify_commitments(&patient(12).consent_public(), &g.commitments),
        Err(Error::InvalidSignature { .. })
    ));
    // With the patient's commitments: node 3 answers first with a share of
    // the forged key (its proof holds against the forged R_3).
    for liar in 1..=3u8 {
        let honest: Vec<u8> = (1..=3).filter(|&i| i != liar).collect();
        check(&g, &honest, &[(liar, 5)]);
    }
}

/// No byte of a proved re-capsule — whole or share — can change and still
/// verify: `V`, `s`, the flags and the index are in the proof.
#[test]
fn the_proof_covers_every_byte_of_the_recapsule() {
    let g = grant(2, 3, 13);
    let p = patient(13);
    let rk = ReKey::generate_with_rng(&portion(&p, "lab"), g.doctor.public(), &mut rng(1));
    let whole = rk
        .reencrypt_with_proof_with_rng(g.header(), &mut rng(2))
        .unwrap();
    let share = g.shares[1]
        .reencrypt_with_proof_with_rng(g.header(), &mut rng(3))
        .unwrap();
    let r2 = g.commitments.verification_key(2).unwrap();
    for (rc, key) in [(&whole, rk.commitment()), (&share, &r2)] {
        rc.verify_proof(key).unwrap();
        let b = rc.to_bytes();
        let mut decoded = 0;
        for bit in 0..b.len() * 8 {
            let mut x = b.clone();
            x[bit / 8] ^= 1 << (bit % 8);
            if let Ok(altered) = ReCapsule::from_bytes(&x) {
                decoded += 1;
                assert!(altered.verify_proof(key).is_err(), "bit {bit}");
            }
        }
        // V and s alone are 64 bytes of mostly decodable flips.
        assert!(decoded > 300, "{decoded}");
        // An index added to a whole re-capsule, or taken from a share.
        let mut x = b.clone();
        if rc.share_index().is_none() {
            x[5] |= 2;
            x.insert(6, 1);
        } else {
            x[5] &= !2;
            x.remove(6);
        }
        let altered = ReCapsule::from_bytes(&x).unwrap();
        assert!(altered.verify_proof(key).is_err());
    }
}

/// Version-1 re-capsules (whose proof left V, s, the flags and the index
/// out), commitments and key shares are refused by version number.
#[test]
fn version_1_encodings_are_refused_by_number() {
    let g = grant(2, 3, 14);
    let rc = g.honest(1);
    let mut b = rc.clone();
    b[4] = 1;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::UnsupportedVersion {
            what: "re-capsule",
            version: 1
        })
    ));
    let mut c = g.commitments.to_bytes();
    c[4] = 1;
    assert!(matches!(
        ShareCommitments::from_bytes(&c),
        Err(Error::UnsupportedVersion { version: 1, .. })
    ));
    let mut s = g.shares[0].to_bytes().to_vec();
    s[4] = 1;
    assert!(matches!(
        ReKeyShare::from_bytes(&s),
        Err(Error::UnsupportedVersion { version: 1, .. })
    ));
    assert!(
        Error::UnsupportedVersion {
            what: "re-capsule",
            version: 1
        }
        .to_string()
        .contains("version 1")
    );
}

/// A patient replaces a split (a node suspected, a share lost): a fresh key,
/// a fresh split, one signed grant, one call per node. Nodes that took it
/// serve the new shares; the old shares and commitments no longer combine
/// with them; a node not reached keeps serving the old share, which alone
/// opens nothing.
#[test]
fn a_split_is_replaced_with_one_call_per_node() {
    use sesphr::srs::{ManualClock, Purpose, Role, Srs, SrsConfig, StorageKey};
    const NOW: u64 = 1_750_000_000;
    let alice = patient(15);
    let doc = Identity::new("dr-refresh").unwrap();
    let doc_keys = user(15);
    let clock = ManualClock::new(NOW);
    let nodes: Vec<Srs> = (0..3)
        .map(|_| {
            let n = Srs::open(
                SrsConfig::new(store::MemoryStore::new(), StorageKey::generate())
                    .clock(clock.clone()),
            )
            .unwrap();
            n.add_patient(&alice, &[(label("lab"), 0)]).unwrap();
            n.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
            n
        })
        .collect();
    let split = |at: u64, seed: u8| {
        let rk = ReKey::generate_with_rng(
            &alice.portion_secret(&label("lab"), 0),
            doc_keys.public(),
            &mut rng(seed),
        );
        let (c, shares) = rk.split(2, 3).unwrap();
        let g = alice
            .sign_share_grant(
                &label("lab"),
                0,
                &doc,
                &c,
                &GrantOptions {
                    issued_at: Some(at),
                    ..Default::default()
                },
            )
            .unwrap();
        (c, shares, g)
    };
    let (old_c, old_shares, old_g) = split(NOW - 100, 1);
    for (n, s) in nodes.iter().zip(old_shares.clone()) {
        n.grant_share(&old_g, s).unwrap();
    }
    let record = SealedPortion::seal(
        &alice.portion_public(&label("lab"), 0),
        RecordId::random(),
        NOW - 50,
        b"ferritin 12",
    )
    .unwrap();
    let ask = |k: usize| {
        nodes[k]
            .reencrypt_with_proof(&doc, record.header(), Purpose::Treatment)
            .unwrap()
    };
    let opener = |c: &ShareCommitments, g: &SignedGrant| {
        let v = g.verify_commitments(&alice.consent_public(), c).unwrap();
        ThresholdOpener::new(&doc_keys, &v).unwrap()
    };
    assert_eq!(
        opener(&old_c, &old_g)
            .open(&record, &[ask(0), ask(1)])
            .unwrap()
            .plaintext(),
        b"ferritin 12"
    );
    // The new split reaches nodes 1 and 2; node 3 is unreachable.
    clock.advance(10);
    let (new_c, new_shares, new_g) = split(NOW - 5, 2);
    for (n, s) in nodes.iter().zip(new_shares).take(2) {
        n.grant_share(&new_g, s).unwrap();
    }
    let (a1, a2, a3) = (ask(0), ask(1), ask(2));
    let fresh = opener(&new_c, &new_g);
    let got = fresh.open(&record, &[a1.clone(), a2, a3.clone()]).unwrap();
    assert_eq!(got.plaintext(), b"ferritin 12");
    assert_eq!(got.used(), [1, 2]);
    // The holder of the new grant refuses the old commitments.
    assert!(matches!(
        new_g.verify_commitments(&alice.consent_public(), &old_c),
        Err(Error::InvalidCommitments)
    ));
    // Under the old commitments, node 3's old share is one of two needed:
    // the new answers are of another grant.
    match opener(&old_c, &old_g).open(&record, &[a1, a3]) {
        Err(Error::TooFewShares {
            valid: 1, verdicts, ..
        }) => assert!(matches!(
            verdicts[0].fault(),
            Some(ShareFault::OtherCapsule)
        )),
        other => panic!("{other:?}"),
    }
    // The old shares cannot be installed again: the old grant is older
    // than the one in force.
    for (n, s) in nodes.iter().zip(old_shares).take(2) {
        assert!(n.grant_share(&old_g, s).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Random adversary sets: for a random split, a random set of liars
    /// with random kinds, and a random number of honest answers.
    #[test]
    fn random_adversaries(which in 0usize..3, liar_mask in any::<u8>(), kinds in any::<[u8; 8]>(), seed in any::<u8>()) {
        let (t, n) = [(2u8, 3u8), (3, 5), (4, 7)][which];
        let g = grant(t, n, seed);
        let liars: Vec<(u8, u8)> = (1..=n)
            .filter(|i| liar_mask & (1 << (i - 1)) != 0)
            .map(|i| (i, kinds[usize::from(i) % 8]))
            .collect();
        let honest: Vec<u8> = (1..=n).filter(|i| liar_mask & (1 << (i - 1)) == 0).collect();
        check(&g, &honest, &liars);
    }
}
