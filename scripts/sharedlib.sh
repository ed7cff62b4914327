#!/usr/bin/env sh
# Links libsesphr.so from Rust's staticlib with the symbol versions of
# ffi/sesphr.map: every sesphr_* function is exported under its version
# node (SESPHR_0.2, ...), nothing else is exported. Cargo cannot do this
# itself: rustc passes the linker its own, unnamed version script for a
# cdylib, and a second, named one is either refused (GNU ld) or overridden
# (lld). install.sh and the C tests use this library, not cargo's cdylib.
# Usage: scripts/sharedlib.sh IN.a OUT.so
set -eu
in="${1:?usage: scripts/sharedlib.sh IN.a OUT.so}"
out="${2:?usage: scripts/sharedlib.sh IN.a OUT.so}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# The native libraries are those `cargo rustc -- --print native-static-libs`
# names for the staticlib. Debug info is stripped as cargo strips a release
# cdylib's.
${CC:-cc} -shared -o "$out" \
    -Wl,-soname,libsesphr.so.0 \
    -Wl,--version-script="$root/ffi/sesphr.map" \
    -Wl,--gc-sections -Wl,-O1 -Wl,--strip-debug -Wl,-z,relro -Wl,-z,now \
    -Wl,--whole-archive "$in" -Wl,--no-whole-archive \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
