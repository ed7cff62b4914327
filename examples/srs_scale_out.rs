//! Scaling out, measured: re-encryptions per second with one and two SRS
//! processes on one PostgreSQL database, beside SQLite and the in-memory
//! store in the same run; grant/revoke latency; the time one process takes
//! to catch up with 10,000 changes made by another; the head lock's hold
//! time. Every per-request CPU figure is also given as a ratio to one
//! ristretto255 scalar multiplication measured in the same run.
//!
//! ```text
//! cargo run --release --features postgres --example srs_scale_out [-- --seconds 4]
//! ```
//!
//! It starts its own throwaway PostgreSQL cluster (fsync on, default
//! `synchronous_commit`) in `/tmp`, like the tests, and writes
//! `target/sesphr-bench/scale-out.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]

#[path = "../tests/common/pg.rs"]
mod pg;

#[path = "../tests/common/consenting.rs"]
mod consenting;
use consenting::Consenting;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sesphr::srs::{Role, Scope, Srs, SrsConfig, StorageKey};
use sesphr::store::{MemoryStore, PostgresStore, Store};
use sesphr::{
    Identity, KeyPair, PatientKeys, PortionHeader, PortionLabel, ReKey, RecordId, SealedPortion,
};

const KEY: [u8; 32] = [9; 32];
const USERS: usize = 8;
/// Threads per process sending single requests.
const SINGLE_THREADS: usize = 8;
/// Threads per process sending batches.
const BATCH_THREADS: usize = 2;

fn patient() -> PatientKeys {
    PatientKeys::generate_with_rng(
        Identity::new("patient-bench").unwrap(),
        &mut chacha20::ChaCha20Rng::from_seed([1; 32]),
    )
}

fn user_keys(i: usize) -> KeyPair {
    KeyPair::generate_with_rng(&mut chacha20::ChaCha20Rng::from_seed([10 + i as u8; 32]))
}

fn user_id(i: usize) -> Identity {
    Identity::new(format!("doctor-{i}")).unwrap()
}

fn lab() -> PortionLabel {
    PortionLabel::new("lab").unwrap()
}

use sesphr::rand_core::SeedableRng;

fn setup(srs: &Srs) {
    let p = patient();
    let k = p.portion_secret(&lab(), 0);
    srs.add_patient(&p, &[(k.public().label().clone(), k.public().epoch())])
        .unwrap();
    for i in 0..USERS {
        srs.add_user(&user_id(i), Role::Doctor, &user_keys(i))
            .unwrap();
        srs.give(
            &p,
            &lab(),
            &user_id(i),
            ReKey::generate(&k, user_keys(i).public()),
            Scope::AllRecords,
            None,
        )
        .unwrap();
    }
}

fn records(n: usize) -> Vec<SealedPortion> {
    let k = patient().portion_secret(&lab(), 0);
    (0..n)
        .map(|i| {
            SealedPortion::seal(
                k.public(),
                RecordId::random(),
                1_700_000_000 + i as u64,
                b"x",
            )
            .unwrap()
        })
        .collect()
}

/// This process's CPU time (user + system), from /proc (clock ticks of
/// 1/100 s on Linux).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Re-encrypts for `seconds` from `threads` threads, each request a single
/// header (`batch == 1`) or a batch; returns (re-encryptions, CPU time).
fn load(srs: &Srs, batch: usize, threads: usize, seconds: f64) -> (u64, Duration) {
    let recs = records(batch.max(1));
    let count = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let cpu0 = cpu();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (recs, count, stop) = (&recs, &count, &stop);
            s.spawn(move || {
                let u = user_id(t % USERS);
                let headers: Vec<&PortionHeader> = recs.iter().map(SealedPortion::header).collect();
                while !stop.load(Ordering::Relaxed) {
                    if batch == 1 {
                        srs.reencrypt(&u, headers[0], sesphr::srs::Purpose::Treatment)
                            .unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let out = srs
                            .reencrypt_batch(&u, &headers, sesphr::srs::Purpose::Treatment)
                            .unwrap();
                        assert!(out.iter().all(Result::is_ok));
                        count.fetch_add(out.len() as u64, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    (count.load(Ordering::Relaxed), cpu() - cpu0)
}

/// One ristretto255 scalar multiplication (variable base), median of runs.
fn scalar_mul() -> Duration {
    let p = RistrettoPoint::mul_base(&Scalar::from(7u64));
    let s = Scalar::from_bytes_mod_order([42; 32]);
    let mut runs = Vec::new();
    let mut acc = p;
    for _ in 0..9 {
        let t = Instant::now();
        for _ in 0..2_000 {
            acc *= s;
        }
        runs.push(t.elapsed() / 2_000);
    }
    std::hint::black_box(acc);
    runs.sort();
    runs[runs.len() / 2]
}

fn filesystem(path: &str) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T", path])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A child process: `--child CONNINFO BATCH SECONDS` prints
/// `count cpu_ns commits waited_ns held_ns`.
fn child(args: &[String]) {
    let conninfo = &args[0];
    let batch: usize = args[1].parse().unwrap();
    let seconds: f64 = args[2].parse().unwrap();
    let store = Arc::new(PostgresStore::open(conninfo).unwrap());
    let srs = Srs::open(SrsConfig::shared(
        store.clone() as Arc<dyn Store>,
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    let threads = if batch == 1 {
        SINGLE_THREADS
    } else {
        BATCH_THREADS
    };
    // Wait for the go file so that both processes start together.
    let go = &args[3];
    while !std::path::Path::new(go).exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (n, cpu) = load(&srs, batch, threads, seconds);
    let l = store.lock_stats();
    println!(
        "@@ {n} {} {} {} {}",
        cpu.as_nanos(),
        l.commits,
        l.waited.as_nanos(),
        l.held.as_nanos()
    );
}

struct Row {
    store: &'static str,
    processes: usize,
    batch: usize,
    per_second: f64,
    cpu_ratio: f64,
    held_us: Option<f64>,
}

fn processes(
    cluster: &pg::Cluster,
    n: usize,
    batch: usize,
    seconds: f64,
) -> (u64, Duration, (u64, u128)) {
    let go = cluster.socket_dir().join(format!("go-{n}-{batch}"));
    let kids: Vec<_> = (0..n)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--child",
                    &cluster.conninfo("bench"),
                    &batch.to_string(),
                    &seconds.to_string(),
                    go.to_str().unwrap(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Each opens (and loads) before the go.
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(&go, b"").unwrap();
    let (mut count, mut cpu, mut commits, mut held) = (0u64, Duration::ZERO, 0u64, 0u128);
    for mut k in kids {
        let out = k.stdout.take().unwrap();
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = l.strip_prefix("@@ ") {
                let f: Vec<u128> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                count += f[0] as u64;
                cpu += Duration::from_nanos(f[1] as u64);
                commits += f[2] as u64;
                held += f[4];
            }
        }
        assert!(k.wait().unwrap().success());
    }
    (count, cpu, (commits, held))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(4.0);
    let mul = scalar_mul();
    let mul_s = mul.as_secs_f64();
    eprintln!("one scalar multiplication: {:.1} µs", mul_s * 1e6);

    let cluster = pg::Cluster::start();
    cluster.createdb("bench");
    let fs = filesystem("/tmp");
    eprintln!("PostgreSQL data and SQLite file on /tmp ({fs})");
    setup(&Srs::open_postgres(&cluster.conninfo("bench"), StorageKey::from_bytes(&KEY)).unwrap());

    let sqlite_dir = tempfile::tempdir_in("/tmp").unwrap();
    let sqlite = Srs::open_sqlite(
        sqlite_dir.path().join("srs.db"),
        StorageKey::from_bytes(&KEY),
    )
    .unwrap();
    setup(&sqlite);
    let memory = Srs::open(SrsConfig::new(
        MemoryStore::new(),
        StorageKey::from_bytes(&KEY),
    ))
    .unwrap();
    setup(&memory);

    let mut rows = Vec::new();
    for batch in [1usize, 64, 256] {
        let threads = if batch == 1 {
            SINGLE_THREADS
        } else {
            BATCH_THREADS
        };
        for (name, srs) in [("memory", &memory), ("sqlite", &sqlite)] {
            eprintln!("{name}, batch {batch}: {seconds} s");
            let (n, cpu) = load(srs, batch, threads, seconds);
            rows.push(Row {
                store: name,
                processes: 1,
                batch,
                per_second: n as f64 / seconds,
                cpu_ratio: cpu.as_secs_f64() / n as f64 / mul_s,
                held_us: None,
            });
        }
        for procs in [1usize, 2] {
            eprintln!("postgres × {procs}, batch {batch}: {seconds} s");
            let (n, cpu, (commits, held)) = processes(&cluster, procs, batch, seconds);
            rows.push(Row {
                store: "postgres",
                processes: procs,
                batch,
                per_second: n as f64 / seconds,
                cpu_ratio: cpu.as_secs_f64() / n as f64 / mul_s,
                held_us: (commits > 0).then(|| held as f64 / commits as f64 / 1e3),
            });
        }
    }

    // Grant and revoke latency, one at a time.
    let latency = |srs: &Srs| -> (f64, f64) {
        let p = patient();
        let k = p.portion_secret(&lab(), 0);
        let (mut g, mut r) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let u = i % USERS;
            let t = Instant::now();
            srs.take(&p, &lab(), &user_id(u)).unwrap();
            r.push(t.elapsed());
            let rk = ReKey::generate(&k, user_keys(u).public());
            let t = Instant::now();
            srs.give(&p, &lab(), &user_id(u), rk, Scope::AllRecords, None)
                .unwrap();
            g.push(t.elapsed());
        }
        g.sort();
        r.sort();
        (g[100].as_secs_f64() * 1e3, r[100].as_secs_f64() * 1e3)
    };
    eprintln!("grant/revoke latency");
    let pg_srs =
        Srs::open_postgres(&cluster.conninfo("bench"), StorageKey::from_bytes(&KEY)).unwrap();
    let (pg_grant, pg_revoke) = latency(&pg_srs);
    let (sq_grant, sq_revoke) = latency(&sqlite);

    // Catch-up: B does not follow; A makes 10,000 changes; B catches up.
    eprintln!("catch-up after 10,000 changes by another process");
    let b = Srs::open(
        SrsConfig::new(
            PostgresStore::open(&cluster.conninfo("bench")).unwrap(),
            StorageKey::from_bytes(&KEY),
        )
        .follow_changes(false),
    )
    .unwrap();
    // 10,000 registrations: 10,000 new rows and audit entries to verify.
    for i in 0..10_000 {
        let kp = KeyPair::generate();
        let id = Identity::new(format!("late-{i}")).unwrap();
        pg_srs.add_user(&id, Role::Researcher, &kp).unwrap();
    }
    let t = Instant::now();
    b.sync().unwrap();
    let catch_up = t.elapsed();
    assert_eq!(b.registry(), pg_srs.registry());

    println!(
        "\nscalar multiplication: {:.1} µs; /tmp is {fs}; {} cores",
        mul_s * 1e6,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<9} {:>5} {:>6} {:>14} {:>16} {:>12}",
        "store", "procs", "batch", "re-enc/s", "CPU/re-enc ÷ mul", "lock held µs"
    );
    for r in &rows {
        println!(
            "{:<9} {:>5} {:>6} {:>14.0} {:>16.2} {:>12}",
            r.store,
            r.processes,
            r.batch,
            r.per_second,
            r.cpu_ratio,
            r.held_us.map_or("-".into(), |h| format!("{h:.0}"))
        );
    }
    println!(
        "grant / revoke median: PostgreSQL {pg_grant:.2} / {pg_revoke:.2} ms; SQLite {sq_grant:.2} / {sq_revoke:.2} ms"
    );
    println!(
        "catch-up after 10,000 changes by another process: {:.2} s",
        catch_up.as_secs_f64()
    );

    let json_rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"store\":\"{}\",\"processes\":{},\"batch\":{},\"per_second\":{:.1},\"cpu_per_reencryption_over_scalar_mul\":{:.3},\"lock_held_us\":{}}}",
                r.store,
                r.processes,
                r.batch,
                r.per_second,
                r.cpu_ratio,
                r.held_us.map_or("null".into(), |h| format!("{h:.1}"))
            )
        })
        .collect();
    let json = format!(
        "{{\"scalar_mul_us\":{:.2},\"filesystem\":\"{fs}\",\"seconds\":{seconds},\"rows\":[{}],\"grant_ms\":{{\"postgres\":{pg_grant:.3},\"sqlite\":{sq_grant:.3}}},\"revoke_ms\":{{\"postgres\":{pg_revoke:.3},\"sqlite\":{sq_revoke:.3}}},\"catch_up_10000_s\":{:.3}}}\n",
        mul_s * 1e6,
        json_rows.join(","),
        catch_up.as_secs_f64()
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sesphr-bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("scale-out.json"), json).unwrap();
}
