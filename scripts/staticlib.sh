#!/usr/bin/env sh
# Makes a static library that defines only the C API's symbols globally:
# every object of IN (Rust's staticlib: the crate, std, the bundled SQLite)
# is linked into one relocatable object, every global symbol but sesphr_* is
# made local, and the object is archived as OUT. A host that links its own
# SQLite (or another copy of Rust's std) then gets neither clashes nor ours.
# Usage: scripts/staticlib.sh IN.a OUT.a
set -eu
in="${1:?usage: scripts/staticlib.sh IN.a OUT.a}"
out="${2:?usage: scripts/staticlib.sh IN.a OUT.a}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ld -r --whole-archive "$in" -o "$tmp/sesphr.o"
# Rust's std ships with LLVM bitcode embedded (.llvmbc) for LTO; an archiver
# with an older LLVM plugin chokes on it, and a C host has no use for it.
objcopy --wildcard --keep-global-symbol='sesphr_*' \
    --remove-section=.llvmbc --remove-section=.llvmcmd "$tmp/sesphr.o"
rm -f "$out"
ar rcs "$out" "$tmp/sesphr.o"
