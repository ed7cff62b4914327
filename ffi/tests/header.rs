//! The committed C header is exactly what cbindgen (pinned version) generates
//! from `ffi/src/`. `SESPHR_BLESS_HEADER=1 cargo test --test header` rewrites it.
#![allow(clippy::unwrap_used, clippy::panic)]

#[test]
fn committed_header_matches_a_fresh_generation() {
    let krate = env!("CARGO_MANIFEST_DIR");
    // cbindgen.toml and include/ live at the workspace root.
    let root = format!("{krate}/..");
    let config = cbindgen::Config::from_file(format!("{root}/cbindgen.toml")).unwrap();
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(krate)
        .with_config(config)
        .generate()
        .unwrap()
        .write(&mut fresh);
    let path = format!("{root}/include/sesphr.h");
    if std::env::var_os("SESPHR_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    // Only the C API's own names reach the header.
    let text = String::from_utf8(fresh.clone()).unwrap();
    for line in text.lines() {
        // `typedef struct {` ends with `} name;`.
        let name = line
            .strip_prefix("#define ")
            .or_else(|| line.strip_prefix("typedef struct "))
            .filter(|r| !r.starts_with('{'))
            .or_else(|| line.strip_prefix("} ").and_then(|r| r.strip_suffix(';')))
            .and_then(|r| r.split_whitespace().next());
        if let Some(name) = name {
            assert!(
                name.starts_with("SESPHR_") || name.starts_with("sesphr_"),
                "{name} leaked into the header"
            );
        }
    }
    for f in text
        .lines()
        .filter(|l| l.contains('(') && !l.starts_with("//") && !l.starts_with(' '))
    {
        assert!(
            f.contains(" sesphr_") || f.contains("*sesphr_") || f.starts_with('#'),
            "not an sesphr_ function: {f}"
        );
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != fresh {
        panic!(
            "include/sesphr.h is stale: run `SESPHR_BLESS_HEADER=1 cargo test --test header` and commit it"
        );
    }
}
