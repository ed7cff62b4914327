import pathlib
from typing import Dict, Tuple, Union

import pytest

import sesphr

World = Tuple[sesphr.Srs, sesphr.PatientKeys, sesphr.KeyPair, bytes]
Vector = Dict[str, Union[bytes, int]]

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def world() -> World:
    """An SRS with a patient (portion `lab`) and a doctor holding a grant."""
    srs = sesphr.Srs.in_memory()
    patient = sesphr.PatientKeys.generate("patient-0042")
    srs.register_patient(patient.registration([("lab", 0)]))
    doctor = sesphr.KeyPair.generate()
    srs.register_user("dr-house", "doctor", doctor.public_key, doctor.prove_possession("dr-house"))
    rekey = sesphr.ReKey.generate(patient, "lab", doctor.public_key)
    srs.grant(patient.sign_grant("lab", 0, "dr-house", rekey), rekey)
    sealed = sesphr.seal(patient.portion_public_key("lab"), b"HbA1c 5.4%")
    return srs, patient, doctor, sealed


def read_vectors(name: str) -> Dict[str, Dict[str, Union[bytes, int]]]:
    """The cases of a vector file: {case: {key: value}} (hex decoded, except numbers)."""
    cases: Dict[str, Dict[str, Union[bytes, int]]] = {}
    case: Dict[str, Union[bytes, int]] = {}
    for line in (ROOT / "tests" / "vectors" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[case "):
            case = cases.setdefault(line[len("[case ") : -1], {})
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        case[key] = int(value) if key in ("epoch", "created_at") else bytes.fromhex(value)
    return cases
