//! The cryptographic core against same-run baselines.
//!
//! `cargo bench --bench core`. Every figure is meant to be read as a ratio to
//! a baseline measured in the same run (`baseline/*`): these machines are
//! shared and noisy, ratios hold where absolute times drift.
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sesphr::rand_core::SeedableRng;
use sesphr::*;

const T0: u64 = 1_700_000_000;
const SIZES: [(&str, usize); 5] = [
    ("32B", 32),
    ("1KiB", 1024),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
    ("16MiB", 16 << 20),
];

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

fn baselines(c: &mut Criterion) {
    let mut r = rng();
    let s = Scalar::random(&mut r);
    let p = RistrettoPoint::random(&mut r);
    let mut g = c.benchmark_group("baseline");
    g.bench_function("scalar_mul", |b| b.iter(|| black_box(&p) * black_box(&s)));
    g.bench_function("fixed_base_mul", |b| {
        b.iter(|| black_box(&s) * RISTRETTO_BASEPOINT_TABLE)
    });
    let cp = p.compress();
    g.bench_function("compress", |b| b.iter(|| black_box(&p).compress()));
    g.bench_function("decompress", |b| b.iter(|| black_box(&cp).decompress()));
    g.finish();

    // In place over a warm buffer: the cipher's raw speed.
    let mut g = c.benchmark_group("baseline/chacha20poly1305");
    let aead = ChaCha20Poly1305::new(&[9u8; 32].into());
    for (name, len) in SIZES {
        let mut buf = vec![0u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                aead.encrypt_inout_detached(&Nonce::default(), &[], InOutBuf::from(&mut buf[..]))
                    .unwrap()
            })
        });
    }
    g.finish();

    // The fastest ChaCha20-Poly1305 here (AWS-LC's assembly, the `aws-lc`
    // backend's), in place over a warm buffer: the bulk baseline.
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce as N, UnboundKey};
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[9u8; 32]).unwrap());
        let mut g = c.benchmark_group("baseline/aws_lc_chacha20poly1305");
        for (name, len) in SIZES {
            let mut buf = vec![0u8; len];
            g.throughput(Throughput::Bytes(len as u64));
            g.bench_function(name, |b| {
                b.iter(|| {
                    key.seal_in_place_separate_tag(
                        N::assume_unique_for_key([0; 12]),
                        Aad::empty(),
                        &mut buf,
                    )
                    .unwrap()
                })
            });
        }
        g.finish();
    }

    // Borrowed plaintext in, fresh ciphertext out, as `Aead::encrypt` does and
    // as sealing does: the like-for-like baseline for `seal`.
    let mut g = c.benchmark_group("baseline/chacha20poly1305_alloc");
    for (name, len) in SIZES {
        let pt = vec![0u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut v = Vec::with_capacity(len + 16);
                v.extend_from_slice(black_box(&pt));
                let tag = aead
                    .encrypt_inout_detached(&Nonce::default(), &[], InOutBuf::from(&mut v[..]))
                    .unwrap();
                v.extend_from_slice(&tag);
                v
            })
        });
    }
    g.finish();
}

fn core_ops(c: &mut Criterion) {
    let mut r = rng();
    let patient = PatientKeys::generate_with_rng(Identity::new("patient").unwrap(), &mut r);
    let lab = patient.portion_secret(&PortionLabel::new("lab").unwrap(), 0);
    let user = KeyPair::generate_with_rng(&mut r);
    let rekey = ReKey::generate_with_rng(&lab, user.public(), &mut r);

    let mut g = c.benchmark_group("seal");
    for (name, len) in SIZES {
        let pt = vec![0x42u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                SealedPortion::seal_with_rng(
                    lab.public(),
                    RecordId::from_bytes([1; 16]),
                    T0,
                    black_box(&pt),
                    &mut r,
                )
                .unwrap()
            })
        });
    }
    g.finish();

    let enc = PortionEncryptor::new(lab.public());
    let mut g = c.benchmark_group("seal_table");
    g.bench_function("32B", |b| {
        b.iter(|| {
            enc.seal_with_rng(
                RecordId::from_bytes([1; 16]),
                T0,
                black_box(&[0x42; 32]),
                &mut r,
            )
            .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("open_owner");
    for (name, len) in SIZES {
        let s = SealedPortion::seal_with_rng(
            lab.public(),
            RecordId::from_bytes([1; 16]),
            T0,
            &vec![1u8; len],
            &mut r,
        )
        .unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| {
            b.iter(|| s.open_as_owner(black_box(&lab)).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("rekey");
    g.bench_function("generate", |b| {
        b.iter(|| ReKey::generate_with_rng(black_box(&lab), user.public(), &mut r))
    });
    g.finish();

    let small = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([1; 16]),
        T0,
        &[5u8; 32],
        &mut r,
    )
    .unwrap();
    let mut g = c.benchmark_group("reencrypt");
    g.bench_function("single", |b| {
        b.iter(|| {
            rekey
                .reencrypt(black_box(small.header()).verify().unwrap())
                .unwrap()
        })
    });
    g.bench_function("with_proof", |b| {
        b.iter(|| {
            rekey
                .reencrypt_with_proof_with_rng(black_box(small.header()).verify().unwrap(), &mut r)
                .unwrap()
        })
    });
    for n in [1usize, 16, 64, 256] {
        let sealed: Vec<SealedPortion> = (0..n)
            .map(|i| {
                SealedPortion::seal_with_rng(
                    lab.public(),
                    RecordId::from_bytes([i as u8; 16]),
                    T0,
                    &[5u8; 32],
                    &mut r,
                )
                .unwrap()
            })
            .collect();
        let headers: Vec<&PortionHeader> = sealed.iter().map(|s| s.header()).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("batch_{n}"), |b| {
            b.iter(|| {
                PortionHeader::verify_batch_with_rng(black_box(&headers), &mut r)
                    .into_iter()
                    .map(|v| rekey.reencrypt(v.unwrap()))
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();

    let rc = rekey.reencrypt(small.header().verify().unwrap()).unwrap();
    let opener = DelegateeOpener::new(&user, rekey.ephemeral(), lab.public().key());
    let mut g = c.benchmark_group("delegatee_open");
    g.bench_function("first_32B", |b| {
        b.iter(|| small.open_as_delegatee(black_box(&user), &rc).unwrap())
    });
    g.bench_function("cached_32B", |b| {
        b.iter(|| {
            black_box(&small)
                .open_as_delegatee_with(&opener, &rc)
                .unwrap()
        })
    });
    let rcp = rekey
        .reencrypt_with_proof_with_rng(small.header().verify().unwrap(), &mut r)
        .unwrap();
    g.bench_function("cached_32B_with_proof", |b| {
        b.iter(|| {
            black_box(&small)
                .open_as_delegatee_with(&opener, &rcp)
                .unwrap()
        })
    });
    let big = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([1; 16]),
        T0,
        &vec![3u8; 1 << 20],
        &mut r,
    )
    .unwrap();
    let big_rc = rekey.reencrypt(big.header().verify().unwrap()).unwrap();
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("cached_1MiB", |b| {
        b.iter(|| {
            black_box(&big)
                .open_as_delegatee_with(&opener, &big_rc)
                .unwrap()
        })
    });
    g.finish();

    // The published SeSPHR figures are for a 2 MB file: encryption 1.289 s,
    // decryption about 0.25 s. Same size here.
    let two_mb = vec![0x42u8; 2_000_000];
    let mut g = c.benchmark_group("paper_2MB");
    g.throughput(Throughput::Bytes(two_mb.len() as u64));
    g.bench_function("seal", |b| {
        b.iter(|| {
            SealedPortion::seal_with_rng(
                lab.public(),
                RecordId::from_bytes([1; 16]),
                T0,
                black_box(&two_mb),
                &mut r,
            )
            .unwrap()
        })
    });
    let s2 = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([1; 16]),
        T0,
        &two_mb,
        &mut r,
    )
    .unwrap();
    g.bench_function("open_owner", |b| {
        b.iter(|| s2.open_as_owner(black_box(&lab)).unwrap())
    });
    let rc2 = rekey.reencrypt(s2.header().verify().unwrap()).unwrap();
    g.bench_function("open_delegatee", |b| {
        b.iter(|| s2.open_as_delegatee(black_box(&user), &rc2).unwrap())
    });
    g.finish();

    // Chunks are independent: the same 1 MiB and 16 MiB on a 1-thread and a
    // 2-thread pool (the capsule's fixed cost weighs on 1 MiB, not 16).
    let mut g = c.benchmark_group("threads");
    for (name, len) in [("1MiB", 1usize << 20), ("16MiB", 16 << 20)] {
        let data = vec![0x17u8; len];
        let sealed = SealedPortion::seal_with_rng(
            lab.public(),
            RecordId::from_bytes([1; 16]),
            T0,
            &data,
            &mut r,
        )
        .unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            g.bench_function(format!("seal_{name}/{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        SealedPortion::seal_with_rng(
                            lab.public(),
                            RecordId::from_bytes([1; 16]),
                            T0,
                            black_box(&data),
                            &mut r,
                        )
                        .unwrap()
                    })
                })
            });
            g.bench_function(format!("open_{name}/{threads}"), |b| {
                b.iter(|| pool.install(|| sealed.open_as_owner(black_box(&lab)).unwrap()))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    let hb = small.header().to_bytes();
    g.bench_function("header", |b| {
        b.iter(|| PortionHeader::from_bytes(black_box(&hb)).unwrap())
    });
    let kb = rekey.to_bytes();
    g.bench_function("rekey", |b| {
        b.iter_batched(
            || kb.clone(),
            |k| ReKey::from_bytes(&k).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What the SRS checks of a patient's consent: a signed grant (decode,
/// Ed25519 signature, the re-encryption key is the one signed), a user's
/// proof of possession, a registration of six portion keys.
fn consent_ops(c: &mut Criterion) {
    use sesphr::consent::{GrantOptions, PatientRegistration};
    let mut r = rng();
    let patient = PatientKeys::generate_with_rng(Identity::new("patient-0042").unwrap(), &mut r);
    let lab = PortionLabel::new("lab").unwrap();
    let user_id = Identity::new("dr-house").unwrap();
    let user = KeyPair::generate_with_rng(&mut r);
    let rekey = ReKey::generate_with_rng(&patient.portion_secret(&lab, 0), user.public(), &mut r);
    let grant = patient
        .sign_grant_with_rng(&lab, 0, &user_id, &rekey, &GrantOptions::default(), &mut r)
        .unwrap();
    let consent = patient.consent_public();
    let bytes = grant.to_bytes();
    let proof = user.prove_possession_with_rng(&user_id, &mut r);
    let labels: Vec<(PortionLabel, u32)> = [
        "personal",
        "medical",
        "insurance",
        "prescription",
        "lab",
        "imaging",
    ]
    .iter()
    .map(|l| (PortionLabel::new(*l).unwrap(), 0))
    .collect();
    let registration = PatientRegistration::new_with_rng(&patient, &labels, &mut r).unwrap();
    let mut g = c.benchmark_group("consent");
    g.bench_function("verify_grant", |b| {
        b.iter(|| {
            let g = consent::SignedGrant::from_bytes(black_box(&bytes)).unwrap();
            g.verify(&consent).unwrap();
            assert!(g.covers(&rekey));
        })
    });
    g.bench_function("sign_grant", |b| {
        b.iter(|| {
            patient
                .sign_grant_with_rng(&lab, 0, &user_id, &rekey, &GrantOptions::default(), &mut r)
                .unwrap()
        })
    });
    g.bench_function("verify_user_proof", |b| {
        b.iter(|| {
            black_box(&proof)
                .verify_user(&user_id, user.public())
                .unwrap()
        })
    });
    g.bench_function("verify_registration_6", |b| {
        b.iter(|| black_box(&registration).verify().unwrap())
    });
    g.finish();
}

/// Threshold re-encryption, t = 2 of n = 3: the split, a node's share
/// check and re-encryption (a header verified once, as the SRS does before
/// deciding), and the delegatee's combine-and-open of two shares for a
/// 32-byte portion (capsule check included), optimistic and with both
/// proofs checked first.
fn threshold_ops(c: &mut Criterion) {
    let mut r = rng();
    let patient = PatientKeys::generate_with_rng(Identity::new("patient-0042").unwrap(), &mut r);
    let lab = patient.portion_secret(&PortionLabel::new("lab").unwrap(), 0);
    let user = KeyPair::generate_with_rng(&mut r);
    let rekey = ReKey::generate_with_rng(&lab, user.public(), &mut r);
    let (commitments, shares) = rekey.split_with_rng(2, 3, &mut r).unwrap();
    let share_bytes = shares[0].to_bytes();
    let sealed = SealedPortion::seal_with_rng(
        lab.public(),
        RecordId::from_bytes([4; 16]),
        1,
        &[0x42; 32],
        &mut r,
    )
    .unwrap();
    let verified = sealed.header().verify().unwrap();
    let answers: Vec<ReCapsule> = shares[..2]
        .iter()
        .map(|s| s.reencrypt_with_proof_with_rng(verified, &mut r).unwrap())
        .collect();
    let grant = patient
        .sign_share_grant_with_rng(
            &PortionLabel::new("lab").unwrap(),
            0,
            &Identity::new("dr-lee").unwrap(),
            &commitments,
            &sesphr::consent::GrantOptions::default(),
            &mut r,
        )
        .unwrap();
    let checked = grant
        .verify_commitments(&patient.consent_public(), &commitments)
        .unwrap();
    let opener = ThresholdOpener::new(&user, &checked).unwrap();
    // Robust: node 1 lies first (another node's E' beside its own proof),
    // then nodes 2 and 3 answer honestly.
    let third = shares[2]
        .reencrypt_with_proof_with_rng(verified, &mut r)
        .unwrap();
    let mut lie = answers[0].to_bytes();
    lie[103..135].copy_from_slice(answers[1].e_prime());
    let liar = ReCapsule::from_bytes(&lie).unwrap();
    let with_liar = vec![liar.clone(), answers[1].clone(), third.clone()];
    // The liar second: the honest first share is judged before it.
    let liar_second = vec![answers[1].clone(), liar, third];
    let mut g = c.benchmark_group("threshold");
    g.bench_function("split_2_of_3", |b| {
        b.iter(|| rekey.split_with_rng(2, 3, &mut r).unwrap())
    });
    g.bench_function("node_check_share", |b| {
        b.iter(|| ReKeyShare::from_bytes(black_box(&share_bytes)).unwrap())
    });
    g.bench_function("node_reencrypt", |b| {
        b.iter(|| shares[0].reencrypt(black_box(verified)).unwrap())
    });
    g.bench_function("node_reencrypt_with_proof", |b| {
        b.iter(|| {
            shares[0]
                .reencrypt_with_proof_with_rng(black_box(verified), &mut r)
                .unwrap()
        })
    });
    g.bench_function("open_2_optimistic_32B", |b| {
        b.iter(|| opener.open(black_box(&sealed), &answers).unwrap())
    });
    g.bench_function("open_2_verified_32B", |b| {
        b.iter(|| opener.open_verified(black_box(&sealed), &answers).unwrap())
    });
    g.bench_function("open_3_one_liar_32B", |b| {
        b.iter(|| {
            let o = opener.open(black_box(&sealed), &with_liar).unwrap();
            assert_eq!(o.bad_nodes(), [1]);
            o
        })
    });
    g.bench_function("open_3_one_liar_second_32B", |b| {
        b.iter(|| {
            let o = opener.open(black_box(&sealed), &liar_second).unwrap();
            assert_eq!(o.bad_nodes(), [1]);
            o
        })
    });
    g.finish();
}

/// Hybrid (post-quantum) portions: ML-KEM-768 beside the capsule (DESIGN
/// §16). Targets against `baseline/scalar_mul`: seal ≤ 4×, re-encryption ≤
/// 4.5×, cached delegatee open ≤ 4×.
fn hybrid_ops(c: &mut Criterion) {
    let mut r = rng();
    let patient = PatientKeys::generate_with_rng(Identity::new("patient").unwrap(), &mut r);
    let lab = patient.portion_secret(&PortionLabel::new("lab").unwrap(), 0);
    let srs = SrsPqSecretKey::new(1, PqSecretKey::generate_with_rng(&mut r));
    let key = lab.hybrid_public(&srs.public()).unwrap();
    let user = KeyPair::generate_hybrid_with_rng(&mut r);
    let user_pq = user.pq_public().unwrap().clone();
    let rekey = ReKey::generate_with_rng(&lab, user.public(), &mut r);
    let small =
        SealedPortion::seal_with_rng(&key, RecordId::from_bytes([1; 16]), T0, &[5u8; 32], &mut r)
            .unwrap();
    let enc = PortionEncryptor::new(&key);
    let rc = rekey
        .reencrypt_hybrid_with_rng(
            small.header().verify().unwrap(),
            &srs,
            &user_pq,
            false,
            &mut r,
        )
        .unwrap();
    let opener = DelegateeOpener::new(&user, rekey.ephemeral(), lab.public().key());

    let mut g = c.benchmark_group("hybrid");
    // The production path: the OS RNG (ML-KEM encapsulation by AWS-LC
    // when built with it).
    g.bench_function("seal_32B", |b| {
        b.iter(|| {
            SealedPortion::seal(
                &key,
                RecordId::from_bytes([1; 16]),
                T0,
                black_box(&[0x42; 32]),
            )
            .unwrap()
        })
    });
    // Replayable: every draw from the given RNG (RustCrypto's ML-KEM).
    g.bench_function("seal_32B_given_rng", |b| {
        b.iter(|| {
            SealedPortion::seal_with_rng(
                &key,
                RecordId::from_bytes([1; 16]),
                T0,
                black_box(&[0x42; 32]),
                &mut r,
            )
            .unwrap()
        })
    });
    g.bench_function("seal_table_32B", |b| {
        b.iter(|| {
            enc.seal(RecordId::from_bytes([1; 16]), T0, black_box(&[0x42; 32]))
                .unwrap()
        })
    });
    g.bench_function("open_owner_32B", |b| {
        b.iter(|| black_box(&small).open_as_owner(&lab).unwrap())
    });
    g.bench_function("reencrypt", |b| {
        b.iter(|| {
            rekey
                .reencrypt_hybrid(black_box(small.header()).verify().unwrap(), &srs, &user_pq)
                .unwrap()
        })
    });
    g.bench_function("reencrypt_given_rng", |b| {
        b.iter(|| {
            rekey
                .reencrypt_hybrid_with_rng(
                    black_box(small.header()).verify().unwrap(),
                    &srs,
                    &user_pq,
                    false,
                    &mut r,
                )
                .unwrap()
        })
    });
    g.bench_function("reencrypt_with_proof", |b| {
        b.iter(|| {
            rekey
                .reencrypt_hybrid_with_rng(
                    black_box(small.header()).verify().unwrap(),
                    &srs,
                    &user_pq,
                    true,
                    &mut r,
                )
                .unwrap()
        })
    });
    g.bench_function("delegatee_open_cached_32B", |b| {
        b.iter(|| {
            black_box(&small)
                .open_as_delegatee_with(&opener, &rc)
                .unwrap()
        })
    });
    g.bench_function("decode_header", |b| {
        let h = small.header().to_bytes();
        b.iter(|| PortionHeader::from_bytes(black_box(&h)).unwrap())
    });
    // Under a 2-of-3 threshold SRS: σ split among the nodes' ML-KEM keys.
    let nodes: Vec<SrsPqSecretKey> = (0..3)
        .map(|_| SrsPqSecretKey::new(1, PqSecretKey::generate_with_rng(&mut r)))
        .collect();
    let publics: Vec<SrsPqPublicKey> = nodes.iter().map(SrsPqSecretKey::public).collect();
    let split_key = lab.hybrid_public_split(2, &publics).unwrap();
    let (commitments, shares) = rekey.split_with_rng(2, 3, &mut r).unwrap();
    let split = SealedPortion::seal_with_rng(
        &split_key,
        RecordId::from_bytes([2; 16]),
        T0,
        &[5u8; 32],
        &mut r,
    )
    .unwrap();
    let answers: Vec<ReCapsule> = shares
        .iter()
        .zip(&nodes)
        .take(2)
        .map(|(s, n)| {
            s.reencrypt_hybrid_with_rng(split.header().verify().unwrap(), n, &user_pq, true, &mut r)
                .unwrap()
        })
        .collect();
    let threshold_opener = ThresholdOpener::new_unauthenticated(&user, &commitments).unwrap();
    g.bench_function("split_2_of_3_seal_32B", |b| {
        b.iter(|| {
            SealedPortion::seal(
                &split_key,
                RecordId::from_bytes([2; 16]),
                T0,
                black_box(&[0x42; 32]),
            )
            .unwrap()
        })
    });
    g.bench_function("split_2_of_3_node_reencrypt_with_proof", |b| {
        b.iter(|| {
            shares[0]
                .reencrypt_hybrid_with_proof(
                    black_box(split.header()).verify().unwrap(),
                    &nodes[0],
                    &user_pq,
                )
                .unwrap()
        })
    });
    g.bench_function("split_2_of_3_open_32B", |b| {
        b.iter(|| {
            threshold_opener
                .open(black_box(&split), &answers[..])
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    baselines,
    core_ops,
    hybrid_ops,
    consent_ops,
    threshold_ops
);
criterion_main!(benches);
