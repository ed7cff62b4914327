#!/usr/bin/env sh
# Builds the release library and installs it under PREFIX:
#   PREFIX/lib/libsesphr.so.VERSION (+ libsesphr.so.0, libsesphr.so links;
#     every sesphr_* symbol under its version node, ffi/sesphr.map)
#   PREFIX/lib/libsesphr.a (only sesphr_* symbols global)
#   PREFIX/include/sesphr.h
#   PREFIX/share/sesphr/sesphr.supp (valgrind suppressions for the thread pool)
#   PREFIX/lib/pkgconfig/sesphr.pc
#   PREFIX/lib/cmake/sesphr/sesphrConfig.cmake (+ its version file):
#     find_package(sesphr CONFIG), targets sesphr::sesphr, sesphr::sesphr_static
# Usage: scripts/install.sh PREFIX      e.g. scripts/install.sh /usr/local
# SESPHR_FEATURES=postgres scripts/install.sh PREFIX adds the PostgreSQL
# store (sesphr_srs_open_postgres; pure Rust, no libpq needed).
set -eu
prefix="${1:?usage: scripts/install.sh PREFIX}"
cd "$(dirname "$0")/.."
cargo build --release --lib --quiet -p sesphr-ffi ${SESPHR_FEATURES:+--features "$SESPHR_FEATURES"}
target="${CARGO_TARGET_DIR:-target}/release"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)  # [workspace.package]
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
# Linked from the staticlib with its symbol versions (see scripts/sharedlib.sh).
scripts/sharedlib.sh "$target/libsesphr.a" "$prefix/lib/libsesphr.so.$version"
chmod 0755 "$prefix/lib/libsesphr.so.$version"
ln -sf "libsesphr.so.$version" "$prefix/lib/libsesphr.so.0"
ln -sf "libsesphr.so.0" "$prefix/lib/libsesphr.so"
# Only sesphr_* is global in the installed archive (see scripts/staticlib.sh).
scripts/staticlib.sh "$target/libsesphr.a" "$prefix/lib/libsesphr.a"
chmod 0644 "$prefix/lib/libsesphr.a"
install -m 0644 include/sesphr.h "$prefix/include/sesphr.h"
mkdir -p "$prefix/share/sesphr"
install -m 0644 scripts/sesphr.supp "$prefix/share/sesphr/sesphr.supp"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" scripts/sesphr.pc.in >"$prefix/lib/pkgconfig/sesphr.pc"
mkdir -p "$prefix/lib/cmake/sesphr"
major_minor=$(echo "$version" | cut -d. -f1,2)
for f in sesphrConfig sesphrConfigVersion; do
  sed -e "s|@VERSION@|$version|g" -e "s|@VERSION_MAJOR_MINOR@|$major_minor|g" \
    "scripts/$f.cmake.in" >"$prefix/lib/cmake/sesphr/$f.cmake"
done
echo "installed sesphr $version under $prefix"
