#!/usr/bin/env bash
# Runs every resource of the official FHIR R4 examples package
# (hl7.fhir.r4.examples 4.0.1 from the npm registry, CC0, 5,306 resources,
# 191 MB unpacked) through split, seal, open and reassembly
# (tests/fhir_seams.rs, the_whole_r4_examples_package_round_trips).
# Fetches the tarball from the npm registry once (checked against its
# SHA-256) and keeps it under the target directory. About 25 s on 2 cores
# once built; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${CARGO_TARGET_DIR:-$PWD/target}/r4-examples"
tgz="$dir/hl7.fhir.r4.examples-4.0.1.tgz"
sha256=dce87f1b5b9341867033f7d1f544fa1b5232503f6d62813887ac6b8a8b6cb682
if [ ! -f "$dir/package/Patient-example.json" ]; then
  mkdir -p "$dir"
  curl -sSfL --retry 3 -o "$tgz" \
    https://registry.npmjs.org/hl7.fhir.r4.examples/-/hl7.fhir.r4.examples-4.0.1.tgz
  echo "$sha256  $tgz" | sha256sum -c --quiet
  tar -xzf "$tgz" -C "$dir"
fi
SESPHR_R4_EXAMPLES="$dir/package" cargo test --features fhir --test fhir_seams \
  the_whole_r4_examples_package_round_trips -- --nocapture
