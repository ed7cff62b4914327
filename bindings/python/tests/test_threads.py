"""One Srs shared by 8 Python threads: the GIL is released around every call."""

import threading

import sesphr
from conftest import World


def test_eight_threads_reencrypt_through_one_srs(world: World) -> None:
    srs, patient, doctor, _ = world
    records = [sesphr.seal(patient.portion_public_key("lab"), b"record %d" % i) for i in range(8)]
    errors: list[Exception] = []
    opened: list[object] = [None] * 8

    def work(i: int) -> None:
        try:
            for _ in range(10):
                rc = srs.reencrypt("dr-house", records[i])
                opened[i] = doctor.open_as_delegatee(records[i], rc)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert opened == [b"record %d" % i for i in range(8)]
    assert len(srs.disclosures("patient-0042")) == 80
