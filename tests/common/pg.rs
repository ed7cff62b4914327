//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` and
//! `pg_ctl` on a temporary directory, reached only through a Unix socket in
//! that directory (no TCP port), stopped when dropped — also when a test
//! fails. PostgreSQL refuses to run as root: as root, the cluster runs as
//! the `postgres` user (created by the Debian package) through `runuser`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the PostgreSQL server programs are: `$SESPHR_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or `pg_config --bindir`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SESPHR_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, b)) = found.pop() {
        return Some(b);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let d = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    d.join("initdb").exists().then_some(d)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A running throwaway cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Starts a new cluster. Panics with one clear message if PostgreSQL is
    /// not installed.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Cluster::start`], with extra server settings (`name=value`).
    pub fn start_with(settings: &[&str]) -> Self {
        let Some(bin) = bin_dir() else {
            panic!(
                "PostgreSQL is not installed: these tests need its server programs \
                 (initdb, pg_ctl). Install the `postgresql` package (Debian: \
                 `apt-get install postgresql`), or set SESPHR_PG_BIN to their directory."
            );
        };
        // Short path: a Unix socket path is limited to about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("sesphr-pg")
            .tempdir_in("/tmp")
            .unwrap();
        let as_postgres = is_root();
        let c = Self {
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(c.dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the cluster directory to postgres failed");
        }
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let mut opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c max_connections=200",
            c.dir.path().display()
        );
        for s in settings {
            opts.push_str(" -c ");
            opts.push_str(s);
        }
        let log = c.dir.path().join("log");
        c.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The connection string of database `db`.
    pub fn conninfo(&self, db: &str) -> String {
        format!(
            "host={} user=postgres dbname={db}",
            self.dir.path().display()
        )
    }

    /// Runs a client program on `db` over the socket, then `args`.
    fn client(&self, program: &str, db: &str, args: &[&str]) -> Output {
        let host = self.dir.path().to_str().unwrap();
        let mut all = vec!["-h", host, "-U", "postgres"];
        if program != "createdb" {
            all.push("-d");
        }
        all.push(db);
        all.extend_from_slice(args);
        self.run(program, &all)
    }

    /// Creates database `db`.
    pub fn createdb(&self, db: &str) {
        self.client("createdb", db, &[]);
    }

    /// Runs SQL in `db` with psql; returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.client("psql", db, &["-v", "ON_ERROR_STOP=1", "-qAtc", sql]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Dumps `db` to a file in the cluster's directory.
    pub fn dump(&self, db: &str, name: &str) -> PathBuf {
        let file = self.dir.path().join(name);
        self.client("pg_dump", db, &["-f", file.to_str().unwrap()]);
        file
    }

    /// Replaces `db` with what `dump` holds.
    pub fn restore(&self, db: &str, dump: &Path) {
        let host = self.dir.path().to_str().unwrap();
        self.run("dropdb", &["-h", host, "-U", "postgres", "--force", db]);
        self.createdb(db);
        let f = dump.to_str().unwrap();
        self.client("psql", db, &["-v", "ON_ERROR_STOP=1", "-q", "-f", f]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap_or(""),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
