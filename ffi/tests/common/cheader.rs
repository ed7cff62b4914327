//! The functions `include/sesphr.h` declares, parsed from its text (the
//! shape cbindgen writes: `ret name(type param, ...);` after `extern "C" {`),
//! so that ABI tests cover every function without listing them by hand.
#![allow(dead_code)]

/// One parameter: its C type (as written, without the name) and name. A
/// function pointer's type is the whole declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    pub(crate) ty: String,
    pub(crate) name: String,
}

impl Param {
    /// A function pointer parameter.
    pub(crate) fn is_callback(&self) -> bool {
        self.ty.contains('(')
    }

    /// A pointer (data or function).
    pub(crate) fn is_pointer(&self) -> bool {
        self.ty.contains('*')
    }
}

/// One function declaration.
#[derive(Clone, Debug)]
pub(crate) struct Function {
    pub(crate) ret: String,
    pub(crate) name: String,
    pub(crate) params: Vec<Param>,
}

/// Every function declared in the header `text`, in declaration order.
pub(crate) fn functions(text: &str) -> Vec<Function> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let start = code.find("extern \"C\" {").expect("no extern \"C\" block") + 12;
    let mut out = Vec::new();
    for decl in code[start..].split(';') {
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(open) = decl.find('(') else { continue };
        let head = decl[..open].trim_end();
        let name_at = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &head[name_at..];
        if !name.starts_with("sesphr_") {
            continue;
        }
        let ret = head[..name_at].trim().to_owned();
        let close = decl.rfind(')').expect("unbalanced declaration");
        out.push(Function {
            ret,
            name: name.to_owned(),
            params: params(&decl[open + 1..close]),
        });
    }
    out
}

fn params(list: &str) -> Vec<Param> {
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for ch in list.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty() && p != "void")
        .map(|p| {
            if let Some(star) = p.find("(*") {
                let end = p[star..].find(')').expect("function pointer") + star;
                Param {
                    name: p[star + 2..end].to_owned(),
                    ty: p.clone(),
                }
            } else {
                let at = p
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |i| i + 1);
                Param {
                    ty: p[..at].trim().to_owned(),
                    name: p[at..].to_owned(),
                }
            }
        })
        .collect()
}

/// Every `typedef struct { ... } name;` of the header: its name and its
/// fields' names, in order.
pub(crate) fn structs(text: &str) -> Vec<(String, Vec<String>)> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("typedef struct {") {
        let body_start = at + "typedef struct {".len();
        let end = rest[body_start..].find('}').expect("unclosed struct") + body_start;
        let after = &rest[end + 1..];
        let name_end = after.find(';').expect("struct without a name");
        let name = after[..name_end].trim().to_owned();
        let fields = rest[body_start..end]
            .split(';')
            .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|d| !d.is_empty())
            .map(|d| params(&d).remove(0).name)
            .collect();
        out.push((name, fields));
        rest = after;
    }
    out
}

/// Every numeric constant of the header: `#define SESPHR_…` with a number,
/// and the members of its enums.
pub(crate) fn constants(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let name = if let Some(def) = line.strip_prefix("#define ") {
            let mut it = def.split_whitespace();
            match (it.next(), it.next()) {
                (Some(n), Some(v)) if v.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => continue,
            }
        } else if line.starts_with("SESPHR_") && line.contains(" = ") {
            line.split(' ').next().unwrap_or_default()
        } else {
            continue;
        };
        out.push(name.to_owned());
    }
    out
}

/// The comment block right above each function's declaration, by name.
pub(crate) fn docs(text: &str) -> std::collections::HashMap<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = std::collections::HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("//") || line.starts_with(' ') || !line.contains("sesphr_") {
            continue;
        }
        let Some(name) = line
            .split('(')
            .next()
            .and_then(|h| h.split([' ', '*']).next_back())
            .filter(|n| n.starts_with("sesphr_") && line.contains('('))
        else {
            continue;
        };
        let mut doc: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.starts_with("//"))
            .map(|l| l.trim_start_matches('/').trim())
            .collect();
        doc.reverse();
        out.insert(name.to_owned(), doc.join(" "));
    }
    out
}
