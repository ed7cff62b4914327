//! The re-encryption server: re-encryptions per second through the SRS (ACL,
//! capsule check, durable audit) on 1 and 2 threads, grant, revoke, revoke
//! against the number of stored records, and key issuance for many users.
//!
//! `cargo bench --bench srs`. Read every figure beside `baseline/scalar_mul`
//! (measured here too, in the same run).
#![allow(missing_docs, clippy::unwrap_used, clippy::cast_possible_truncation)]

#[path = "../tests/common/consenting.rs"]
mod consenting;
use consenting::Consenting;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sesphr::rand_core::SeedableRng;
use sesphr::srs::{ManualClock, Role, Scope, Srs, SrsConfig, StorageKey};
use sesphr::store::{Durability, MemoryStore, SqliteStore, Store};
use sesphr::*;

const T0: u64 = 1_700_000_000;

struct Fixture {
    srs: Arc<Srs>,
    patient: PatientKeys,
    lab: PortionSecretKey,
    user: Identity,
    keys: KeyPair,
    headers: Vec<PortionHeader>,
    /// Moved on a second before each timed grant or revocation: the SRS
    /// accepts at most 255 signed objects per grant key and second, which a
    /// loop of thousands per second would exceed.
    clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Sqlite(Durability),
}

const STORES: [(&str, Kind); 3] = [
    ("memory", Kind::Memory),
    ("sqlite", Kind::Sqlite(Durability::PowerLoss)),
    (
        "sqlite-process-crash",
        Kind::Sqlite(Durability::ProcessCrash),
    ),
];

fn fixture(kind: Kind, records: usize) -> Fixture {
    let mut r = ChaCha20Rng::from_seed([3; 32]);
    let dir = matches!(kind, Kind::Sqlite(_)).then(|| tempfile::tempdir().unwrap());
    let store: Arc<dyn Store> = match (&dir, kind) {
        (Some(d), Kind::Sqlite(durability)) => {
            Arc::new(SqliteStore::open_with(d.path().join("bench.db"), durability).unwrap())
        }
        _ => Arc::new(MemoryStore::new()),
    };
    let clock = ManualClock::new(T0 + 10);
    let srs = Arc::new(
        Srs::open(
            SrsConfig::shared(store, StorageKey::generate_with_rng(&mut r)).clock(clock.clone()),
        )
        .unwrap(),
    );
    let patient = PatientKeys::generate_with_rng(Identity::new("patient").unwrap(), &mut r);
    let label = PortionLabel::new("lab").unwrap();
    let lab = patient.portion_secret(&label, 0);
    srs.add_patient(
        &patient,
        &[(lab.public().label().clone(), lab.public().epoch())],
    )
    .unwrap();
    let user = Identity::new("doctor").unwrap();
    let keys = KeyPair::generate_with_rng(&mut r);
    srs.add_user(&user, Role::Doctor, &keys).unwrap();
    srs.give(
        &patient,
        &label,
        &user,
        ReKey::generate_with_rng(&lab, keys.public(), &mut r),
        Scope::AllRecords,
        None,
    )
    .unwrap();
    let enc = PortionEncryptor::new(lab.public());
    let headers = (0..records)
        .map(|i| {
            let rid = RecordId::from_bytes((i as u128).to_be_bytes());
            enc.seal_with_rng(rid, T0, b"r", &mut r)
                .unwrap()
                .into_parts()
                .0
        })
        .collect();
    Fixture {
        srs,
        patient,
        lab,
        user,
        keys,
        headers,
        clock,
        _dir: dir,
    }
}

/// Runs `per_thread(thread, n)` on `threads` threads, `iters` operations in
/// all, and returns the wall time.
fn parallel(threads: usize, iters: u64, per_thread: impl Fn(usize, u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
            let f = &per_thread;
            s.spawn(move || f(t, n));
        }
    });
    start.elapsed()
}

fn baseline(c: &mut Criterion) {
    let mut r = ChaCha20Rng::from_seed([1; 32]);
    let s = Scalar::random(&mut r);
    let p = RistrettoPoint::random(&mut r);
    c.benchmark_group("baseline")
        .bench_function("scalar_mul", |b| b.iter(|| black_box(&p) * black_box(&s)));
}

fn reencrypt_throughput(c: &mut Criterion) {
    for (store, kind) in STORES {
        let f = fixture(kind, 256);
        let mut g = c.benchmark_group(format!("srs_reencrypt/{store}"));
        g.throughput(Throughput::Elements(1));
        // 8 callers on 2 cores: how far group commit merges concurrent requests.
        for threads in [1usize, 2, 8] {
            g.bench_function(format!("single/{threads}"), |b| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, |t, n| {
                        for i in 0..n as usize {
                            let h = &f.headers[(i * threads + t) % f.headers.len()];
                            f.srs
                                .reencrypt(&f.user, h, sesphr::srs::Purpose::Treatment)
                                .unwrap();
                        }
                    })
                })
            });
        }
        const BATCH: usize = 64;
        g.throughput(Throughput::Elements(BATCH as u64));
        for threads in [1usize, 2] {
            g.bench_function(format!("batch64/{threads}"), |b| {
                b.iter_custom(|iters| {
                    parallel(threads, iters, |t, n| {
                        for i in 0..n as usize {
                            let start = ((i * threads + t) * BATCH) % (f.headers.len() - BATCH);
                            let hs: Vec<&PortionHeader> =
                                f.headers[start..start + BATCH].iter().collect();
                            f.srs
                                .reencrypt_batch(&f.user, &hs, sesphr::srs::Purpose::Treatment)
                                .unwrap();
                        }
                    })
                })
            });
        }
        g.finish();
    }
}

fn grant_and_revoke(c: &mut Criterion) {
    for (store, kind) in STORES {
        let f = fixture(kind, 1);
        let label = PortionLabel::new("lab").unwrap();
        let mut r = ChaCha20Rng::from_seed([4; 32]);
        let mut g = c.benchmark_group(format!("srs_admin/{store}"));
        g.bench_function("grant", |b| {
            b.iter_batched(
                || ReKey::generate_with_rng(&f.lab, f.keys.public(), &mut r),
                |k| {
                    // One atomic add: nothing beside the grant's own cost.
                    f.clock.advance(1);
                    f.srs
                        .give(&f.patient, &label, &f.user, k, Scope::AllRecords, None)
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("revoke", |b| revoke(b, &f, &mut r));
        g.finish();
    }
}

/// Times `revoke` alone; each revocation gets a fresh grant of its own,
/// made (untimed) just before it.
fn revoke(b: &mut criterion::Bencher<'_>, f: &Fixture, r: &mut ChaCha20Rng) {
    let label = PortionLabel::new("lab").unwrap();
    b.iter_batched(
        || {
            f.clock.advance(1);
            let k = ReKey::generate_with_rng(&f.lab, f.keys.public(), r);
            f.srs
                .give(&f.patient, &label, &f.user, k, Scope::AllRecords, None)
                .unwrap();
        },
        |()| f.srs.take(&f.patient, &label, &f.user).unwrap(),
        BatchSize::PerIteration,
    );
}

/// Revocation deletes one key and touches no record: its cost must not grow
/// with the records the grant has been used on (here each record was sealed
/// and re-encrypted once, so the SQLite store also holds one audit entry per
/// record).
fn revoke_vs_records(c: &mut Criterion) {
    let mut g = c.benchmark_group("srs_revoke_vs_records");
    g.sample_size(30);
    for records in [1usize, 1_000, 100_000] {
        let f = fixture(Kind::Sqlite(Durability::PowerLoss), records);
        for chunk in f.headers.chunks(256) {
            let hs: Vec<&PortionHeader> = chunk.iter().collect();
            f.srs
                .reencrypt_batch(&f.user, &hs, sesphr::srs::Purpose::Treatment)
                .unwrap();
        }
        let mut r = ChaCha20Rng::from_seed([5; 32]);
        g.bench_function(format!("{records}"), |b| revoke(b, &f, &mut r));
    }
    g.finish();
}

/// Escrow key issuance and registration for n users (the published SeSPHR
/// figures: 0.6 s for 10 users, 2.16 s for 10,000).
fn key_issuance(c: &mut Criterion) {
    let mut g = c.benchmark_group("srs_issue_keys");
    g.sample_size(10);
    for n in [10usize, 100, 1_000, 10_000] {
        let ids: Vec<Identity> = (0..n)
            .map(|i| Identity::new(format!("user-{i}")).unwrap())
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || {
                    let cfg = SrsConfig::new(MemoryStore::new(), StorageKey::from_bytes(&[1; 32]))
                        .escrow(EscrowKeyIssuer::from_seed(&[2; 32]));
                    Srs::open(cfg).unwrap()
                },
                |srs| {
                    for id in &ids {
                        let kp = srs.issue_keys(id, 0).unwrap();
                        srs.add_user(id, Role::Doctor, &kp).unwrap();
                    }
                    srs
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// An SRS on `kind` whose log holds 10^5 re-encryptions (disclosures of
/// one patient), and a checkpoint of it.
fn log_of_1e5(kind: Kind) -> (Fixture, sesphr::srs::Checkpoint) {
    let f = fixture(kind, 64);
    let hs: Vec<&PortionHeader> = f.headers.iter().collect();
    for _ in 0..(100_000 / hs.len()) {
        f.srs
            .reencrypt_batch(&f.user, &hs, sesphr::srs::Purpose::Treatment)
            .unwrap();
    }
    let cp = f.srs.checkpoint().unwrap();
    (f, cp)
}

/// The audit as a Merkle log: making and checking an inclusion proof in a
/// log of 10^6 entries (the tree in memory: the hashing and the walk, not
/// a store's reads), a consistency proof from 10^3 to 10^6 entries, and an
/// inclusion proof made by an SRS (memory store: node table lookups and a
/// block of entries hashed) in a log of 10^5 entries.
fn audit_log(c: &mut Criterion) {
    use sesphr::merkle::{Tree, leaf_hash};
    let mut g = c.benchmark_group("log");
    let mut tree = Tree::new();
    for i in 0u64..1_000_000 {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let n = tree.size();
    let root = tree.root(n).unwrap();
    let leaf = leaf_hash(&777_777u64.to_be_bytes());
    g.bench_function("inclusion_make_1e6", |b| {
        b.iter(|| tree.inclusion_proof(black_box(777_777), n).unwrap())
    });
    let proof = tree.inclusion_proof(777_777, n).unwrap();
    g.bench_function("inclusion_verify_1e6", |b| {
        b.iter(|| proof.verify(black_box(&leaf), &root).unwrap())
    });
    let old = tree.root(1_000).unwrap();
    g.bench_function("consistency_1e3_1e6_make_verify", |b| {
        b.iter(|| {
            tree.consistency_proof(1_000, n)
                .unwrap()
                .verify(&old, &root)
                .unwrap()
        })
    });
    drop(tree);
    // Through an SRS: 10^5 entries of re-encryptions.
    let (f, cp) = log_of_1e5(Kind::Memory);
    let key = f.srs.verifying_key();
    let mut seq = 1;
    g.bench_function("srs_inclusion_proof_1e5", |b| {
        b.iter(|| {
            seq = seq * 7919 % cp.seq + 1;
            f.srs.inclusion_proof(black_box(seq), &cp).unwrap()
        })
    });
    // The hashes such a proof costs, alone: the 16 entries of the leaf's
    // block hashed, the sibling subtrees inside the block combined from
    // them (1 + 3 + 7 node hashes), and the proof checked against the root.
    let at = cp.seq / 2;
    let first = (at - 1) / 16 * 16 + 1;
    let block = f.srs.audit_entries(first, 16).unwrap();
    let proof = f.srs.inclusion_proof(at, &cp).unwrap();
    let root = cp.tree_root.unwrap();
    let pos = (at - first) as usize;
    fn subtree(leaves: &[[u8; 32]]) -> [u8; 32] {
        match leaves {
            [one] => *one,
            _ => {
                let (l, r) = leaves.split_at(leaves.len() / 2);
                sesphr::merkle::node_hash(&subtree(l), &subtree(r))
            }
        }
    }
    g.bench_function("srs_inclusion_hashes_1e5", |b| {
        b.iter(|| {
            let leaves: Vec<[u8; 32]> = black_box(&block)
                .iter()
                .map(|e| leaf_hash(&e.to_bytes()))
                .collect();
            for level in 1..4 {
                let sib = (pos >> level) ^ 1;
                black_box(subtree(&leaves[sib << level..(sib + 1) << level]));
            }
            proof.verify(&leaves[pos], &root).unwrap()
        })
    });
    let (entry, proof) = f.srs.proven_entry(at, &cp).unwrap();
    g.bench_function("verify_inclusion_with_checkpoint", |b| {
        b.iter(|| sesphr::srs::verify_inclusion(black_box(&entry), &proof, &cp, &key).unwrap())
    });
    g.sample_size(10);
    g.bench_function("disclosures_1e5", |b| {
        b.iter(|| {
            f.srs
                .disclosures(f.patient.patient(), 0, u64::MAX)
                .map(Result::unwrap)
                .count()
        })
    });
    drop(f);
    // The same on SQLite (the temporary directory's file system): the
    // store's reads as a deployment pays them.
    let (f, cp) = log_of_1e5(Kind::Sqlite(Durability::PowerLoss));
    g.sample_size(50);
    g.bench_function("srs_inclusion_proof_sqlite_1e5", |b| {
        b.iter(|| {
            seq = seq * 7919 % cp.seq + 1;
            f.srs.inclusion_proof(black_box(seq), &cp).unwrap()
        })
    });
    g.sample_size(10);
    g.bench_function("disclosures_sqlite_1e5", |b| {
        b.iter(|| {
            f.srs
                .disclosures(f.patient.patient(), 0, u64::MAX)
                .map(Result::unwrap)
                .count()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    baseline,
    audit_log,
    reencrypt_throughput,
    grant_and_revoke,
    revoke_vs_records,
    key_issuance
);
criterion_main!(benches);
