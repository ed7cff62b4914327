#!/usr/bin/env sh
# Compares the symbols of a built libsesphr.so (names, versions, soname,
# needed libraries) with the committed baseline abi/libsesphr.abi, using
# libabigail (Debian: abigail-tools). Any difference fails: an added
# function is a new version node and a baseline update, a removed or
# re-versioned one is a break (README, "ABI policy"). The header's side
# (prototypes, constants, structure layouts) is abi/layout.txt, checked by
# `cargo test -p sesphr-ffi --test c_api`.
# Usage: scripts/abi_check.sh LIB.so            compare
#        scripts/abi_check.sh --update LIB.so   rewrite the baseline
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
lib="${1:?usage: scripts/abi_check.sh [--update] LIB.so}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
abidw --no-corpus-path --out-file "$tmp/built.abi" "$lib"
if [ "$update" = 1 ]; then
  cp "$tmp/built.abi" "$root/abi/libsesphr.abi"
  echo "abi/libsesphr.abi updated from $lib"
  exit 0
fi
if abidiff "$root/abi/libsesphr.abi" "$tmp/built.abi"; then
  echo "ABI of $lib matches abi/libsesphr.abi"
else
  status=$?
  echo "ABI of $lib differs from abi/libsesphr.abi (abidiff status $status)." >&2
  echo "If the change is meant, run scripts/abi_check.sh --update $lib and commit it." >&2
  exit 1
fi
