"""Every case of tests/vectors/sesphr-v1.txt, decoded and checked through the bindings."""

import pytest

import sesphr
from conftest import read_vectors

CASES = read_vectors("sesphr-v1.txt")


def test_there_are_cases() -> None:
    assert len(CASES) >= 3


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(name: str) -> None:
    v = CASES[name]

    def b(key: str) -> bytes:
        value = v[key]
        assert isinstance(value, bytes)
        return value

    def n(key: str) -> int:
        value = v[key]
        assert isinstance(value, int)
        return value

    # The key backups (text values are stored as hex of their ASCII).
    assert sesphr.PatientKeys.from_backup_text(b("patient_keys_text").decode()).to_bytes() == b(
        "patient_keys"
    )
    assert sesphr.KeyPair.from_backup(b("user_secret_backup")).public_key == b("user_public")
    assert sesphr.KeyPair.from_backup_text(b("user_secret_backup_text").decode()).public_key == b(
        "user_public"
    )
    # The share grant verifies, and makes the user's threshold opener of
    # the vector's commitments.
    sesphr.verify_grant(b("signed_share_grant"), b("consent_public"))
    opener = sesphr.ThresholdOpener(
        sesphr.KeyPair.from_secret_bytes(b("user_secret")),
        b("signed_share_grant"),
        b("share_commitments"),
        b("consent_public"),
    )
    assert repr(opener).startswith("ThresholdOpener(t=")

    patient = sesphr.PatientKeys.from_bytes(b("patient_keys"))
    assert patient.identity == b("patient_id").decode()
    assert patient.to_bytes() == b("patient_keys")
    label = b("label").decode()
    assert patient.portion_public_key(label, n("epoch")) == b("portion_public_key")
    assert patient.consent_public_key() == b("consent_public")
    user = sesphr.KeyPair.from_secret_bytes(b("user_secret"))
    assert user.public_key == b("user_public")
    # The sealed portion opens to the plaintext for the owner…
    assert patient.open_as_owner(b("sealed_portion")) == b("plaintext")
    # …and the re-encryption key reproduces the vector's re-capsule, which
    # opens for the user.
    rekey = sesphr.ReKey.from_bytes(b("rekey"))
    assert rekey.to_bytes() == b("rekey")
    assert rekey.reencrypt(b("header")) == b("recapsule")
    assert user.open_as_delegatee(b("sealed_portion"), b("recapsule")) == b("plaintext")
    assert user.open_as_delegatee(b("sealed_portion"), b("recapsule_with_proof")) == b("plaintext")
    # The signed objects verify under the patient's consent key (the vectors'
    # grants are dated 2024: an SRS would refuse them as too old to file),
    # and the user's proof registers them at an SRS.
    assert sesphr.verify_registration(b("registration")) == b("patient_id").decode()
    sesphr.verify_grant(b("signed_grant"), b("consent_public"))
    sesphr.verify_revocation(b("signed_revocation"), b("consent_public"))
    other = sesphr.PatientKeys.generate(b("patient_id").decode()).consent_public_key()
    with pytest.raises(sesphr.CryptoError):
        sesphr.verify_grant(b("signed_grant"), other)
    srs = sesphr.Srs.in_memory()
    srs.register_patient(b("registration"))
    srs.register_user(b("user_id").decode(), "doctor", b("user_public"), b("user_key_proof"))
