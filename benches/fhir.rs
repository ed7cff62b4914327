//! The `fhir` feature on a 10-year history (`tests/fixtures/fhir/history-10y.json`:
//! 559 resources, 732 KB of compact JSON) against same-run baselines.
//!
//! `cargo bench --features fhir --bench fhir`. Read each figure as a ratio
//! to `baseline/*` from the same run: one ristretto255 scalar
//! multiplication, raw ChaCha20-Poly1305 over as many bytes as the bundle's
//! compact JSON, and parsing that JSON with serde_json.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{AeadInOut, ChaCha20Poly1305, KeyInit, Nonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sesphr::fhir::{Granularity, PortionMap, Reassembler, Value, compare, split, split_value};
use sesphr::rand_core::SeedableRng;
use sesphr::*;

const HISTORY: &[u8] = include_bytes!("../tests/fixtures/fhir/history-10y.json");

fn bench(c: &mut Criterion) {
    let input: Value = serde_json::from_slice(HISTORY).unwrap();
    let compact = serde_json::to_vec(&input).unwrap();
    let map = PortionMap::default();
    let mut r = ChaCha20Rng::from_seed([7; 32]);
    let patient = PatientKeys::generate_with_rng(Identity::new("patient-1").unwrap(), &mut r);
    let keys: Vec<PortionPublicKey> = map
        .labels()
        .iter()
        .map(|l| patient.portion_public(l, 0))
        .collect();

    let mut g = c.benchmark_group("baseline");
    let s = Scalar::random(&mut r);
    let p = RistrettoPoint::random(&mut r);
    g.bench_function("scalar_mul", |b| b.iter(|| black_box(&p) * black_box(&s)));
    let aead = ChaCha20Poly1305::new(&[9u8; 32].into());
    let mut buf = compact.clone();
    g.throughput(Throughput::Bytes(compact.len() as u64));
    g.bench_function("chacha20poly1305_history", |b| {
        b.iter(|| {
            aead.encrypt_inout_detached(&Nonce::default(), &[], InOutBuf::from(&mut buf[..]))
                .unwrap()
        })
    });
    g.bench_function("serde_json_parse_history", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&compact)).unwrap())
    });
    g.finish();

    let parts = split(&compact, &map).unwrap();
    let sealed = parts.seal(&keys, Granularity::PerPortion, 0).unwrap();
    let secrets: Vec<_> = sealed
        .iter()
        .map(|s| patient.portion_secret(&s.label, 0))
        .collect();
    for granularity in [Granularity::PerPortion, Granularity::PerResource] {
        let all = parts.seal(&keys, granularity, 0).unwrap();
        let bytes: usize = all.iter().map(|s| s.sealed.to_bytes().len()).sum();
        let plain: usize = parts
            .plaintexts(granularity)
            .unwrap()
            .iter()
            .map(|(_, t)| t.len())
            .sum();
        eprintln!(
            "sizes, {granularity:?}: bundle {} B compact JSON; {} sealed portions, {} B of plaintext, {} B sealed ({:+.2}% against the bundle)",
            compact.len(),
            all.len(),
            plain,
            bytes,
            (bytes as f64 / compact.len() as f64 - 1.0) * 100.0
        );
    }

    let mut g = c.benchmark_group("fhir/history-10y");
    g.throughput(Throughput::Bytes(compact.len() as u64));
    g.bench_function("split", |b| {
        b.iter_batched(
            || input.clone(),
            |v| split_value(v, &map).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("split_from_bytes", |b| {
        b.iter(|| split(black_box(&compact), &map).unwrap())
    });
    g.bench_function("seal_per_portion", |b| {
        b.iter(|| parts.seal(&keys, Granularity::PerPortion, 0).unwrap())
    });
    g.bench_function("seal_per_resource", |b| {
        b.iter(|| parts.seal(&keys, Granularity::PerResource, 0).unwrap())
    });
    g.bench_function("open_and_reassemble", |b| {
        b.iter(|| {
            let mut back = Reassembler::new(&map);
            for (s, k) in sealed.iter().zip(&secrets) {
                back.add(s.sealed.header(), &s.sealed.open_as_owner(k).unwrap())
                    .unwrap();
            }
            back.finish().unwrap()
        })
    });
    let rebuilt = {
        let mut back = Reassembler::new(&map);
        for (s, k) in sealed.iter().zip(&secrets) {
            back.add(s.sealed.header(), &s.sealed.open_as_owner(k).unwrap())
                .unwrap();
        }
        back.finish().unwrap()
    };
    g.bench_function("compare", |b| b.iter(|| compare(&input, &rebuilt)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
