"""Threshold re-encryption through the bindings: a key split 2 of 3 among
three SRS nodes; the reader opens from any two valid answers, names a node
that lies, and gets nothing from one."""

import io

import pytest

import sesphr


def test_two_of_three_nodes_with_a_liar() -> None:
    patient = sesphr.PatientKeys.generate("patient-t")
    doctor = sesphr.KeyPair.generate()
    nodes = [sesphr.Srs.in_memory() for _ in range(3)]
    for n in nodes:
        n.register_patient(patient.registration([("lab", 0)]))
        n.register_user("dr-t", "doctor", doctor.public_key, doctor.prove_possession("dr-t"))
    rekey = sesphr.ReKey.generate(patient, "lab", doctor.public_key)
    commitments, shares = rekey.split(2, 3)
    assert [s.index for s in shares] == [1, 2, 3]
    assert all(s.commitments() == commitments for s in shares)
    grant = patient.sign_share_grant("lab", 0, "dr-t", commitments)
    for n, s in zip(nodes, shares):
        n.grant_share(grant, sesphr.ReKeyShare.from_bytes(s.to_bytes()))
    sealed = sesphr.seal(patient.portion_public_key("lab"), b"ferritin 12")
    answers = [(i + 1, n.reencrypt("dr-t", sealed, proof=True)) for i, n in enumerate(nodes)]

    opener = sesphr.ThresholdOpener(doctor, grant, commitments, patient.consent_public_key())
    plain, used, bad = opener.open(sealed, answers[:2])
    assert (plain, used, bad) == (b"ferritin 12", [1, 2], [])
    # Node 1 lies (answers node 2's share as its own): named, and the other
    # two still open.
    lying = [(1, answers[1][1]), answers[1], answers[2]]
    plain, used, bad = opener.open(sealed, lying)
    assert plain == b"ferritin 12"
    assert 1 in bad and 1 not in used
    # One valid answer is not enough.
    with pytest.raises(sesphr.CryptoError) as e:
        opener.open(sealed, [answers[0], (2, b"garbage")])
    assert e.value.kind == "too_few_shares"
    # The same from a stream.
    out = io.BytesIO()
    written, used, bad = opener.open_stream(answers[1:], io.BytesIO(sealed), out)
    assert out.getvalue() == b"ferritin 12" and written == 11 and used == [2, 3]
    # A share used directly, as a node does.
    assert shares[0].reencrypt(sealed) != answers[0][1]  # fresh proof each time
    # Another user's opener is refused.
    with pytest.raises(sesphr.CryptoError):
        sesphr.ThresholdOpener(sesphr.KeyPair.generate(), grant, commitments, patient.consent_public_key())
    # Commitments the grant does not name are refused.
    other, _ = rekey.split(2, 3)
    with pytest.raises(sesphr.CryptoError):
        sesphr.ThresholdOpener(doctor, grant, other, patient.consent_public_key())
    assert repr(opener) == "ThresholdOpener(t=2, n=3)"
    assert "secret" not in repr(shares[0])
