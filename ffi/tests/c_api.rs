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

mod common;
use common::{abi_calls, cheader};

use std::collections::HashMap;
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
    let archive = dir.join("libsesphr.a");
    assert!(archive.exists(), "no libsesphr.a in {}", dir.display());
    // Lay the library out as an installation would: the real file under its
    // soname, linked with its symbol versions as scripts/install.sh links
    // it, and the development link to it.
    let lib = dir.join("c-tests").join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let so = lib.join("libsesphr.so.0");
    let _ = std::fs::remove_file(&so);
    let status = Command::new(format!("{ROOT}/scripts/sharedlib.sh"))
        .arg(&archive)
        .arg(&so)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/sharedlib.sh failed");
    let link = lib.join("libsesphr.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("libsesphr.so.0", &link).unwrap();
    lib
}

/// The version node of this release's symbols: `SESPHR_<major>.<minor>`.
fn version_node() -> String {
    let v: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').collect();
    format!("SESPHR_{}.{}", v[0], v[1])
}

/// The functions the header declares.
fn header_functions() -> Vec<String> {
    let header = std::fs::read_to_string(format!("{ROOT}/include/sesphr.h")).unwrap();
    let mut names: Vec<String> = cheader::functions(&header)
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    names
}

/// The ABI as text: every function's prototype (parameter names left
/// out: they are not ABI), every numeric constant's value, and every
/// structure's size, alignment and field offsets as this machine's C
/// compiler lays them out.
fn abi_layout(lib: &Path) -> String {
    let header = std::fs::read_to_string(format!("{ROOT}/include/sesphr.h")).unwrap();
    let mut text = String::new();
    for f in cheader::functions(&header) {
        let types: Vec<String> = f.params.iter().map(|p| p.ty.clone()).collect();
        text += &format!("function {} {}({})\n", f.ret, f.name, types.join(", "));
    }
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"sesphr.h\"\nint main(void) {\n",
    );
    for name in cheader::constants(&header) {
        c += &format!("  printf(\"constant {name} %llu\\n\", (unsigned long long)({name}));\n");
    }
    for (name, fields) in cheader::structs(&header) {
        c += &format!(
            "  printf(\"struct {name} size %zu align %zu\\n\", sizeof({name}), _Alignof({name}));\n"
        );
        for f in fields {
            c += &format!(
                "  printf(\"  field {f} offset %zu size %zu\\n\", offsetof({name}, {f}), sizeof((({name} *)0)->{f}));\n"
            );
        }
    }
    c += "  return 0;\n}\n";
    let dir = lib.parent().unwrap();
    let src = dir.join("abi_layout.c");
    std::fs::write(&src, c).unwrap();
    let bin = dir.join("abi_layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .arg(format!("-I{ROOT}/include"))
        .arg(&src)
        .arg("-o")
        .arg(&bin)
        .status()
        .unwrap();
    assert!(status.success(), "compiling abi_layout.c failed");
    text + &run("ABI layout", Command::new(&bin))
}

/// `abi/layout.txt` is the ABI baseline of the header (what `abidiff`
/// cannot see in a library without C debug information): a change to it
/// is an ABI change, made on purpose. `SESPHR_BLESS_ABI=1 cargo test -p
/// sesphr-ffi --test c_api abi` rewrites it.
#[test]
fn abi_layout_matches_the_baseline() {
    let lib = library_dir();
    let fresh = abi_layout(&lib);
    let path = format!("{ROOT}/abi/layout.txt");
    if std::env::var_os("SESPHR_BLESS_ABI").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let diff: Vec<String> = committed
            .lines()
            .filter(|l| !fresh.lines().any(|f| f == *l))
            .map(|l| format!("- {l}"))
            .chain(
                fresh
                    .lines()
                    .filter(|l| !committed.lines().any(|c| c == *l))
                    .map(|l| format!("+ {l}")),
            )
            .collect();
        panic!(
            "the ABI differs from abi/layout.txt:\n{}\nIf the change is meant (see README, ABI policy), run \
             `SESPHR_BLESS_ABI=1 cargo test -p sesphr-ffi --test c_api abi` and commit it",
            diff.join("\n")
        );
    }
}

#[test]
fn every_function_is_exported_under_the_version_node_and_nothing_else() {
    let lib = library_dir();
    let node = version_node();
    let map = std::fs::read_to_string(format!("{ROOT}/ffi/sesphr.map")).unwrap();
    assert!(
        map.contains(&format!("{node} {{")),
        "ffi/sesphr.map does not define {node} (the workspace version's node)"
    );
    let out = Command::new("readelf")
        .args(["--dyn-syms", "--wide"])
        .arg(lib.join("libsesphr.so.0"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut exported: Vec<String> = Vec::new();
    for line in text.lines() {
        // Num: Value Size Type Bind Vis Ndx Name
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[4] != "GLOBAL" || f[6] == "UND" {
            continue;
        }
        let name = f[7];
        if name == node {
            continue; // the node's own definition (ABS)
        }
        let (sym, version) = name
            .split_once("@@")
            .unwrap_or_else(|| panic!("{name} is exported without a version"));
        assert_eq!(version, node, "{sym} is under {version}");
        exported.push(sym.to_owned());
    }
    exported.sort();
    assert_eq!(
        exported,
        header_functions(),
        "exports differ from the header"
    );
    assert!(exported.len() > 90);

    // A program linked against it records the version it needs.
    let bin = lib.parent().unwrap().join("version_probe");
    compile(&lib, "examples/c/phr_sharing.c", &bin, &[]);
    let out = Command::new("readelf")
        .arg("-V")
        .arg(&bin)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let needs = text
        .split("File: libsesphr.so.0")
        .nth(1)
        .unwrap_or_else(|| panic!("no version needed from libsesphr.so.0:\n{text}"));
    assert!(
        needs
            .lines()
            .take(3)
            .any(|l| l.contains(&format!("Name: {node}"))),
        "{text}"
    );
}

/// Whether the header documents that `param` of `function` may be NULL: a
/// sentence of its comment, or of the comment of a function it refers to
/// ("arguments as for `sesphr_…`"), names the parameter and says NULL. A
/// `ctx` is the caller's own pointer, passed back as is: always optional.
fn documented_optional(docs: &HashMap<String, String>, function: &str, param: &str) -> bool {
    let says = |doc: &str| {
        doc.split(". ").any(|s| {
            (s.contains(&format!("`{param}`")) || s.contains(&format!("`*{param}`")))
                && s.contains("NULL")
        })
    };
    let doc = docs.get(function).map_or("", String::as_str);
    param == "ctx"
        || says(doc)
        || doc
            .split('`')
            .filter(|w| w.starts_with("sesphr_") && *w != function)
            .any(|other| docs.get(other).is_some_and(|d| says(d)))
}

/// Every function of the header that returns a result code, called with
/// each pointer NULL and each byte input at several lengths (generated from
/// the header: tests/common/abi_calls.rs), under ASan/UBSan and valgrind in
/// CI: a NULL required pointer or a NULL input with a length is
/// `NULL_PARAMETER` naming the parameter; NULL with length 0 never is; a
/// NULL accepted is documented in the header; a failed call writes no
/// output; no call panics, reads past an input or returns an unknown code.
#[test]
fn every_function_keeps_the_argument_rules() {
    let lib = library_dir();
    let out = lib.parent().unwrap().to_path_buf();
    let header = std::fs::read_to_string(format!("{ROOT}/include/sesphr.h")).unwrap();
    let functions = cheader::functions(&header);
    let docs = cheader::docs(&header);
    let src = out.join("abi_calls.c");
    std::fs::write(&src, abi_calls::program(&functions)).unwrap();
    let fixture = format!("-I{ROOT}/ffi/tests/c");
    let scratch = tempfile::tempdir().unwrap();
    let mut runs: Vec<(String, Command)> = Vec::new();
    let bin = out.join("abi_calls");
    compile(&lib, &src, &bin, &[&fixture]);
    let mut c = Command::new(&bin);
    c.arg(scratch.path());
    runs.push(("argument rules".into(), c));
    if std::env::var_os("SESPHR_C_SANITIZE").is_some() {
        let asan = out.join("abi_calls_asan");
        compile(
            &lib,
            &src,
            &asan,
            &[
                &fixture,
                "-fsanitize=address,undefined",
                "-fno-omit-frame-pointer",
                "-fno-sanitize-recover=all",
            ],
        );
        let mut c = Command::new(&asan);
        c.arg(scratch.path())
            .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
        runs.push(("argument rules under ASan/UBSan".into(), c));
    }
    if std::env::var_os("SESPHR_C_VALGRIND").is_some() {
        let mut v = Command::new("valgrind");
        v.args(["--error-exitcode=1", "--leak-check=full", "--quiet"])
            .arg(format!("--suppressions={ROOT}/scripts/sesphr.supp"))
            .arg(&bin)
            .arg(scratch.path());
        runs.push(("argument rules under valgrind".into(), v));
    }
    for (what, cmd) in runs {
        let text = run(&what, cmd);
        let mut problems = Vec::new();
        let mut cases = 0;
        let mut called = std::collections::BTreeSet::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("case ")) {
            let f: Vec<&str> = line.splitn(6, ' ').collect();
            let (func, param, variant) = (f[0], f[1], f[2]);
            let code: u32 = f[3].parse().unwrap();
            let untouched = f[4] == "1";
            let detail = f.get(5).copied().unwrap_or_default();
            cases += 1;
            called.insert(func.to_owned());
            let mut bad = |why: &str| {
                problems.push(format!(
                    "{func} {param} {variant}: {why} (code {code}: {detail})"
                ))
            };
            if code == 2 {
                bad("panicked");
            }
            if code != 0 && !untouched {
                bad("failed but wrote an output");
            }
            match variant {
                "null" if param_is_byte_input(&functions, func, param) => {
                    let named = code == 1 && detail.contains(&format!("`{param}`"));
                    if !named {
                        bad("NULL with a length must be NULL_PARAMETER naming it");
                    }
                }
                "null" => {
                    let optional = documented_optional(&docs, func, param);
                    if code == 1 && !detail.contains(&format!("`{param}`")) {
                        bad("NULL_PARAMETER must name the parameter");
                    }
                    if code != 1 && !optional {
                        bad("NULL accepted, but the header does not say it may be NULL");
                    }
                    if code == 1 && optional {
                        bad("the header says it may be NULL, but NULL is refused");
                    }
                }
                _ if code == 1 => bad("NULL_PARAMETER without a NULL pointer with a length"),
                _ => {}
            }
        }
        let expected: std::collections::BTreeSet<String> = functions
            .iter()
            .filter(|f| f.ret == "sesphr_result" && f.params.iter().any(cheader::Param::is_pointer))
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(called, expected, "{what}: not every function was called");
        assert!(cases > 500, "{what}: only {cases} cases ran");
        assert!(
            problems.is_empty(),
            "{what}: {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

fn param_is_byte_input(functions: &[cheader::Function], func: &str, param: &str) -> bool {
    functions.iter().filter(|f| f.name == func).any(|f| {
        f.params.windows(2).any(|w| {
            w[0].name == param
                && w[0].ty == "const uint8_t *"
                && w[1].ty == "size_t"
                && w[1].name.ends_with("_len")
        })
    })
}

fn compile(lib: &Path, source: impl AsRef<Path>, out: &Path, extra: &[&str]) {
    let source = source.as_ref();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(CFLAGS)
        .args(extra)
        .arg(format!("-I{ROOT}/include"))
        .arg(Path::new(ROOT).join(source))
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lsesphr", "-lpthread"])
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(status.success(), "compiling {} failed", source.display());
}

fn run(what: &str, mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {what}\n{stdout}{stderr}");
    assert!(out.status.success(), "{what} failed: {}", out.status);
    stdout
}

/// With the `postgres` feature, the C tests also run two handles on one
/// database of a throwaway cluster; each run gets a database of its own
/// (each registers the same names).
#[cfg(feature = "postgres")]
type Databases<'a> = Option<&'a pg::Cluster>;
#[cfg(not(feature = "postgres"))]
type Databases<'a> = Option<&'a ()>;

/// Runs the C tests `binary` with their scratch directory, under `wrapper`
/// (e.g. valgrind and its options) if not empty, and on database `db` of
/// `pg` if there is one.
fn test_command(
    wrapper: &[String],
    binary: &Path,
    scratch: &Path,
    pg: Databases<'_>,
    db: &str,
) -> Command {
    let mut c = match wrapper.split_first() {
        Some((program, options)) => {
            let mut c = Command::new(program);
            c.args(options).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    c.arg(format!("{ROOT}/tests/vectors/sesphr-v1.txt"))
        .arg(scratch);
    #[cfg(feature = "postgres")]
    if let Some(cluster) = pg {
        cluster.createdb(db);
        c.env("SESPHR_PG_CONNINFO", cluster.conninfo(db));
    }
    let _ = (pg, db);
    c
}

#[test]
fn c_tests_and_c_example() {
    #[cfg(feature = "postgres")]
    let cluster = pg::Cluster::start_with(&["fsync=off"]);
    #[cfg(feature = "postgres")]
    let pg = Some(&cluster);
    #[cfg(not(feature = "postgres"))]
    let pg: Databases<'_> = None;
    let lib = library_dir();
    let out = lib.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&out).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    let test_bin = out.join("test_sesphr");
    compile(&lib, "ffi/tests/c/test_sesphr.c", &test_bin, &[]);
    let stdout = run(
        "C tests",
        test_command(&[], &test_bin, scratch.path(), pg, "c"),
    );
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
        // The pool threads' TLS blocks and the PostgreSQL store's
        // connection runtime, "possibly lost" by design: the suppression
        // file hosts are told to use (README).
        let valgrind = [
            "valgrind".to_owned(),
            "--error-exitcode=1".to_owned(),
            "--leak-check=full".to_owned(),
            "--quiet".to_owned(),
            format!("--suppressions={ROOT}/scripts/sesphr.supp"),
        ];
        let v = test_command(&valgrind, &test_bin, scratch.path(), pg, "c_valgrind");
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
        let mut c = test_command(&[], &asan_bin, scratch.path(), pg, "c_asan");
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
