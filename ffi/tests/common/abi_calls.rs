//! Writes `abi_calls.c`: every function of the header that returns a
//! `sesphr_result`, called once with good arguments and then with each
//! pointer parameter NULL, and each byte input NULL with a length, NULL
//! without one, and 0, 1, 31, 32, 33 and 65 bytes long (on the heap, exactly
//! that long). Each call prints one `case` line (see
//! `ffi/tests/c/abi_fixture.h`); tests/c_api.rs checks them against the
//! ABI's argument rules.
use super::cheader::{Function, Param};

/// What a parameter is, from its C type and name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// A handle of the fixture, shared by the calls.
    Shared(&'static str),
    /// A stateful handle made fresh for each call (`sealer`, `opener`).
    Fresh(&'static str),
    /// A byte input and the index of its length.
    Bytes(usize),
    /// Its length (set with the input).
    Len,
    /// An array of `count` elements: byte inputs, their lengths, epochs, bytes.
    Array(&'static str),
    /// The element count of the arrays.
    Count,
    CStr,
    Options(&'static str),
    Callback,
    Ctx,
    /// A handle or buffer output (`T **`), `count` of them where there is a
    /// count.
    OutHandle(&'static str),
    /// A caller buffer for output, and the index of its capacity.
    OutBytes(usize),
    OutCap,
    /// A scalar output (`size_t *`, `uint64_t *`, `uint32_t *`).
    OutScalar(&'static str),
    /// An array of result codes, `count` of them where there is a count.
    OutResults,
    /// An integer argument with the value to pass.
    Scalar(&'static str),
}

const HANDLES: [&str; 5] = ["srs", "patient_keys", "keypair", "sealer", "opener"];

fn handle_of(ty: &str) -> Option<&'static str> {
    let base = ty.trim_start_matches("const ").trim_end_matches(['*', ' ']);
    HANDLES.into_iter().find(|h| base == format!("sesphr_{h}"))
}

/// The kinds of a function's parameters.
pub(crate) fn kinds(f: &Function) -> Vec<Kind> {
    let p = &f.params;
    let mut out: Vec<Kind> = Vec::with_capacity(p.len());
    for (i, x) in p.iter().enumerate() {
        let next = p.get(i + 1);
        let next_is_len = next.is_some_and(|n| n.ty == "size_t" && n.name.ends_with("_len"));
        let next_is_cap = next.is_some_and(|n| {
            n.ty == "size_t"
                && (n.name == "out_len" || n.name == "out_cap" || n.name.ends_with("_len"))
        });
        let ty = x.ty.as_str();
        let kind = if x.is_callback() {
            Kind::Callback
        } else if let Some(h) = handle_of(ty).filter(|_| ty.matches('*').count() == 1) {
            if h == "sealer" || h == "opener" {
                Kind::Fresh(h)
            } else {
                Kind::Shared(h)
            }
        } else if let Some(h) = ty
            .strip_suffix("**")
            .map(|b| b.trim().trim_start_matches("sesphr_"))
            .and_then(|b| HANDLES.into_iter().chain(["buffer"]).find(|h| *h == b))
        {
            Kind::OutHandle(h)
        } else {
            match ty {
                "const uint8_t *" if next_is_len => Kind::Bytes(i + 1),
                "const uint8_t *" => Kind::Array("uint8_t"),
                "const uint8_t *const *" => Kind::Array("const uint8_t *"),
                "const size_t *" => Kind::Array("size_t"),
                "const uint32_t *" => Kind::Array("uint32_t"),
                "const char *" => Kind::CStr,
                "const sesphr_srs_options *" => Kind::Options("sesphr_srs_options"),
                "const sesphr_grant_options *" => Kind::Options("sesphr_grant_options"),
                "void *" => Kind::Ctx,
                "uint8_t *" if next_is_cap => Kind::OutBytes(i + 1),
                "size_t *" => Kind::OutScalar("size_t"),
                "uint64_t *" => Kind::OutScalar("uint64_t"),
                "uint32_t *" => Kind::OutScalar("uint32_t"),
                "uint8_t *" => Kind::OutScalar("uint8_t"),
                "sesphr_result *" => Kind::OutResults,
                "size_t" if x.name == "count" => Kind::Count,
                "size_t" if matches!(out.last(), Some(Kind::Bytes(_))) => Kind::Len,
                "size_t" if matches!(out.last(), Some(Kind::OutBytes(_))) => Kind::OutCap,
                "size_t" | "uint32_t" | "uint64_t" | "unsigned int" => {
                    Kind::Scalar(match x.name.as_str() {
                        "purpose" => "SESPHR_PURPOSE_TREATMENT",
                        "threshold" => "2",
                        "nodes" => "3",
                        _ => "0",
                    })
                }
                _ => panic!("{}: no rule for parameter `{} {}`", f.name, x.ty, x.name),
            }
        };
        out.push(kind);
    }
    out
}

/// How a case calls the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// Every argument good.
    Base,
    /// This pointer NULL (a byte input: NULL with its usual length).
    Null,
    /// This byte input NULL with length 0.
    NullEmpty,
    /// This byte input this many bytes long.
    Len(usize),
}

impl Variant {
    pub(crate) fn name(self) -> String {
        match self {
            Self::Base => "base".into(),
            Self::Null => "null".into(),
            Self::NullEmpty => "null0".into(),
            Self::Len(n) => format!("len{n}"),
        }
    }
}

/// The lengths tried on each byte input.
pub(crate) const LENGTHS: [usize; 6] = [0, 1, 31, 32, 33, 65];
/// The length of byte inputs not under test, and of the arrays' elements.
const USUAL: usize = 64;
/// The element count of arrays.
const COUNT: usize = 2;
/// Output buffers' capacity.
const CAP: usize = 4096;

/// The cases of one function: (parameter under test or "-", variant).
pub(crate) fn cases(f: &Function, kinds: &[Kind]) -> Vec<(Option<usize>, Variant)> {
    let mut out = vec![(None, Variant::Base)];
    for (i, k) in kinds.iter().enumerate() {
        match k {
            Kind::Bytes(_) => {
                out.push((Some(i), Variant::Null));
                out.push((Some(i), Variant::NullEmpty));
                out.extend(LENGTHS.iter().map(|&n| (Some(i), Variant::Len(n))));
            }
            Kind::Len | Kind::Count | Kind::OutCap | Kind::Scalar(_) => {}
            _ => out.push((Some(i), Variant::Null)),
        }
    }
    let _ = f;
    out
}

/// The C source of one case.
fn case(f: &Function, kinds: &[Kind], under: Option<usize>, v: Variant) -> String {
    let p: &[Param] = &f.params;
    let mut decl = String::new();
    let mut args: Vec<String> = Vec::new();
    let mut checks: Vec<String> = vec!["1".into()];
    let mut frees = String::new();
    let mut on_ok = String::new();
    let null = |i: usize| under == Some(i) && v == Variant::Null;
    let has_count = kinds.contains(&Kind::Count);
    let n_out = if has_count { COUNT } else { 1 };
    for (i, k) in kinds.iter().enumerate() {
        let a = format!("a{i}");
        let arg = match k {
            Kind::Shared(h) => {
                let field = if *h == "patient_keys" { "keys" } else { h };
                if null(i) {
                    "NULL".into()
                } else {
                    format!("fx.{field}")
                }
            }
            Kind::Fresh(h) => {
                if null(i) {
                    "NULL".into()
                } else {
                    decl += &format!("    sesphr_{h} *{a} = fresh_{h}();\n");
                    frees += &format!("    sesphr_{h}_free({a});\n");
                    a
                }
            }
            Kind::Bytes(len_at) => {
                let len = match (under == Some(i), v) {
                    (true, Variant::Len(n)) => n,
                    (true, Variant::NullEmpty) => 0,
                    _ => USUAL,
                };
                let is_null = under == Some(i) && matches!(v, Variant::Null | Variant::NullEmpty);
                decl += &format!("    size_t l{i} = {len};\n");
                let _ = len_at;
                if is_null {
                    "NULL".into()
                } else {
                    decl += &format!("    uint8_t *{a} = input(l{i});\n");
                    frees += &format!("    free({a});\n");
                    a
                }
            }
            Kind::Len => format!("l{}", i - 1),
            Kind::Count => COUNT.to_string(),
            Kind::Array(elem) => {
                if null(i) {
                    "NULL".into()
                } else {
                    match *elem {
                        "const uint8_t *" => {
                            decl += &format!(
                                "    const uint8_t *{a}[{COUNT}];\n    for (size_t k = 0; k < {COUNT}; k++) {a}[k] = input({USUAL});\n"
                            );
                            frees += &format!(
                                "    for (size_t k = 0; k < {COUNT}; k++) free((void *){a}[k]);\n"
                            );
                        }
                        "size_t" => {
                            decl += &format!("    size_t {a}[{COUNT}] = {{{USUAL}, {USUAL}}};\n")
                        }
                        "uint8_t" => decl += &format!("    uint8_t {a}[{COUNT}] = {{1, 2}};\n"),
                        _ => decl += &format!("    {elem} {a}[{COUNT}] = {{0}};\n"),
                    }
                    a
                }
            }
            Kind::CStr => {
                if null(i) {
                    "NULL".into()
                } else if p[i].name == "path" {
                    decl += &format!("    char {a}[512];\n    scratch_path({a}, sizeof {a});\n");
                    a
                } else {
                    "\"host=/nonexistent-sesphr dbname=none connect_timeout=1\"".into()
                }
            }
            Kind::Options(t) => {
                if null(i) {
                    "NULL".into()
                } else {
                    let init = if *t == "sesphr_srs_options" {
                        "SESPHR_SRS_OPTIONS_INIT"
                    } else {
                        "SESPHR_GRANT_OPTIONS_INIT"
                    };
                    decl += &format!("    {t} {a} = {init};\n");
                    format!("&{a}")
                }
            }
            Kind::Callback => {
                if null(i) {
                    "NULL".into()
                } else {
                    "callback".into()
                }
            }
            Kind::Ctx => {
                if null(i) {
                    "NULL".into()
                } else {
                    "SENTINEL_PTR".into()
                }
            }
            Kind::OutHandle(h) => {
                decl += &format!(
                    "    sesphr_{h} *{a}[{n_out}];\n    for (size_t k = 0; k < {n_out}; k++) {a}[k] = SENTINEL_PTR;\n"
                );
                checks.push(format!(
                    "({a}[0] == SENTINEL_PTR && {a}[{n_out} - 1] == SENTINEL_PTR)"
                ));
                on_ok += &format!(
                    "        for (size_t k = 0; k < {n_out}; k++) if ({a}[k] != SENTINEL_PTR) sesphr_{h}_free({a}[k]);\n"
                );
                if null(i) { "NULL".into() } else { a }
            }
            Kind::OutBytes(_) => {
                decl += &format!(
                    "    uint8_t {a}[{CAP}];\n    memset({a}, SENTINEL_BYTE, sizeof {a});\n"
                );
                checks.push(format!("all_bytes({a}, sizeof {a}, SENTINEL_BYTE)"));
                if null(i) { "NULL".into() } else { a }
            }
            Kind::OutCap => CAP.to_string(),
            Kind::OutScalar(t) => {
                decl += &format!("    {t} {a} = ({t})SENTINEL_WORD;\n");
                checks.push(format!("({a} == ({t})SENTINEL_WORD)"));
                if null(i) {
                    "NULL".into()
                } else {
                    format!("&{a}")
                }
            }
            Kind::OutResults => {
                decl += &format!(
                    "    sesphr_result {a}[{n_out}];\n    for (size_t k = 0; k < {n_out}; k++) {a}[k] = (sesphr_result)SENTINEL_WORD;\n"
                );
                checks.push(format!("({a}[0] == (sesphr_result)SENTINEL_WORD)"));
                if null(i) { "NULL".into() } else { a }
            }
            Kind::Scalar(value) => (*value).to_string(),
        };
        args.push(arg);
    }
    let param = under.map_or("-", |i| p[i].name.as_str());
    format!(
        "  {{ /* {name}: {param} {variant} */\n{decl}    sesphr_result r = {name}({args});\n    int untouched = {checks};\n    report(\"{name}\", \"{param}\", \"{variant}\", r, untouched);\n    if (r == SESPHR_RESULT_OK) {{\n{on_ok}    }}\n{frees}  }}\n",
        name = f.name,
        variant = v.name(),
        args = args.join(", "),
        checks = checks.join(" && "),
    )
}

/// The whole program.
pub(crate) fn program(functions: &[Function]) -> String {
    let mut c = String::from(
        "#include \"abi_fixture.h\"\n\nint main(int argc, char **argv)\n{\n    if (argc < 2) return 2;\n    scratch_dir = argv[1];\n    fixture_new();\n",
    );
    for f in functions.iter().filter(|f| f.ret == "sesphr_result") {
        let k = kinds(f);
        if !f.params.iter().any(Param::is_pointer) {
            continue;
        }
        for (under, v) in cases(f, &k) {
            c += &case(f, &k, under, v);
        }
    }
    c += "    fixture_free();\n    return 0;\n}\n";
    c
}
