"""Streaming over file objects: seal and open in bounded memory, for the
owner and a granted user; a tampered or truncated stream is refused."""

import hashlib
import io
import pathlib
import subprocess
import sys

import pytest

import sesphr
from conftest import World


class Pattern:
    """A file-like source of `size` bytes that never holds more than one read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = hashlib.sha256(b"sesphr").digest() * (1 << 15)  # 1 MiB
        self.digest = hashlib.sha256()

    def read(self, n: int) -> bytes:
        n = min(n, self.left, len(self.block))
        self.left -= n
        out = self.block[:n]
        self.digest.update(out)
        return out


class Digest:
    """A file-like sink that keeps only a hash and a count."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, b: bytes) -> int:
        self.digest.update(b)
        self.count += len(b)
        return len(b)


def test_owner_and_delegatee_stream_what_was_sealed(world: World) -> None:
    srs, patient, doctor, _ = world
    src = Pattern(3 * (1 << 20) + 12345)
    sealed = io.BytesIO()
    head = sesphr.seal_stream(patient.portion_public_key("lab"), src, sealed)
    data = sealed.getvalue()
    assert data.startswith(head)
    # The same bytes as the in-memory form opens.
    assert len(patient.open_as_owner(data)) == 3 * (1 << 20) + 12345

    sink = Digest()
    assert patient.open_stream(io.BytesIO(data), sink) == sink.count == 3 * (1 << 20) + 12345
    assert sink.digest.digest() == src.digest.digest()

    rc = srs.reencrypt("dr-house", head)
    sink = Digest()
    doctor.open_stream_as_delegatee(rc, io.BytesIO(data), sink)
    assert sink.digest.digest() == src.digest.digest()

    # Another user's key, a flipped body byte, a cut body: refused.
    stranger = sesphr.KeyPair.generate()
    with pytest.raises(sesphr.CryptoError):
        stranger.open_stream_as_delegatee(rc, io.BytesIO(data), Digest())
    tampered = bytearray(data)
    tampered[len(head) + 100] ^= 1
    with pytest.raises(sesphr.CryptoError) as e:
        patient.open_stream(io.BytesIO(bytes(tampered)), Digest())
    assert e.value.kind == "decryption_failed"
    with pytest.raises(sesphr.CryptoError):
        patient.open_stream(io.BytesIO(data[: len(data) - 17]), Digest())
    # Not even a header.
    with pytest.raises(sesphr.FormatError):
        patient.open_stream(io.BytesIO(head[:20]), Digest())


def test_a_source_or_sink_that_fails_raises_its_own_error(world: World) -> None:
    _, patient, _, _ = world

    class Broken:
        def read(self, n: int) -> bytes:
            raise OSError("disk gone")

    with pytest.raises(OSError):
        sesphr.seal_stream(patient.portion_public_key("lab"), Broken(), io.BytesIO())

    class Full:
        def write(self, b: bytes) -> int:
            raise OSError("no space")

    with pytest.raises(OSError):
        sesphr.seal_stream(patient.portion_public_key("lab"), io.BytesIO(b"x"), Full())


SCRIPT = """
import hashlib, resource, sys
import sesphr
sys.path.insert(0, sys.argv[2])
from test_stream import Digest, Pattern
size = 200 * (1 << 20)
patient = sesphr.PatientKeys.generate("patient-big")
src = Pattern(size)
with open(sys.argv[1], "wb") as out:
    sesphr.seal_stream(patient.portion_public_key("imaging"), src, out)
sink = Digest()
with open(sys.argv[1], "rb") as f:
    assert patient.open_stream(f, sink) == size
assert sink.digest.digest() == src.digest.digest()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_200_mb_stream_in_bounded_memory(tmp_path: pathlib.Path) -> None:
    """200 MB sealed to a file and opened from it in a fresh interpreter,
    whose peak resident size stays far below the data's."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "big.sealed"), str(pathlib.Path(__file__).parent)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak_kib = int(out.stdout.strip().splitlines()[-1])
    assert (tmp_path / "big.sealed").stat().st_size > 200 * (1 << 20)
    assert peak_kib < 64 * 1024, f"peak RSS {peak_kib} KiB"
