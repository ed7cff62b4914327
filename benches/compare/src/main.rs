//! sesphr against umbral-pre 0.11, in one process, in one run.
//!
//! `cargo run --release -p sesphr-compare [-- --quick]`
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
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core_06::OsRng;
use sesphr::{
    DelegateeOpener, Identity, KeyPair, PatientKeys, PortionLabel, ReKey, RecordId, SealedPortion,
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
        target: Some(1.6),
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
    let out = serde_json::json!({
        "samples": samples,
        "umbral_pre_version": "0.11",
        "setting": "umbral-pre threshold 1 of 1, kfrags unsigned over keys; medians of alternating samples in one process",
        "rows": json,
    });
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/sesphr-compare.json"
    );
    std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("\nwritten: target/sesphr-compare.json");
}

fn fmt(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}
