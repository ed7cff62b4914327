"""Python overhead of the bindings: each operation timed through Python and
natively in Rust in the same process and run (`_native_seconds_per_op`),
reported as a ratio (targets: single operations <= 1.3x, a batch of 64
<= 1.1x). Best of several repeats, so a noisy machine shows its quiet moments.

    python bindings/python/bench.py            # after installing the wheel
"""

import sys
import timeit

import sesphr
from sesphr import _sesphr

REPEATS = 7


def best(f, number):
    return min(timeit.repeat(f, number=number, repeat=REPEATS)) / number


def main() -> int:
    srs = sesphr.Srs.in_memory()
    patient = sesphr.PatientKeys.generate("patient-bench")
    srs.register_patient(patient.registration([("lab", 0)]))
    doctor = sesphr.KeyPair.generate()
    srs.register_user("dr-bench", "doctor", doctor.public_key, doctor.prove_possession("dr-bench"))
    rekey = sesphr.ReKey.generate(patient, "lab", doctor.public_key)
    srs.grant(patient.sign_grant("lab", 0, "dr-bench", rekey), rekey)
    ppk = patient.portion_public_key("lab")
    records = [sesphr.seal(ppk, b"\x07" * 32) for _ in range(64)]
    header = sesphr.header(records[0])
    headers = [sesphr.header(r) for r in records]
    rc = srs.reencrypt("dr-bench", header)

    cases = [
        ("seal32", lambda: sesphr.seal(ppk, b"\x07" * 32, None, 1), 400, 1.3),
        ("reencrypt", lambda: srs.reencrypt("dr-bench", header), 200, 1.3),
        ("open_delegatee", lambda: doctor.open_as_delegatee(records[0], rc), 400, 1.3),
        ("batch64", lambda: srs.reencrypt_batch("dr-bench", headers), 10, 1.1),
    ]
    missed = 0
    print("| operation | Python | Rust | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    for name, f, number, target in cases:
        py = best(f, number)
        rust = min(_sesphr._native_seconds_per_op(name, number) for _ in range(REPEATS))
        ratio = py / rust
        ok = ratio <= target
        missed += not ok
        print(f"| {name} | {py * 1e6:.1f} µs | {rust * 1e6:.1f} µs | {ratio:.2f}× | ≤ {target}× {'✓' if ok else '✗'} |")
    return 1 if missed and "--check" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
