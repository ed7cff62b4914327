"""The README's story through the bindings: consent, sharing, revocation, audit."""

import json
import pathlib

import pytest

import sesphr
from conftest import World


def test_share_read_revoke_and_account(world: World) -> None:
    srs, patient, doctor, sealed = world
    # The owner opens; the doctor opens what the SRS re-encrypts for them.
    assert patient.open_as_owner(sealed) == b"HbA1c 5.4%"
    rc = srs.reencrypt("dr-house", sealed, "treatment")
    assert doctor.open_as_delegatee(sealed, rc) == b"HbA1c 5.4%"
    # The header alone is enough for the SRS.
    head = sesphr.header(sealed)
    assert sealed.startswith(head) and len(head) < len(sealed)
    header_rc = srs.reencrypt("dr-house", head)
    assert doctor.open_as_delegatee(sealed, header_rc) == b"HbA1c 5.4%"

    # The patient revokes; the receipt verifies under the SRS's key.
    receipt = srs.revoke(patient.sign_revocation("lab", "dr-house"))
    sesphr.verify_receipt(receipt, srs.verifying_key())
    with pytest.raises(sesphr.DeniedError) as denied:
        srs.reencrypt("dr-house", sealed)
    assert denied.value.reason == "revoked"
    assert denied.value.kind == "denied"

    # Every disclosure is accounted for, and the log verifies.
    listed = srs.disclosures("patient-0042")
    assert [d["user"] for d in listed] == ["dr-house", "dr-house"]
    assert all(d["label"] == "lab" and d["purpose"] == "treatment" for d in listed)
    assert srs.verify_audit() > 0
    srs.verify_consent()
    lines = srs.export_audit_jsonl().splitlines()
    assert len(lines) == srs.verify_audit()
    assert all(isinstance(json.loads(line), dict) for line in lines)
    sesphr.verify_checkpoint(srs.checkpoint(), srs.verifying_key())


def test_batch_answers_each_header(world: World) -> None:
    srs, patient, doctor, sealed = world
    other = sesphr.seal(patient.portion_public_key("lab"), b"LDL 96")
    answers = srs.reencrypt_batch("dr-house", [sealed, other])
    recapsules = [a for a in answers if isinstance(a, bytes)]
    assert len(recapsules) == 2
    assert [doctor.open_as_delegatee(s, a) for s, a in zip([sealed, other], recapsules)] == [
        b"HbA1c 5.4%",
        b"LDL 96",
    ]
    srs.revoke(patient.sign_revocation("lab", "dr-house"))
    answers = srs.reencrypt_batch("dr-house", [sealed])
    assert isinstance(answers[0], sesphr.DeniedError) and answers[0].reason == "revoked"


def test_backward_access_and_since(world: World) -> None:
    srs, patient, _, sealed = world
    researcher = sesphr.KeyPair.generate()
    srs.register_user("res-1", "researcher", researcher.public_key, researcher.prove_possession("res-1"))
    rekey = sesphr.ReKey.generate(patient, "lab", researcher.public_key)
    srs.grant(patient.sign_grant("lab", 0, "res-1", rekey, since=4_000_000_000), rekey)
    with pytest.raises(sesphr.DeniedError) as e:
        srs.reencrypt("res-1", sealed, "research")
    assert e.value.reason == "out_of_scope"


def test_keys_round_trip_and_hide_secrets() -> None:
    patient = sesphr.PatientKeys.generate("patient-7")
    again = sesphr.PatientKeys.from_bytes(patient.to_bytes())
    assert again.identity == "patient-7"
    assert again.portion_public_key("lab", 3) == patient.portion_public_key("lab", 3)
    user = sesphr.KeyPair.generate()
    assert sesphr.KeyPair.from_secret_bytes(user.secret_bytes()).public_key == user.public_key
    assert user.secret_bytes().hex() not in repr(user)
    assert patient.to_bytes().hex() not in repr(patient)
    rekey = sesphr.ReKey.generate(patient, "lab", user.public_key)
    assert sesphr.ReKey.from_bytes(rekey.to_bytes()).to_bytes() == rekey.to_bytes()


def test_key_backups_round_trip_and_refuse_corruption() -> None:
    patient = sesphr.PatientKeys.generate("patient-8")
    paper = patient.to_backup_text()
    assert paper.startswith("sesphr-patient1")
    again = sesphr.PatientKeys.from_backup_text(" ".join(paper[i : i + 4] for i in range(0, len(paper), 4)))
    assert again.portion_public_key("lab", 0) == patient.portion_public_key("lab", 0)
    typo = paper[:-1] + ("q" if paper[-1] != "q" else "p")
    with pytest.raises(sesphr.FormatError) as e:
        sesphr.PatientKeys.from_backup_text(typo)
    assert e.value.kind == "bad_checksum"
    user = sesphr.KeyPair.generate()
    backup = user.to_backup()
    assert sesphr.KeyPair.from_backup(backup).public_key == user.public_key
    assert sesphr.KeyPair.from_backup_text(user.to_backup_text()).public_key == user.public_key
    for i in range(len(backup) * 8):
        flipped = bytearray(backup)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(sesphr.FormatError):
            sesphr.KeyPair.from_backup(bytes(flipped))


def test_sqlite_store_survives_reopen(tmp_path: pathlib.Path, world: World) -> None:
    key = sesphr.Srs.generate_storage_key()
    path = tmp_path / "srs.db"
    srs = sesphr.Srs.open_sqlite(path, key)
    patient = sesphr.PatientKeys.generate("patient-9")
    srs.register_patient(patient.registration([("lab", 0)]))
    del srs
    reopened = sesphr.Srs.open_sqlite(str(path), key)
    assert reopened.verify_audit() >= 1
    with pytest.raises(sesphr.SrsError):
        reopened.register_patient(patient.registration([("lab", 0)]))


def test_a_request_answered_by_a_grant_and_one_refused(world: World) -> None:
    srs, patient, _, sealed = world
    nurse = sesphr.KeyPair.generate()
    srs.register_user("nurse-1", "nurse", nurse.public_key, nurse.prove_possession("nurse-1"))
    asked = srs.request_access("nurse-1", "patient-0042", "lab", "treatment", "ward round")
    again = srs.request_access("nurse-1", "patient-0042", "lab", "treatment", "second look")
    pending = srs.pending_requests("patient-0042")
    # Oldest first; within one second of the SRS's clock, in id order.
    assert sorted(p["id"] for p in pending) == sorted([asked, again])  # type: ignore[type-var]
    first = next(p for p in pending if p["id"] == asked)
    assert first["justification"] == "ward round" and first["user"] == "nurse-1"
    # The patient grants the first, naming it, and refuses the second.
    rekey = sesphr.ReKey.generate(patient, "lab", nurse.public_key)
    srs.grant(patient.sign_grant("lab", 0, "nurse-1", rekey, request=asked), rekey)
    srs.refuse_request(patient.sign_refusal(again, "one grant is enough"))
    assert srs.pending_requests("patient-0042") == []
    assert nurse.open_as_delegatee(sealed, srs.reencrypt("nurse-1", sealed)) == b"HbA1c 5.4%"
    # Answered requests cannot be answered again; a stranger's refusal is refused.
    with pytest.raises(sesphr.SrsError) as e:
        srs.refuse_request(patient.sign_refusal(again, "twice"))
    assert e.value.kind == "request_answered"
    other = sesphr.PatientKeys.generate("patient-0042")
    third = srs.request_access("nurse-1", "patient-0042", "lab", "treatment", "third")
    with pytest.raises(sesphr.SesphrError):
        srs.refuse_request(other.sign_refusal(third, "not mine"))
    with pytest.raises(sesphr.FormatError):
        patient.sign_refusal(b"short", "x")
