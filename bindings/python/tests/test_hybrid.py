"""Hybrid (post-quantum) portions through the bindings: the SRS's ML-KEM
key, a hybrid portion key, a hybrid user, the SRS's re-wrap, rotation."""

import io

import pytest

import sesphr
from conftest import World


def test_hybrid_story(world: World) -> None:
    srs, patient, _, _ = world
    srs_key = srs.pq_public_key()
    key = patient.hybrid_portion_public_key("lab", srs_key)
    sealed = sesphr.seal(key, b"HbA1c 5.4%")
    assert len(sesphr.header(sealed)) > 2400  # the ML-KEM stanzas
    assert patient.open_as_owner(sealed) == b"HbA1c 5.4%"

    cameron = sesphr.KeyPair.generate_hybrid()
    assert cameron.pq_public_key is not None and len(cameron.pq_public_key) == 1184
    srs.register_user("dr-cameron", "doctor", cameron.public_key, cameron.prove_possession("dr-cameron"))
    rekey = sesphr.ReKey.generate(patient, "lab", cameron.public_key)
    srs.grant(patient.sign_grant("lab", 0, "dr-cameron", rekey), rekey)
    # No ML-KEM key registered: denied.
    with pytest.raises(sesphr.DeniedError) as denied:
        srs.reencrypt("dr-cameron", sealed)
    assert denied.value.reason == "no_pq_key"
    srs.register_pq_key("dr-cameron", cameron.pq_public_key)
    rc = srs.reencrypt("dr-cameron", sealed)
    assert cameron.open_as_delegatee(sealed, rc) == b"HbA1c 5.4%"

    # Restored from both secrets it reads; the ristretto255 half alone does not.
    seed = cameron.pq_seed()
    assert seed is not None
    restored = sesphr.KeyPair.from_secret_bytes(cameron.secret_bytes(), seed)
    assert restored.open_as_delegatee(sealed, rc) == b"HbA1c 5.4%"
    classical = sesphr.KeyPair.from_secret_bytes(cameron.secret_bytes())
    assert classical.pq_public_key is None and classical.pq_seed() is None
    with pytest.raises(sesphr.CryptoError) as missing:
        classical.open_as_delegatee(sealed, rc)
    assert missing.value.kind == "pq_key_missing"
    with pytest.raises(sesphr.FormatError):
        sesphr.KeyPair.from_secret_bytes(cameron.secret_bytes(), seed[:63])

    # Streamed sealing to the hybrid key.
    dst = io.BytesIO()
    sesphr.seal_stream(key, io.BytesIO(b"LDL 96" * 30000), dst)
    out = io.BytesIO()
    patient.open_stream(io.BytesIO(dst.getvalue()), out)
    assert out.getvalue() == b"LDL 96" * 30000

    # A grant naming the user's ML-KEM key: another key registered is refused.
    house = sesphr.KeyPair.generate_hybrid()
    srs.register_user("dr-wilson", "doctor", house.public_key, house.prove_possession("dr-wilson"))
    rk = sesphr.ReKey.generate(patient, "lab", house.public_key)
    assert house.pq_public_key is not None
    srs.grant(patient.sign_grant("lab", 0, "dr-wilson", rk, user_pq_key=house.pq_public_key), rk)
    other = sesphr.KeyPair.generate_hybrid().pq_public_key
    assert other is not None
    srs.register_pq_key("dr-wilson", other)
    with pytest.raises(sesphr.DeniedError) as not_granted:
        srs.reencrypt("dr-wilson", sealed)
    assert not_granted.value.reason == "pq_key_not_granted"
    srs.register_pq_key("dr-wilson", house.pq_public_key)
    assert house.open_as_delegatee(sealed, srs.reencrypt("dr-wilson", sealed)) == b"HbA1c 5.4%"

    # Rotation: new headers go to the new key; the old one still serves.
    rotated = srs.rotate_pq_key()
    assert rotated != srs_key and srs.pq_public_key() == rotated
    newer = sesphr.seal(patient.hybrid_portion_public_key("lab", rotated), b"eGFR 58")
    assert cameron.open_as_delegatee(newer, srs.reencrypt("dr-cameron", newer)) == b"eGFR 58"
    assert cameron.open_as_delegatee(sealed, srs.reencrypt("dr-cameron", sealed)) == b"HbA1c 5.4%"


def test_hybrid_split_among_three_nodes_with_a_liar() -> None:
    """σ split 2 of 3 among three SRS nodes' ML-KEM keys: two honest nodes
    open; a node that answers with another node's share is named."""
    patient = sesphr.PatientKeys.generate("patient-pq")
    doctor = sesphr.KeyPair.generate_hybrid()
    assert doctor.pq_public_key is not None
    nodes = [sesphr.Srs.in_memory() for _ in range(3)]
    for n in nodes:
        n.register_patient(patient.registration([("lab", 0)]))
        n.register_user("dr-pq", "doctor", doctor.public_key, doctor.prove_possession("dr-pq"))
        n.register_pq_key("dr-pq", doctor.pq_public_key)
    node_keys = [n.pq_public_key() for n in nodes]
    assert len(set(node_keys)) == 3  # each node its own key
    with pytest.raises(sesphr.CryptoError) as bad:
        patient.hybrid_portion_public_key_split("lab", 4, node_keys)
    assert bad.value.kind == "invalid_threshold"
    key = patient.hybrid_portion_public_key_split("lab", 2, node_keys)
    sealed = sesphr.seal(key, b"ferritin 12")
    assert patient.open_as_owner(sealed) == b"ferritin 12"
    commitments, shares = sesphr.ReKey.generate(patient, "lab", doctor.public_key).split(2, 3)
    grant = patient.sign_share_grant("lab", 0, "dr-pq", commitments)
    for n, s in zip(nodes, shares):
        n.grant_share(grant, s)
    answers = [(i + 1, n.reencrypt("dr-pq", sealed, proof=True)) for i, n in enumerate(nodes)]
    opener = sesphr.ThresholdOpener(doctor, grant, commitments, patient.consent_public_key())
    plain, used, bad_nodes = opener.open(sealed, answers[1:])
    assert (plain, used, bad_nodes) == (b"ferritin 12", [2, 3], [])
    # Node 1 answers with node 2's share of σ in its re-capsule.
    share_len = 167  # a re-capsule share up to X_e
    liar = bytearray(answers[0][1])
    liar[share_len : share_len + 1136] = answers[1][1][share_len : share_len + 1136]
    plain, used, bad_nodes = opener.open(sealed, [(1, bytes(liar)), answers[1], answers[2]])
    assert plain == b"ferritin 12" and bad_nodes == [1] and 1 not in used
