"""Each error kind reaches Python as its own exception, never a crash."""

import pathlib
import pytest

import sesphr
from conftest import World


def test_format_errors_name_their_kind() -> None:
    with pytest.raises(sesphr.FormatError) as e:
        sesphr.PatientKeys.from_bytes(b"not keys")
    assert e.value.kind in ("bad_magic", "invalid_length")
    with pytest.raises(sesphr.FormatError) as e:
        sesphr.PatientKeys.generate("")
    assert e.value.kind == "invalid_identity"
    with pytest.raises(sesphr.FormatError) as e:
        sesphr.KeyPair.from_secret_bytes(b"\x00" * 31)
    assert e.value.kind == "invalid_length"
    srs = sesphr.Srs.in_memory()
    user = sesphr.KeyPair.generate()
    with pytest.raises(sesphr.FormatError) as e:
        srs.register_user("u", "Doctor", user.public_key, user.prove_possession("u"))
    assert e.value.kind == "invalid_role"


def test_crypto_errors(world: World) -> None:
    srs, patient, doctor, sealed = world
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(sesphr.CryptoError) as e:
        patient.open_as_owner(bytes(tampered))
    assert e.value.kind == "decryption_failed"
    other = sesphr.KeyPair.generate()
    rc = srs.reencrypt("dr-house", sealed)
    with pytest.raises(sesphr.CryptoError):
        other.open_as_delegatee(sealed, rc)
    # A grant signed by another patient does not verify.
    mallory = sesphr.PatientKeys.generate("patient-0042")
    rekey = sesphr.ReKey.generate(mallory, "lab", other.public_key)
    with pytest.raises(sesphr.SesphrError):
        srs.grant(mallory.sign_grant("lab", 0, "dr-house", rekey), rekey)


def test_srs_errors_are_typed(world: World) -> None:
    srs, patient, _, sealed = world
    with pytest.raises(sesphr.DeniedError) as e:
        srs.reencrypt("nobody", sealed)
    assert e.value.reason == "not_registered"
    with pytest.raises(sesphr.SrsError) as again:
        srs.register_patient(patient.registration([("lab", 0)]))
    assert again.value.kind == "already_registered"
    with pytest.raises(sesphr.FormatError) as f:
        srs.reencrypt("dr-house", sealed, "sightseeing")
    assert f.value.kind == "malformed"
    # Everything derives from one base.
    assert issubclass(sesphr.DeniedError, sesphr.SrsError)
    assert issubclass(sesphr.StoreError, sesphr.SrsError)
    assert issubclass(sesphr.SrsError, sesphr.SesphrError)
    assert issubclass(sesphr.FormatError, sesphr.SesphrError)


def test_store_errors(tmp_path: pathlib.Path) -> None:
    key = sesphr.Srs.generate_storage_key()
    path = tmp_path / "srs.db"
    sesphr.Srs.open_sqlite(path, key).verify_audit()
    with pytest.raises(sesphr.StoreError):
        sesphr.Srs.open_sqlite(path, bytes(32))


def test_open_postgres_without_the_feature_says_so() -> None:
    """The CI wheel is built without `postgres`: the call exists, typed,
    and refuses with its own kind (a wheel built with `-F postgres` opens)."""
    with pytest.raises(sesphr.SrsError) as e:
        sesphr.Srs.open_postgres("host=/nonexistent", sesphr.Srs.generate_storage_key())
    assert e.value.kind == "unsupported"
    with pytest.raises(sesphr.FormatError):
        sesphr.Srs.open_postgres("host=/nonexistent", b"short")
