#!/usr/bin/env bash
# A Rust crate that depends on sesphr builds no C artifacts: makes a tiny
# dependent crate (path dependency) in a temporary directory, builds it with
# sesphr's default features and with `default-features = false`, and checks
#  - no libsesphr.so / libsesphr.a appears in its target directory;
#  - without default features nothing compiles C (`cc` is not in the build
#    graph: no bundled SQLite) and the core still seals and opens.
# Prints the build time and target size of each.
# Usage: scripts/check_dependent.sh [TARGET-DIR-FOR-THE-DEPENDENT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target="${1:-$work/target}"

make_crate() { # name, dependency line
  mkdir -p "$work/$1/src"
  # Our lock file: the same dependency versions as sesphr is tested with.
  cp "$root/Cargo.lock" "$work/$1/Cargo.lock"
  cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
$2
TOML
  cat >"$work/$1/src/main.rs" <<'RS'
use sesphr::{Identity, KeyPair, PatientKeys, PortionLabel, ReKey, RecordId, SealedPortion};

fn main() -> Result<(), sesphr::Error> {
    let patient = PatientKeys::generate(Identity::new("patient-1")?);
    let lab = patient.portion_secret(&PortionLabel::new("lab")?, 0);
    let sealed = SealedPortion::seal(lab.public(), RecordId::random(), 1, b"HbA1c 5.4%")?;
    let doctor = KeyPair::generate();
    let rc = ReKey::generate(&lab, doctor.public()).reencrypt(sealed.header().verify()?)?;
    assert_eq!(sealed.open_as_delegatee(&doctor, &rc)?, b"HbA1c 5.4%");
    println!("dependent: sealed, re-encrypted and opened");
    Ok(())
}
RS
}

check() { # name
  local dir="$work/$1" t="$target/$1" start end
  rm -rf "$t"
  start=$(date +%s)
  (cd "$dir" && CARGO_TARGET_DIR="$t" cargo build --quiet)
  end=$(date +%s)
  (cd "$dir" && CARGO_TARGET_DIR="$t" cargo run --quiet)
  if find "$t" -name 'libsesphr.so*' -o -name 'libsesphr.a' | grep -q .; then
    echo "check_dependent: $1 built C artifacts of sesphr:" >&2
    find "$t" -name 'libsesphr.so*' -o -name 'libsesphr.a' >&2
    exit 1
  fi
  echo "$1: built in $((end - start)) s, target $(du -sh "$t" | cut -f1), no libsesphr.so/.a"
}

make_crate with-defaults "sesphr = { path = \"$root\" }"
make_crate core-only "sesphr = { path = \"$root\", default-features = false }"
check with-defaults
check core-only
if (cd "$work/core-only" && cargo tree -e normal,build --quiet) | grep -E '(^| )(cc|rusqlite|libsqlite3-sys) v'; then
  echo "check_dependent: the core-only build compiles C (above)" >&2
  exit 1
fi
echo "core-only: no C in its build graph"
