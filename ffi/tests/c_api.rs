//! Builds `libsesphr.so`, compiles the C tests (`tests/c/`) and the C example
//! (`examples/c/`) against it with `-std=c11 -Wall -Wextra -Wpedantic -Werror`,
//! and runs them, so that `cargo test` alone checks the C ABI.
//!
//! `.ci/run` also runs them under valgrind (`SESPHR_C_VALGRIND=1`) and built
//! with AddressSanitizer and UndefinedBehaviorSanitizer (`SESPHR_C_SANITIZE=1`).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

#[cfg(feature = "postgres")]
#[path = "../../tests/common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (include/, scripts/, examples/c/, tests/vectors/).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CFLAGS: [&str; 6] = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-g",
];

/// Builds the shared library (cargo test builds only the rlib) and returns
/// the directory that holds it.
fn library_dir() -> PathBuf {
    // Both tests of this file need it; they run in parallel, and the links
    // below must be made once.
    static LIB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(build_library_dir).clone()
}

fn build_library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/c_api-… → target/<profile>
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--lib", "--quiet", "-p", "sesphr-ffi"])
        .current_dir(ROOT);
    if cfg!(feature = "postgres") {
        cmd.args(["--features", "postgres"]);
    }
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "building libsesphr failed");
    let so = dir.join("libsesphr.so");
    assert!(so.exists(), "no libsesphr.so in {}", so.display());
    // Lay the library out as an installation would: the real file under its
    // soname, and the development link to it.
    let lib = dir.join("c-tests").join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for name in ["libsesphr.so.0", "libsesphr.so"] {
        let link = lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&so, &link).unwrap();
    }
    lib
}

fn compile(lib: &Path, source: &str, out: &Path, extra: &[&str]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .args(extra)
        .arg(format!("-I{ROOT}/include"))
        .arg(format!("{ROOT}/{source}"))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsesphr", "-lpthread"])
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(status.success(), "compiling {source} failed");
}

fn run(what: &str, mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {what}\n{stdout}{stderr}");
    assert!(out.status.success(), "{what} failed: {}", out.status);
    stdout
}

fn test_command(binary: &Path, scratch: &Path) -> Command {
    let mut c = Command::new(binary);
    c.arg(format!("{ROOT}/tests/vectors/sesphr-v1.txt"))
        .arg(scratch);
    #[cfg(feature = "postgres")]
    if let Some(ci) = PG.get() {
        c.env("SESPHR_PG_CONNINFO", ci);
    }
    c
}

/// With the `postgres` feature, the C tests also run two handles on one
/// database of a throwaway cluster.
#[cfg(feature = "postgres")]
static PG: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[test]
fn c_tests_and_c_example() {
    #[cfg(feature = "postgres")]
    let _cluster = {
        let c = pg::Cluster::start_with(&["fsync=off"]);
        c.createdb("c");
        let _ = PG.set(c.conninfo("c"));
        c
    };
    let lib = library_dir();
    let out = lib.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&out).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    let test_bin = out.join("test_sesphr");
    compile(&lib, "ffi/tests/c/test_sesphr.c", &test_bin, &[]);
    let stdout = run("C tests", test_command(&test_bin, scratch.path()));
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed"),
        "unexpected summary: {last}"
    );
    let passed: u32 = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed > 300, "only {passed} C checks ran");

    // The header as C++ (a vendor's C++ build), linked and run.
    let cpp = out.join("header_cpp");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args(["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg(format!("-I{ROOT}/include"))
        .arg(format!("{ROOT}/ffi/tests/c/header_cpp.cpp"))
        .arg("-o")
        .arg(&cpp)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lsesphr")
        .status()
        .unwrap_or_else(|e| panic!("running {cxx}: {e}"));
    assert!(status.success(), "compiling the header as C++ failed");
    let said = run("C++", Command::new(&cpp));
    assert!(said.contains("success"), "{said}");

    let example = out.join("phr_sharing");
    compile(&lib, "examples/c/phr_sharing.c", &example, &[]);
    let story = run("C example", Command::new(&example));
    assert!(
        story.contains("denied") && story.contains("reads"),
        "{story}"
    );

    if std::env::var_os("SESPHR_C_VALGRIND").is_some() {
        let mut v = Command::new("valgrind");
        v.args(["--error-exitcode=1", "--leak-check=full", "--quiet"])
            // The pool threads' TLS blocks, "possibly lost" by design: the
            // suppression file hosts are told to use (README).
            .arg(format!("--suppressions={ROOT}/scripts/sesphr.supp"))
            .arg(&test_bin)
            .arg(format!("{ROOT}/tests/vectors/sesphr-v1.txt"))
            .arg(scratch.path());
        run("C tests under valgrind", v);
    }
    if std::env::var_os("SESPHR_C_SANITIZE").is_some() {
        let asan_bin = out.join("test_sesphr_asan");
        compile(
            &lib,
            "ffi/tests/c/test_sesphr.c",
            &asan_bin,
            &[
                "-fsanitize=address,undefined",
                "-fno-omit-frame-pointer",
                "-fno-sanitize-recover=all",
            ],
        );
        let mut c = test_command(&asan_bin, scratch.path());
        c.env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
        run("C tests under ASan/UBSan", c);
    }
}

/// `libsesphr.a`, as `scripts/staticlib.sh` makes it (and the install script
/// installs it), linked into a host together with the system's static
/// SQLite: no duplicate symbols, the host keeps its own SQLite, sesphr keeps
/// its own. Needs the system's `libsqlite3.a` and `sqlite3.h` (Debian's
/// `libsqlite3-dev`, which `.ci/run` installs): without them the check is
/// skipped locally with a message, and fails in CI.
#[test]
fn static_library_links_beside_the_hosts_own_sqlite() {
    let lib = library_dir();
    let out = lib.parent().unwrap().to_path_buf();
    let system_sqlite = [
        "/usr/lib/x86_64-linux-gnu/libsqlite3.a",
        "/usr/lib/aarch64-linux-gnu/libsqlite3.a",
        "/usr/lib/libsqlite3.a",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists());
    let Some(system_sqlite) =
        system_sqlite.filter(|_| Path::new("/usr/include/sqlite3.h").exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install libsqlite3-dev for this check"
        );
        eprintln!("skipped: no system libsqlite3.a / sqlite3.h (apt-get install libsqlite3-dev)");
        return;
    };
    // `lib` is target/<profile>/c-tests/lib; cargo leaves the archive in
    // target/<profile>.
    let raw = out.parent().unwrap().join("libsesphr.a");
    let clean = out.join("static").join("libsesphr.a");
    std::fs::create_dir_all(clean.parent().unwrap()).unwrap();
    let status = Command::new(format!("{ROOT}/scripts/staticlib.sh"))
        .arg(&raw)
        .arg(&clean)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/staticlib.sh failed");
    // Only the C API is defined globally.
    let syms = Command::new("readelf")
        .args(["-Ws"])
        .arg(&clean)
        .output()
        .unwrap();
    let syms = String::from_utf8_lossy(&syms.stdout);
    let exported: Vec<&str> = syms
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && matches!(f[4], "GLOBAL" | "WEAK") && f[6] != "UND").then(|| f[7])
        })
        .collect();
    assert!(exported.len() > 40, "{exported:?}");
    let foreign: Vec<&&str> = exported
        .iter()
        .filter(|s| !s.starts_with("sesphr_"))
        .collect();
    assert!(foreign.is_empty(), "exported beside the C API: {foreign:?}");

    let bin = out.join("static_with_sqlite");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .arg(format!("-I{ROOT}/include"))
        .arg(format!("{ROOT}/ffi/tests/c/static_with_sqlite.c"))
        .arg("-o")
        .arg(&bin)
        .arg(&clean)
        .arg(&system_sqlite)
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "linking libsesphr.a with the system's libsqlite3.a failed"
    );
    let scratch = tempfile::tempdir().unwrap();
    let said = run("static link beside the host's SQLite", {
        let mut c = Command::new(&bin);
        c.arg(scratch.path());
        c
    });
    assert!(said.contains("1 passed, 0 failed"), "{said}");
}
