//! Threshold re-encryption (t of n): any t shares open, t − 1 never do;
//! shares of other grants, duplicate indices, shares that do not match their
//! commitments, wrong node answers and wrong commitments are each refused
//! or named; encodings are strict; property tests over random t, n and
//! subsets.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::too_many_lines
)]

mod common;
use common::*;
use proptest::prelude::*;
use sesphr::*;

struct Split {
    doctor: KeyPair,
    commitments: ShareCommitments,
    shares: Vec<ReKeyShare>,
    sealed: SealedPortion,
    grant: consent::SignedGrant,
    consent: ed25519_dalek::VerifyingKey,
}

impl Split {
    /// The doctor's opener, the commitments checked against the patient's
    /// signed share grant.
    fn opener(&self) -> ThresholdOpener {
        checked_opener(&self.doctor, &self.grant, &self.consent, &self.commitments)
    }
}

fn split(t: u8, n: u8, seed: u8) -> Split {
    let p = patient(seed);
    let lab = portion(&p, "lab");
    let doctor = user(seed);
    let rk = ReKey::generate_with_rng(&lab, doctor.public(), &mut rng(seed.wrapping_add(50)));
    let (commitments, shares) = rk
        .split_with_rng(t, n, &mut rng(seed.wrapping_add(60)))
        .unwrap();
    let sealed = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([seed; 16]),
        T0,
        &plaintext(300, seed),
        &mut rng(seed.wrapping_add(70)),
    )
    .unwrap();
    let grant = p
        .sign_share_grant_with_rng(
            &label("lab"),
            0,
            &Identity::new("dr-split").unwrap(),
            &commitments,
            &consent::GrantOptions::default(),
            &mut rng(seed.wrapping_add(80)),
        )
        .unwrap();
    Split {
        doctor,
        commitments,
        shares,
        sealed,
        grant,
        consent: p.consent_public(),
    }
}

fn answers(s: &Split, nodes: &[u8], proof: bool) -> Vec<ReCapsule> {
    nodes
        .iter()
        .map(|&i| {
            let share = &s.shares[usize::from(i) - 1];
            let v = s.sealed.header().verify().unwrap();
            if proof {
                share.reencrypt_with_proof(v).unwrap()
            } else {
                share.reencrypt(v).unwrap()
            }
        })
        .collect()
}

/// All subsets of `1..=n` of size `k`.
fn subsets(n: u8, k: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize == k {
            out.push((1..=n).filter(|i| mask & (1 << (i - 1)) != 0).collect());
        }
    }
    out
}

#[test]
fn any_t_of_n_open_and_t_minus_1_never_do() {
    for (t, n) in [(2u8, 2u8), (2, 3), (3, 5), (4, 6)] {
        let s = split(t, n, t * 10 + n);
        let opener = s.opener();
        let want = plaintext(300, t * 10 + n);
        for set in subsets(n, usize::from(t)) {
            let got = opener.open(&s.sealed, &answers(&s, &set, false)).unwrap();
            assert_eq!(got.plaintext(), want, "t={t} n={n} {set:?}");
            assert_eq!(got.used(), set);
            assert!(got.bad_nodes().is_empty());
            // Fully verified, with proofs.
            let got = opener
                .open_verified(&s.sealed, &answers(&s, &set, true))
                .unwrap();
            assert_eq!(got.plaintext(), want);
        }
        for set in subsets(n, usize::from(t) - 1) {
            match opener.open(&s.sealed, &answers(&s, &set, false)) {
                Err(Error::TooFewShares {
                    needed,
                    valid,
                    verdicts,
                }) => {
                    assert_eq!((needed, usize::from(valid)), (t, set.len()));
                    assert_eq!(verdicts.len(), set.len());
                    assert!(verdicts.iter().all(|v| v.fault().is_none()));
                }
                other => panic!("t-1 shares: {other:?}"),
            }
        }
        // More than t: the first t are used.
        let all: Vec<u8> = (1..=n).collect();
        let got = opener.open(&s.sealed, &answers(&s, &all, false)).unwrap();
        assert_eq!(got.used(), &all[..usize::from(t)]);
    }
}

/// t − 1 honest shares completed by a share of another split of the same
/// key (same `rk`, another polynomial) combine to a wrong point: the AEAD
/// fails and nothing is released; with proofs, the foreign share is named.
#[test]
fn t_minus_1_shares_completed_by_anything_else_open_nothing() {
    let s = split(3, 5, 7);
    let other = {
        let p = patient(7);
        let rk = ReKey::generate_with_rng(&portion(&p, "lab"), s.doctor.public(), &mut rng(57));
        // The same rk (same seed), split again with another polynomial.
        let (c, shares) = rk.split_with_rng(3, 5, &mut rng(99)).unwrap();
        assert_eq!(c.commitment(), s.commitments.commitment());
        assert_ne!(c, s.commitments);
        shares
    };
    let opener = s.opener();
    let mut mixed = answers(&s, &[1, 2], false);
    mixed.push(
        other[2]
            .reencrypt(s.sealed.header().verify().unwrap())
            .unwrap(),
    );
    // Without proofs nothing can be judged: once the combination fails, a
    // share without a proof is set aside; nothing is released.
    assert!(matches!(
        opener.open(&s.sealed, &mixed),
        Err(Error::TooFewShares { valid: 2, .. })
    ));
    let mut mixed = answers(&s, &[1, 2], true);
    mixed.push(
        other[2]
            .reencrypt_with_proof(s.sealed.header().verify().unwrap())
            .unwrap(),
    );
    match opener.open(&s.sealed, &mixed) {
        Err(Error::TooFewShares {
            needed: 3,
            valid: 2,
            verdicts,
        }) => {
            assert_eq!(verdicts[2].node(), Some(3));
            assert!(matches!(verdicts[2].fault(), Some(ShareFault::BadProof)));
            assert!(verdicts[..2].iter().all(|v| v.fault().is_none()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn shares_of_two_grants_never_combine() {
    let a = split(2, 3, 1);
    // Another grant of the same portion to the same doctor (another X_e).
    let p = patient(1);
    let rk = ReKey::generate_with_rng(&portion(&p, "lab"), a.doctor.public(), &mut rng(200));
    let (_, b_shares) = rk.split_with_rng(2, 3, &mut rng(201)).unwrap();
    let opener = a.opener();
    let mut mixed = answers(&a, &[1], false);
    mixed.push(
        b_shares[1]
            .reencrypt(a.sealed.header().verify().unwrap())
            .unwrap(),
    );
    let other_grant = |r: sesphr::Result<ThresholdOpened>| match r {
        Err(Error::TooFewShares {
            valid: 1, verdicts, ..
        }) => assert!(matches!(
            verdicts[1].fault(),
            Some(ShareFault::OtherCapsule)
        )),
        other => panic!("{other:?}"),
    };
    other_grant(opener.open(&a.sealed, &mixed));
    // A share of another record's capsule.
    let other = SealedPortion::seal(
        &p.portion_public(&label("lab"), 0),
        RecordId::random(),
        T0,
        b"x",
    )
    .unwrap();
    let mut mixed = answers(&a, &[1], false);
    mixed.push(
        a.shares[1]
            .reencrypt(other.header().verify().unwrap())
            .unwrap(),
    );
    other_grant(opener.open(&a.sealed, &mixed));
    // A whole re-capsule is not a share, and a share is not a whole one.
    let whole = rk.reencrypt(a.sealed.header().verify().unwrap()).unwrap();
    match opener.open(&a.sealed, &[answers(&a, &[1], false).remove(0), whole]) {
        Err(Error::TooFewShares {
            valid: 1, verdicts, ..
        }) => assert!(matches!(verdicts[1].fault(), Some(ShareFault::NotAShare))),
        other => panic!("{other:?}"),
    }
    let share = answers(&a, &[1], false).remove(0);
    assert!(matches!(
        a.sealed.open_as_delegatee(&a.doctor, &share),
        Err(Error::KeyMismatch)
    ));
    // A node's share of another portion's header is refused by the node.
    let med = SealedPortion::seal(
        &p.portion_public(&label("medical"), 0),
        RecordId::random(),
        T0,
        b"x",
    )
    .unwrap();
    assert!(matches!(
        a.shares[0].reencrypt(med.header().verify().unwrap()),
        Err(Error::KeyMismatch)
    ));
}

#[test]
fn duplicate_index_is_rejected() {
    let s = split(2, 3, 3);
    let opener = s.opener();
    for set in [[1u8, 1], [2, 2]] {
        match opener.open(&s.sealed, &answers(&s, &set, false)) {
            Err(Error::TooFewShares {
                valid: 1, verdicts, ..
            }) => {
                assert!(matches!(verdicts[1].fault(), Some(ShareFault::Duplicate)));
                assert_eq!(verdicts[1].node(), Some(set[0]));
            }
            other => panic!("{other:?}"),
        }
    }
    // A copy beside enough good shares is set aside, and names no one.
    let got = opener
        .open(&s.sealed, &answers(&s, &[1, 2, 1], false))
        .unwrap();
    assert_eq!(got.plaintext(), plaintext(300, 3));
    assert!(matches!(
        got.verdicts()[2].fault(),
        Some(ShareFault::Duplicate)
    ));
    assert!(got.bad_nodes().is_empty());
}

#[test]
fn a_share_that_does_not_match_its_commitments_is_refused() {
    let s = split(2, 3, 4);
    for sh in &s.shares {
        sh.verify().unwrap();
        assert_eq!(ReKeyShare::from_bytes(&sh.to_bytes()).unwrap(), *sh);
    }
    // Node 1's scalar under node 2's index; any changed scalar; changed
    // commitments.
    let mut b = s.shares[0].to_bytes().to_vec();
    b[5] = 2;
    assert!(matches!(
        ReKeyShare::from_bytes(&b),
        Err(Error::InvalidShare { index: 2 })
    ));
    let mut b = s.shares[0].to_bytes().to_vec();
    b[6] ^= 1;
    assert!(matches!(
        ReKeyShare::from_bytes(&b),
        Err(Error::InvalidShare { index: 1 })
    ));
    // The last coefficient of another split: the patient's proof over
    // the commitments fails.
    let other = split(2, 3, 5);
    let mut b = s.shares[0].to_bytes().to_vec();
    let tail = other.commitments.to_bytes();
    let (len, tlen) = (b.len(), tail.len());
    b[len - 96..len - 64].copy_from_slice(&tail[tlen - 96..tlen - 64]);
    assert!(matches!(
        ReKeyShare::from_bytes(&b),
        Err(Error::InvalidCommitments)
    ));
    // Index 0 and indices above n.
    for i in [0u8, 4, 255] {
        let mut b = s.shares[0].to_bytes().to_vec();
        b[5] = i;
        assert!(matches!(
            ReKeyShare::from_bytes(&b),
            Err(Error::InvalidShare { index }) if index == i
        ));
    }
}

/// A node returning a wrong `E'_i` is named, and the open goes on with the
/// others when enough remain.
#[test]
fn a_lying_node_is_named() {
    let s = split(2, 3, 8);
    let opener = s.opener();
    let want = plaintext(300, 8);
    for liar in 1..=3u8 {
        let mut rcs = answers(&s, &[1, 2, 3], true);
        // The liar returns another node's E' (valid point, wrong value)
        // under its own index, with its own proof: the proof fails.
        let idx = usize::from(liar) - 1;
        let donor = (idx + 1) % 3;
        let mut b = rcs[idx].to_bytes();
        let e_off = 6 + 1 + 96;
        let donor_e = rcs[donor].e_prime().to_vec();
        b[e_off..e_off + 32].copy_from_slice(&donor_e);
        rcs[idx] = ReCapsule::from_bytes(&b).unwrap();
        let got = opener.open(&s.sealed, &rcs).unwrap();
        assert_eq!(got.plaintext(), want);
        assert!(!got.used().contains(&liar));
        if liar == 3 {
            // Optimistic: the first two shares open, the third is not looked at.
            assert!(got.bad_nodes().is_empty());
        } else {
            assert_eq!(got.bad_nodes(), [liar], "liar {liar}");
        }
        // Fully verified: named before combining.
        let got = opener.open_verified(&s.sealed, &rcs).unwrap();
        assert_eq!(got.bad_nodes(), [liar]);
        // Only the liar and one honest node: too few good shares, the liar named.
        let two: Vec<ReCapsule> = rcs
            .iter()
            .filter(|rc| rc.share_index() == Some(liar) || rc.share_index() == Some(1 + (liar % 3)))
            .cloned()
            .collect();
        match opener.open(&s.sealed, &two) {
            Err(Error::TooFewShares {
                valid: 1, verdicts, ..
            }) => {
                let named: Vec<_> = verdicts.iter().filter(|v| v.fault().is_some()).collect();
                assert_eq!(named.len(), 1);
                assert_eq!(named[0].node(), Some(liar));
                assert!(matches!(named[0].fault(), Some(ShareFault::BadProof)));
            }
            other => panic!("{other:?}"),
        }
    }
    // Without proofs a wrong share cannot be told from a right one:
    // nothing is released, and no one is named.
    let mut rcs = answers(&s, &[1, 2], false);
    let mut b = rcs[0].to_bytes();
    let e2 = rcs[1].e_prime().to_vec();
    b[7 + 96..7 + 128].copy_from_slice(&e2);
    rcs[0] = ReCapsule::from_bytes(&b).unwrap();
    match opener.open(&s.sealed, &rcs) {
        Err(Error::TooFewShares {
            valid: 1, verdicts, ..
        }) => {
            assert!(matches!(verdicts[0].fault(), Some(ShareFault::NoProof)));
            assert!(verdicts[1].fault().is_none());
        }
        other => panic!("{other:?}"),
    }
    // Required proofs: a share without one counts as bad.
    let strict = opener.clone().require_proof();
    let mut rcs = answers(&s, &[1, 2], true);
    rcs.push(answers(&s, &[3], false).remove(0));
    let got = strict.open(&s.sealed, &rcs).unwrap();
    assert_eq!(got.bad_nodes(), [3]);
    let rcs = answers(&s, &[1, 3], false);
    assert!(matches!(
        strict.open(&s.sealed, &rcs),
        Err(Error::TooFewShares { valid: 0, .. })
    ));
}

#[test]
fn an_altered_body_fails_with_honest_shares() {
    let s = split(2, 3, 9);
    let opener = s.opener();
    let mut b = s.sealed.to_bytes();
    let last = b.len() - 1;
    b[last] ^= 1;
    let altered = SealedPortion::from_bytes(&b).unwrap();
    let rcs = answers(&s, &[1, 2, 3], true);
    assert!(matches!(
        opener.open(&altered, &rcs),
        Err(Error::DecryptionFailed)
    ));
}

#[test]
fn commitments_not_of_this_grant_are_refused() {
    let s = split(2, 3, 10);
    s.opener();
    // C_0 replaced by another point, or X_e: the patient's proof over the
    // commitments fails, they do not even decode.
    let other = split(2, 3, 11);
    let mut b = s.commitments.to_bytes();
    let c0 = 7 + 96;
    b[c0..c0 + 32].copy_from_slice(other.commitments.commitment().as_bytes());
    assert!(matches!(
        ShareCommitments::from_bytes(&b),
        Err(Error::InvalidCommitments)
    ));
    let mut b = s.commitments.to_bytes();
    b[7..39].copy_from_slice(other.commitments.ephemeral().as_bytes());
    assert!(matches!(
        ShareCommitments::from_bytes(&b),
        Err(Error::InvalidCommitments)
    ));
    // Another split's commitments: not what the grant signed.
    assert!(matches!(
        s.grant.verify_commitments(&s.consent, &other.commitments),
        Err(Error::InvalidCommitments)
    ));
    // Another patient's grant under this patient's key: bad signature.
    assert!(matches!(
        other
            .grant
            .verify_commitments(&s.consent, &other.commitments),
        Err(Error::InvalidSignature { .. })
    ));
    // Another user's commitments.
    assert!(matches!(
        ThresholdOpener::new_unauthenticated(&other.doctor, &s.commitments),
        Err(Error::KeyMismatch)
    ));
    // The header of another portion key.
    let opener = s.opener();
    assert!(matches!(
        opener.open(&other.sealed, &answers(&other, &[1, 2], false)),
        Err(Error::KeyMismatch)
    ));
}

#[test]
fn thresholds_outside_the_range_are_refused() {
    let p = patient(12);
    let rk = ReKey::generate(&portion(&p, "lab"), user(12).public());
    for (t, n) in [(0u8, 3u8), (1, 3), (4, 3), (2, 1), (2, 0)] {
        assert!(
            matches!(rk.split(t, n), Err(Error::InvalidThreshold)),
            "{t} {n}"
        );
    }
    let (c, shares) = rk.split(255, 255).unwrap();
    assert_eq!(shares.len(), 255);
    assert_eq!(c.to_bytes().len(), ShareCommitments::encoded_len(255));
    shares[254].verify().unwrap();
    // Decoding refuses t > n and t < 2.
    let (c, _) = rk.split(2, 3).unwrap();
    for (t, n) in [(3u8, 2u8), (1, 3)] {
        let mut b = c.to_bytes();
        b[5] = t;
        b[6] = n;
        assert!(ShareCommitments::from_bytes(&b).is_err());
    }
}

#[test]
fn encodings_are_strict() {
    let s = split(3, 4, 13);
    let c = s.commitments.to_bytes();
    assert_eq!(c.len(), ShareCommitments::encoded_len(3));
    assert_eq!(ShareCommitments::from_bytes(&c).unwrap(), s.commitments);
    let sh = s.shares[2].to_bytes();
    assert_eq!(sh.len(), ReKeyShare::encoded_len(3));
    let rc = answers(&s, &[2], true).remove(0);
    let rcb = rc.to_bytes();
    assert_eq!(rcb.len(), ReCapsule::SHARE_LEN_WITH_PROOF);
    assert_eq!(ReCapsule::from_bytes(&rcb).unwrap(), rc);
    assert_eq!(
        answers(&s, &[2], false).remove(0).to_bytes().len(),
        ReCapsule::SHARE_LEN
    );
    // Truncations and extensions are refused.
    for enc in [&c[..], &sh[..], &rcb[..]] {
        for cut in [0, 4, 5, enc.len() / 2, enc.len() - 1] {
            assert!(
                ShareCommitments::from_bytes(&enc[..cut]).is_err()
                    && ReKeyShare::from_bytes(&enc[..cut]).is_err()
                    && ReCapsule::from_bytes(&enc[..cut]).is_err()
            );
        }
        let mut long = enc.to_vec();
        long.push(0);
        assert!(
            ShareCommitments::from_bytes(&long).is_err()
                && ReKeyShare::from_bytes(&long).is_err()
                && ReCapsule::from_bytes(&long).is_err()
        );
    }
    // Every single-bit change of the commitments or of a share is refused:
    // the patient's proof covers every field (t, n, X_e, X_{P,c}, X_U, C_j),
    // the Feldman check ties the index and the scalar.
    for i in 0..c.len() * 8 {
        let mut b = c.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(
            ShareCommitments::from_bytes(&b).is_err(),
            "commitments bit {i}"
        );
    }
    for i in 0..sh.len() * 8 {
        let mut b = sh.to_vec();
        b[i / 8] ^= 1 << (i % 8);
        assert!(ReKeyShare::from_bytes(&b).is_err(), "share bit {i}");
    }
    // Re-capsule share: index 0 refused, reserved flag bits refused.
    let mut b = rcb.clone();
    b[6] = 0;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::InvalidShare { index: 0 })
    ));
    let mut b = rcb.clone();
    b[5] |= 8;
    assert!(matches!(
        ReCapsule::from_bytes(&b),
        Err(Error::ReservedBitsSet)
    ));
    // Secrets stay out of Debug.
    let dbg = format!("{:?}", s.shares[0]);
    assert!(!dbg.contains(&hex(&sh[6..38])));
}

#[test]
fn the_split_is_hedged_and_deterministic_for_a_seeded_rng() {
    let p = patient(14);
    let rk = ReKey::generate_with_rng(&portion(&p, "lab"), user(14).public(), &mut rng(1));
    let (c1, s1) = rk.split_with_rng(2, 3, &mut rng(2)).unwrap();
    let (c2, s2) = rk.split_with_rng(2, 3, &mut rng(2)).unwrap();
    assert_eq!((c1.clone(), s1), (c2, s2));
    let (c3, _) = rk.split_with_rng(2, 3, &mut rng(3)).unwrap();
    assert_ne!(c1, c3);
    // A constant RNG still gives different polynomials for different keys.
    let rk2 = ReKey::generate_with_rng(&portion(&p, "medical"), user(14).public(), &mut rng(1));
    let (c4, _) = rk2.split_with_rng(2, 3, &mut rng(2)).unwrap();
    assert_ne!(
        c1.coefficients().nth(1).unwrap(),
        c4.coefficients().nth(1).unwrap()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random t, n and subsets: exactly the subsets of size >= t open.
    #[test]
    fn random_subsets_open_exactly_from_t(
        t in 2u8..=6,
        extra in 0u8..=3,
        seed in any::<u8>(),
        order in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let n = t + extra;
        let s = split(t, n, seed);
        let opener = s.opener();
        // A random ordering of the nodes, then every prefix.
        let mut nodes: Vec<u8> = (1..=n).collect();
        for (k, o) in order.iter().enumerate() {
            let len = nodes.len();
            nodes.swap(k % len, usize::from(*o) % len);
        }
        for k in 1..=usize::from(n) {
            let got = opener.open(&s.sealed, &answers(&s, &nodes[..k], false));
            if k >= usize::from(t) {
                let got = got.unwrap();
                prop_assert_eq!(got.plaintext(), &plaintext(300, seed)[..]);
                prop_assert_eq!(got.used(), &nodes[..usize::from(t)]);
            } else {
                let too_few = matches!(got, Err(Error::TooFewShares { .. }));
                prop_assert!(too_few);
            }
        }
        // Shares re-encode exactly.
        for sh in &s.shares {
            prop_assert_eq!(&ReKeyShare::from_bytes(&sh.to_bytes()).unwrap(), sh);
        }
    }
}

/// Three SRS nodes, each an ordinary [`srs::Srs`] with its own store.
#[cfg(feature = "srs")]
mod nodes {
    use super::*;
    use sesphr::consent::GrantOptions;
    use sesphr::srs::*;

    const NOW: u64 = 1_800_000_000;

    pub(super) struct Net {
        pub nodes: Vec<Srs>,
        pub alice: PatientKeys,
        pub doc: Identity,
        pub doc_keys: KeyPair,
        pub commitments: ShareCommitments,
        pub report: SealedPortion,
        pub signed: consent::SignedGrant,
    }

    pub(super) fn node(store: impl store::Store + 'static) -> Srs {
        Srs::open(SrsConfig::new(store, StorageKey::generate()).clock(ManualClock::new(NOW)))
            .unwrap()
    }

    pub(super) fn net_on(nodes: Vec<Srs>) -> Net {
        let alice = patient(40);
        let doc = Identity::new("dr-grey").unwrap();
        let doc_keys = user(40);
        for n in &nodes {
            n.add_patient(&alice, &[(label("lab"), 0), (label("medical"), 0)])
                .unwrap();
            n.add_user(&doc, Role::Doctor, &doc_keys).unwrap();
        }
        let rk = ReKey::generate(&alice.portion_secret(&label("lab"), 0), doc_keys.public());
        let (commitments, shares) = rk.split(2, 3).unwrap();
        let options = GrantOptions {
            issued_at: Some(NOW),
            ..Default::default()
        };
        let signed = alice
            .sign_share_grant(&label("lab"), 0, &doc, &commitments, &options)
            .unwrap();
        for (n, share) in nodes.iter().zip(shares) {
            n.grant_share(&signed, share).unwrap();
        }
        let report = SealedPortion::seal(
            &alice.portion_public(&label("lab"), 0),
            RecordId::random(),
            NOW - 10,
            b"eGFR 58 mL/min",
        )
        .unwrap();
        Net {
            nodes,
            alice,
            doc,
            doc_keys,
            commitments,
            report,
            signed,
        }
    }

    pub(super) fn net() -> Net {
        net_on((0..3).map(|_| node(store::MemoryStore::new())).collect())
    }

    impl Net {
        pub(super) fn ask(&self, which: &[usize]) -> Vec<Result<ReCapsule, SrsError>> {
            which
                .iter()
                .map(|&i| {
                    self.nodes[i].reencrypt_with_proof(
                        &self.doc,
                        self.report.header(),
                        model::Purpose::Treatment,
                    )
                })
                .collect()
        }

        pub(super) fn opener(&self) -> ThresholdOpener {
            checked_opener(
                &self.doc_keys,
                &self.signed,
                &self.alice.consent_public(),
                &self.commitments,
            )
        }

        pub(super) fn open(&self, rcs: &[ReCapsule]) -> sesphr::Result<ThresholdOpened> {
            self.opener().open(&self.report, rcs)
        }
    }

    #[test]
    fn two_of_three_nodes_serve_one_down_and_a_liar_is_named() {
        let net = net();
        // Each node answers with its own index.
        let all: Vec<ReCapsule> = net
            .ask(&[0, 1, 2])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for (k, rc) in all.iter().enumerate() {
            assert_eq!(rc.share_index(), Some(k as u8 + 1));
            assert!(rc.proof().is_some());
        }
        assert_eq!(net.open(&all).unwrap().plaintext(), b"eGFR 58 mL/min");
        // Node 1 down: nodes 2 and 3 suffice.
        assert_eq!(net.open(&all[1..]).unwrap().plaintext(), b"eGFR 58 mL/min");
        // Node 2 lies (a wrong E'): named, and 1 and 3 open.
        let mut lied = all.clone();
        let mut b = lied[1].to_bytes();
        b[103..135].copy_from_slice(all[0].e_prime());
        lied[1] = ReCapsule::from_bytes(&b).unwrap();
        let got = net.open(&lied).unwrap();
        assert_eq!(got.plaintext(), b"eGFR 58 mL/min");
        assert_eq!(got.bad_nodes(), [2]);
        assert_eq!(got.used(), [1, 3]);
        // One node alone: too few.
        assert!(matches!(
            net.open(&all[..1]),
            Err(Error::TooFewShares {
                needed: 2,
                valid: 1,
                ..
            })
        ));
        // The registry shows the share; the audit names it; consent verifies.
        for (k, n) in net.nodes.iter().enumerate() {
            let g = n.registry().grants.into_values().next().unwrap();
            assert_eq!(g.share, Some(k as u8 + 1));
            assert_eq!(g.commitment.as_ref(), Some(net.commitments.commitment()));
            let grant_entry = n
                .audit_entries(0, 100)
                .unwrap()
                .into_iter()
                .find(|e| e.action == model::AuditAction::Grant)
                .unwrap();
            assert!(
                grant_entry
                    .detail
                    .contains(&format!("share={} of 2/3", k + 1))
            );
            let report = n.verify_consent().unwrap();
            assert_eq!(report.active_checked, 1);
            assert_eq!(report.grants, 1);
        }
    }

    #[test]
    fn access_ends_once_n_minus_t_plus_1_nodes_revoked() {
        let net = net();
        let revoke = |k: usize| {
            net.nodes[k]
                .revoke(
                    &net.alice
                        .sign_revocation_with_rng(&label("lab"), &net.doc, NOW, &mut fresh_rng())
                        .unwrap(),
                )
                .unwrap()
        };
        revoke(0);
        // Two nodes still serve: access goes on.
        let answers = net.ask(&[0, 1, 2]);
        assert!(matches!(answers[0], Err(SrsError::Denied(Denial::Revoked))));
        let served: Vec<ReCapsule> = answers.into_iter().filter_map(Result::ok).collect();
        assert_eq!(served.len(), 2);
        assert!(net.open(&served).is_ok());
        revoke(1);
        // n − t + 1 = 2 nodes revoked: one share is all a user can get.
        let served: Vec<ReCapsule> = net
            .ask(&[0, 1, 2])
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(served.len(), 1);
        assert!(matches!(net.open(&served), Err(Error::TooFewShares { .. })));
        // Even with the share it had before the revocation, a fresh record
        // needs two fresh shares: the old share was of another capsule.
        let fresh = SealedPortion::seal(
            &net.alice.portion_public(&label("lab"), 0),
            RecordId::random(),
            NOW - 5,
            b"K 4.1",
        )
        .unwrap();
        let one = net.nodes[2]
            .reencrypt(&net.doc, fresh.header(), model::Purpose::Treatment)
            .unwrap();
        assert!(matches!(
            net.opener().open(&fresh, &[one, served[0].clone()]),
            Err(Error::TooFewShares { valid: 1, .. })
        ));
    }

    #[test]
    fn nodes_refuse_shares_and_keys_that_are_not_the_signed_split() {
        let net = net();
        let n = node(store::MemoryStore::new());
        n.add_patient(&net.alice, &[(label("lab"), 0)]).unwrap();
        n.add_user(&net.doc, Role::Doctor, &net.doc_keys).unwrap();
        let before = n.registry();
        let rk = ReKey::generate(
            &net.alice.portion_secret(&label("lab"), 0),
            net.doc_keys.public(),
        );
        let (c2, shares2) = rk.split(2, 3).unwrap();
        // A share of another split under the signed grant.
        assert!(matches!(
            n.grant_share(&net.signed, shares2[0].clone()),
            Err(SrsError::ReKeyMismatch)
        ));
        // A whole key under a share grant, a share under a whole-key grant.
        assert!(matches!(
            n.grant(&net.signed, rk.clone()),
            Err(SrsError::ReKeyMismatch)
        ));
        let whole = net
            .alice
            .sign_grant(
                &label("lab"),
                0,
                &net.doc,
                &rk,
                &GrantOptions {
                    issued_at: Some(NOW),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(matches!(
            n.grant_share(&whole, shares2[0].clone()),
            Err(SrsError::ReKeyMismatch)
        ));
        // A share whose n was changed: the patient's proof over the
        // commitments fails, it does not decode.
        let signed2 = net
            .alice
            .sign_share_grant(
                &label("lab"),
                0,
                &net.doc,
                &c2,
                &GrantOptions {
                    issued_at: Some(NOW),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut b = shares2[1].to_bytes().to_vec();
        b[39] = 4;
        assert!(matches!(
            ReKeyShare::from_bytes(&b),
            Err(Error::InvalidCommitments)
        ));
        // The altered signed grant (another threshold) fails its signature.
        let mut g = signed2.to_bytes();
        let at = g.len() - 64 - 35;
        assert_eq!(g[at], 1);
        g[at + 1] = 3;
        let altered = consent::SignedGrant::from_bytes(&g).unwrap();
        assert!(n.grant_share(&altered, shares2[1].clone()).is_err());
        assert_eq!(n.registry(), before);
        // The genuine pair installs.
        n.grant_share(&signed2, shares2[1].clone()).unwrap();
        assert_eq!(
            n.registry().grants.into_values().next().unwrap().share,
            Some(2)
        );
        // The delegatee can check the commitments it was given against the
        // patient's signature.
        assert!(signed2.covers_commitments(&c2));
        assert!(!signed2.covers_commitments(&net.commitments));
        assert!(!net.signed.covers(&rk));
    }

    #[test]
    fn a_node_keeps_its_share_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..3)
            .map(|k| dir.path().join(format!("node{k}.db")))
            .collect();
        let key = [3u8; 32];
        let open = |p: &std::path::Path| {
            Srs::open(
                SrsConfig::new(
                    store::SqliteStore::open(p).unwrap(),
                    StorageKey::from_bytes(&key),
                )
                .clock(ManualClock::new(NOW)),
            )
            .unwrap()
        };
        let net = net_on(paths.iter().map(|p| open(p)).collect());
        let opener = net.opener();
        let Net {
            nodes, doc, report, ..
        } = net;
        drop(nodes);
        let reopened: Vec<Srs> = paths.iter().map(|p| open(p)).collect();
        let rcs: Vec<ReCapsule> = reopened
            .iter()
            .rev()
            .map(|n| {
                n.reencrypt_with_proof(&doc, report.header(), model::Purpose::Treatment)
                    .unwrap()
            })
            .collect();
        assert_eq!(rcs[0].share_index(), Some(3));
        let got = opener.open_verified(&report, &rcs).unwrap();
        assert_eq!(got.plaintext(), b"eGFR 58 mL/min");
        for n in &reopened {
            n.verify_audit().unwrap();
            n.verify_consent().unwrap();
        }
    }
}
