//! Layering: no two source files import each other (a `use crate::a::…` in
//! `b` and a `use crate::b::…` in `a`), in the crate and in the C ABI; and
//! the core never reaches into the C ABI. Read from the sources, so a new
//! cycle fails here, not in review.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a source file under `root` (`src/srs/journal.rs` →
/// `srs::journal`, `src/consent/mod.rs` → `consent`).
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every module `file` names through `crate::` or `super::` paths: the
/// longest known module each path starts with.
fn imports(module: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        for (i, _) in text.match_indices(prefix) {
            // `super::` inside a longer path (`crate::x::super::`) never
            // occurs; a `super::` inside `mod tests` names the file itself.
            let rest: String = text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut path = if base.is_empty() {
                String::new()
            } else {
                base.to_owned()
            };
            let mut best = None;
            for seg in rest.split("::").filter(|s| !s.is_empty()) {
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str(seg);
                if known.contains(&path) {
                    best = Some(path.clone());
                }
            }
            if let Some(m) = best.filter(|m| m != module) {
                out.insert(m);
            }
        }
    }
    out
}

fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(root, &mut all);
    let known: BTreeSet<String> = all.iter().map(|f| module_of(root, f)).collect();
    all.iter()
        .map(|f| {
            let m = module_of(root, f);
            let text = std::fs::read_to_string(f).unwrap();
            // Unit tests may reach anywhere; the layering is of the code.
            // Doc links (`[`crate::srs::Srs`]`) are not imports.
            let code: String = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or("")
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let deps = imports(&m, &code, &known);
            (m, deps)
        })
        .collect()
}

fn two_cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (a, deps) in g {
        for b in deps {
            // A parent re-exporting its children (`mod.rs`) and a child using
            // its parent's shared helpers is one module, not two files.
            let nested = b.starts_with(&format!("{a}::")) || a.starts_with(&format!("{b}::"));
            if a < b && !nested && g.get(b).is_some_and(|d| d.contains(a)) {
                found.push((a.clone(), b.clone()));
            }
        }
    }
    found
}

#[test]
fn no_two_files_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["src", "ffi/src"] {
        let g = graph(&root.join(dir));
        assert!(g.len() > 5, "{dir}: no modules found");
        let cycles = two_cycles(&g);
        assert!(
            cycles.is_empty(),
            "{dir}: files importing each other: {cycles:?}"
        );
    }
}

#[test]
fn the_detector_sees_a_cycle() {
    let known: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), imports("a", "use crate::b::X;", &known)),
        (
            "b".to_owned(),
            imports("b", "use crate::a::{Y, Z};", &known),
        ),
        ("c".to_owned(), imports("c", "use crate::a::Y;", &known)),
    ]
    .into();
    assert_eq!(two_cycles(&g), vec![("a".to_owned(), "b".to_owned())]);
}

#[test]
fn the_core_never_reaches_into_the_c_abi() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    files(&root.join("src"), &mut all);
    for f in all {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("crate::ffi") && !text.contains("unsafe {"),
            "{} reaches into the C ABI or uses unsafe",
            f.display()
        );
    }
}
