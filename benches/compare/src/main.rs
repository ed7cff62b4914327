//! sesphr against umbral-pre 0.11, in one process, in one run.
//!
//! `cargo run --release --manifest-path benches/compare/Cargo.toml --target-dir target [-- --quick]`
//! (from the repository's root; a crate outside sesphr's workspace, GPL-3.0
//! like umbral-pre).
//!
//! Each operation of the two libraries is timed in alternating samples (one
//! batch of sesphr, one batch of umbral-pre, and so on), so that whatever else
//! the machine does hits both alike; the figures are medians of the samples.
//! Prints a table and writes `target/sesphr-compare.json`.
//!
//! Setting, for a like-for-like comparison: umbral-pre with one key fragment
//! (threshold 1 of 1, no signature over the delegating or receiving key) —
//! its cheapest configuration, the one that matches a single SRS. Its
//! re-encryption always makes a correctness proof, so sesphr's is shown both
//! plain (with the capsule check) and with its proof.
//!
//! Threshold rows (t = 2, n = 3): umbral-pre with 2-of-3 key fragments
//! signed over both keys (its documented threshold setting: a proxy and a
//! receiver verify fragments against the delegating and receiving keys)
//! beside sesphr's Feldman split (no signatures). The delegatee rows compare
//! sesphr's combine-and-open of two shares (optimistic, and with both
//! proofs checked first) with umbral's `CapsuleFrag::verify` ×2 and
//! `decrypt_reencrypted`.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core_06::OsRng;
use sesphr::{
    DelegateeOpener, Identity, KeyPair, PatientKeys, PortionLabel, ReKey, ReKeyShare, RecordId,
    SealedPortion, ThresholdOpener,
};

/// Median time per call of `a` and of `b`, sampled alternately.
fn versus(samples: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    // Batch size: enough calls for about 2 ms per sample.
    let batch = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        let one = t.elapsed().max(Duration::from_nanos(50));
        (Duration::from_millis(2).as_nanos() / one.as_nanos()).clamp(1, 10_000) as usize
    };
    let (na, nb) = (batch(&mut a), batch(&mut b));
    let (mut ta, mut tb) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..na {
            a();
        }
        ta.push(t.elapsed().as_nanos() as f64 / na as f64);
        let t = Instant::now();
        for _ in 0..nb {
            b();
        }
        tb.push(t.elapsed().as_nanos() as f64 / nb as f64);
    }
    (median(&mut ta), median(&mut tb))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    op: &'static str,
    sesphr_ns: f64,
    umbral_ns: f64,
    target: Option<f64>,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let samples = if quick { 15 } else { 61 };

    // sesphr: a patient's lab portion, a doctor.
    let patient = PatientKeys::generate(Identity::new("patient").unwrap());
    let lab = patient.portion_secret(&PortionLabel::new("lab").unwrap(), 0);
    let doctor = KeyPair::generate();
    let rekey = ReKey::generate(&lab, doctor.public());
    // umbral-pre: Alice delegates to Bob through one key fragment.
    let alice = umbral_pre::SecretKey::random();
    let signer = umbral_pre::Signer::new(umbral_pre::SecretKey::random());
    let bob = umbral_pre::SecretKey::random();
    let kfrag = umbral_pre::generate_kfrags(&alice, &bob.public_key(), &signer, 1, 1, false, false)
        [0]
    .clone();

    let small = [0x42u8; 32];
    let mib = vec![0x42u8; 1 << 20];
    let mut rows = Vec::new();

    let (s, u) = versus(
        samples,
        || {
            black_box(
                SealedPortion::seal(lab.public(), RecordId::from_bytes([1; 16]), 1, &small)
                    .unwrap(),
            );
        },
        || {
            black_box(umbral_pre::encrypt(&alice.public_key(), &small).unwrap());
        },
    );
    rows.push(Row {
        op: "encrypt 32 B",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });

    let (s, u) = versus(
        samples.min(31),
        || {
            black_box(
                SealedPortion::seal(lab.public(), RecordId::from_bytes([1; 16]), 1, &mib).unwrap(),
            );
        },
        || {
            black_box(umbral_pre::encrypt(&alice.public_key(), &mib).unwrap());
        },
    );
    rows.push(Row {
        op: "encrypt 1 MiB",
        sesphr_ns: s,
        umbral_ns: u,
        // With the AWS-LC DEM backend (it was 1.6x on RustCrypto's).
        target: Some(2.5),
    });

    let (s, u) = versus(
        samples,
        || {
            black_box(ReKey::generate(&lab, doctor.public()));
        },
        || {
            black_box(umbral_pre::generate_kfrags(
                &alice,
                &bob.public_key(),
                &signer,
                1,
                1,
                false,
                false,
            ));
        },
    );
    rows.push(Row {
        op: "re-key generation",
        sesphr_ns: s,
        umbral_ns: u,
        target: None,
    });

    let sealed =
        SealedPortion::seal(lab.public(), RecordId::from_bytes([2; 16]), 1, &small).unwrap();
    let (capsule, ct) = umbral_pre::encrypt(&alice.public_key(), &small).unwrap();
    let (s, u) = versus(
        samples,
        || {
            black_box(rekey.reencrypt(sealed.header().verify().unwrap()).unwrap());
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, kfrag.clone()));
        },
    );
    rows.push(Row {
        op: "re-encrypt",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    let (s, u) = versus(
        samples,
        || {
            black_box(
                rekey
                    .reencrypt_with_proof(sealed.header().verify().unwrap())
                    .unwrap(),
            );
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, kfrag.clone()));
        },
    );
    rows.push(Row {
        op: "re-encrypt, both with proof",
        sesphr_ns: s,
        umbral_ns: u,
        target: None,
    });

    // Hybrid (post-quantum, ML-KEM-768): sesphr's re-encryption also opens
    // the SRS's stanza and re-wraps the secret to the user's ML-KEM key;
    // umbral-pre stays classical.
    let srs_pq = sesphr::SrsPqSecretKey::new(1, sesphr::PqSecretKey::generate());
    let hybrid_key = lab.hybrid_public(&srs_pq.public()).unwrap();
    let hybrid_doctor = doctor.clone().with_pq(sesphr::PqSecretKey::generate());
    let doctor_pq = hybrid_doctor.pq_public().unwrap().clone();
    let hybrid =
        SealedPortion::seal(&hybrid_key, RecordId::from_bytes([3; 16]), 1, &small).unwrap();
    let (s, u) = versus(
        samples,
        || {
            black_box(
                rekey
                    .reencrypt_hybrid(hybrid.header().verify().unwrap(), &srs_pq, &doctor_pq)
                    .unwrap(),
            );
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, kfrag.clone()));
        },
    );
    rows.push(Row {
        op: "re-encrypt, sesphr hybrid (ML-KEM-768) / umbral classical",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(2.0),
    });
    SIZES.with(|sz| {
        sz.borrow_mut().extend([
            ("hybrid header", hybrid.header().encoded_len(), 0),
            (
                "hybrid re-capsule",
                rekey
                    .reencrypt_hybrid(hybrid.header().verify().unwrap(), &srs_pq, &doctor_pq)
                    .unwrap()
                    .to_bytes()
                    .len(),
                0,
            ),
            ("hybrid portion key", hybrid_key.to_bytes().len(), 0),
        ]);
    });

    let rc = rekey.reencrypt(sealed.header().verify().unwrap()).unwrap();
    let cfrag = umbral_pre::reencrypt(&capsule, kfrag.clone());
    let umbral_decrypt = || {
        black_box(
            umbral_pre::decrypt_reencrypted(
                &bob,
                &alice.public_key(),
                &capsule,
                [cfrag.clone()],
                &ct,
            )
            .unwrap(),
        );
    };
    let (s, u) = versus(
        samples,
        || {
            black_box(sealed.open_as_delegatee(&doctor, &rc).unwrap());
        },
        umbral_decrypt,
    );
    rows.push(Row {
        op: "delegatee decrypt 32 B",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    let opener = DelegateeOpener::new(&doctor, rekey.ephemeral(), lab.public().key());
    let (s, u) = versus(
        samples,
        || {
            black_box(sealed.open_as_delegatee_with(&opener, &rc).unwrap());
        },
        umbral_decrypt,
    );
    rows.push(Row {
        op: "delegatee decrypt 32 B, grant cached",
        sesphr_ns: s,
        umbral_ns: u,
        target: None,
    });

    threshold_rows(
        samples, &mut rows, &lab, &doctor, &alice, &bob, &signer, &small,
    );

    // The curves themselves: one variable-base scalar multiplication each.
    let k = Scalar::from_bytes_mod_order([0x5a; 32]);
    let p = RistrettoPoint::mul_base(&Scalar::from_bytes_mod_order([0x3c; 32]));
    let q = k256::ProjectivePoint::GENERATOR * k256::Scalar::generate_vartime(&mut OsRng);
    let k2 = k256::Scalar::generate_vartime(&mut OsRng);
    let (s, u) = versus(
        samples,
        || {
            black_box(black_box(p) * black_box(k));
        },
        || {
            black_box(black_box(q) * black_box(k2));
        },
    );
    rows.push(Row {
        op: "scalar multiplication (ristretto255 / secp256k1)",
        sesphr_ns: s,
        umbral_ns: u,
        target: None,
    });

    println!("| operation | sesphr | umbral-pre 0.11 | sesphr faster by | target |");
    println!("|---|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for r in &rows {
        let ratio = r.umbral_ns / r.sesphr_ns;
        let target = r.target.map_or("—".to_owned(), |t| {
            format!("≥ {t}× {}", if ratio >= t { "met" } else { "MISSED" })
        });
        println!(
            "| {} | {} | {} | {:.2}× | {} |",
            r.op,
            fmt(r.sesphr_ns),
            fmt(r.umbral_ns),
            ratio,
            target
        );
        json.push(serde_json::json!({
            "operation": r.op,
            "sesphr_median_ns": r.sesphr_ns.round(),
            "umbral_median_ns": r.umbral_ns.round(),
            "sesphr_speedup": (ratio * 100.0).round() / 100.0,
            "target_speedup": r.target,
            "target_met": r.target.map(|t| ratio >= t),
        }));
    }
    let sizes = SIZES.with(|s| s.borrow().clone());
    println!("\n| encoding | sesphr | umbral-pre 0.11 |");
    println!("|---|---:|---:|");
    for (what, a, b) in &sizes {
        let b = if *b == 0 {
            "—".to_owned()
        } else {
            format!("{b} B")
        };
        println!("| {what} | {a} B | {b} |");
    }
    let out = serde_json::json!({
        "sizes": sizes.iter().map(|(w, a, b)| serde_json::json!({"encoding": w, "sesphr_bytes": a, "umbral_bytes": b})).collect::<Vec<_>>(),
        "samples": samples,
        "umbral_pre_version": "0.11",
        "setting": "umbral-pre threshold 1 of 1, kfrags unsigned over keys; medians of alternating samples in one process",
        "rows": json,
    });
    // Beside the target directory this program was built into
    // (`<target>/release/sesphr-compare`), wherever CARGO_TARGET_DIR put it.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(2).unwrap();
    let path = target.join("sesphr-compare.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("\nwritten: {}", path.display());
}

/// Threshold t = 2 of n = 3, both libraries.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn threshold_rows(
    samples: usize,
    rows: &mut Vec<Row>,
    lab: &sesphr::PortionSecretKey,
    doctor: &KeyPair,
    alice: &umbral_pre::SecretKey,
    bob: &umbral_pre::SecretKey,
    signer: &umbral_pre::Signer,
    small: &[u8],
) {
    let kfrags = || umbral_pre::generate_kfrags(alice, &bob.public_key(), signer, 2, 3, true, true);
    let (s, u) = versus(
        samples,
        || {
            black_box(ReKey::generate(lab, doctor.public()).split(2, 3).unwrap());
        },
        || {
            black_box(kfrags());
        },
    );
    rows.push(Row {
        op: "2-of-3: re-key and split into 3 shares / generate_kfrags",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });

    let rekey = ReKey::generate(lab, doctor.public());
    let (commitments, shares) = rekey.split(2, 3).unwrap();
    let share_bytes = shares[0].to_bytes();
    let vkfrags = kfrags();
    let kfrag = vkfrags[0].clone().unverify();
    let (verifying, delegating, receiving) =
        (signer.verifying_key(), alice.public_key(), bob.public_key());
    let (s, u) = versus(
        samples,
        || {
            black_box(ReKeyShare::from_bytes(&share_bytes).unwrap());
        },
        || {
            black_box(
                kfrag
                    .clone()
                    .verify(&verifying, Some(&delegating), Some(&receiving))
                    .unwrap(),
            );
        },
    );
    rows.push(Row {
        op: "2-of-3: node checks its share / KeyFrag::verify",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });

    let sealed =
        SealedPortion::seal(lab.public(), RecordId::from_bytes([3; 16]), 1, small).unwrap();
    let (capsule, ct) = umbral_pre::encrypt(&delegating, small).unwrap();
    // umbral-pre's `reencrypt` takes a `Capsule` that was checked when it
    // was deserialized; a sesphr node takes a `VerifiedHeader`, checked once
    // the same way. The check itself is in the row after these.
    let verified = sealed.header().verify().unwrap();
    let (s, u) = versus(
        samples,
        || {
            black_box(shares[0].reencrypt(verified).unwrap());
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, vkfrags[0].clone()));
        },
    );
    rows.push(Row {
        op: "2-of-3: node re-encryption / reencrypt",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    let (s, u) = versus(
        samples,
        || {
            black_box(shares[0].reencrypt_with_proof(verified).unwrap());
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, vkfrags[0].clone()));
        },
    );
    rows.push(Row {
        op: "2-of-3: node re-encryption, both with proof",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    let (s, u) = versus(
        samples,
        || {
            black_box(
                shares[0]
                    .reencrypt_with_proof(sealed.header().verify().unwrap())
                    .unwrap(),
            );
        },
        || {
            black_box(umbral_pre::reencrypt(&capsule, vkfrags[0].clone()));
        },
    );
    rows.push(Row {
        op: "2-of-3: node re-encryption with proof, sesphr also checking the capsule",
        sesphr_ns: s,
        umbral_ns: u,
        target: None,
    });

    let answers: Vec<sesphr::ReCapsule> = shares[..2]
        .iter()
        .map(|sh| {
            sh.reencrypt_with_proof(sealed.header().verify().unwrap())
                .unwrap()
        })
        .collect();
    let cfrags: Vec<umbral_pre::CapsuleFrag> = vkfrags[..2]
        .iter()
        .map(|k| umbral_pre::reencrypt(&capsule, k.clone()).unverify())
        .collect();
    let opener = ThresholdOpener::new_unauthenticated(doctor, &commitments).unwrap();
    let umbral_open = || {
        let verified: Vec<umbral_pre::VerifiedCapsuleFrag> = cfrags
            .iter()
            .map(|c| {
                c.clone()
                    .verify(&capsule, &verifying, &delegating, &receiving)
                    .unwrap()
            })
            .collect();
        black_box(
            umbral_pre::decrypt_reencrypted(bob, &delegating, &capsule, verified, &ct).unwrap(),
        );
    };
    let (s, u) = versus(
        samples,
        || {
            black_box(opener.open(&sealed, &answers).unwrap());
        },
        umbral_open,
    );
    rows.push(Row {
        op: "2-of-3: delegatee combine-and-open, optimistic / cfrag verify x2 + decrypt",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    let (s, u) = versus(
        samples,
        || {
            black_box(opener.open_verified(&sealed, &answers).unwrap());
        },
        umbral_open,
    );
    rows.push(Row {
        op: "2-of-3: delegatee combine-and-open, proofs checked / cfrag verify x2 + decrypt",
        sesphr_ns: s,
        umbral_ns: u,
        target: Some(3.0),
    });
    SIZES.with(|sz| {
        sz.borrow_mut().extend([
            (
                "re-capsule share / cfrag (simple form)",
                answers[0].to_bytes().len(),
                cfrags[0].to_bytes_simple().len(),
            ),
            (
                "re-capsule share without proof",
                sesphr::ReCapsule::SHARE_LEN,
                cfrags[0].to_bytes_simple().len(),
            ),
            ("key share (t = 2) / kfrag", share_bytes.len(), 0),
        ]);
    });
}

thread_local! {
    /// Encoded sizes (sesphr, umbral-pre; 0 = not measured) printed after the table.
    static SIZES: std::cell::RefCell<Vec<(&'static str, usize, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn fmt(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
