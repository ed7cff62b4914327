"""sesphr: secure sharing of personal health records on untrusted storage.

The patient's keys and consent (:class:`PatientKeys`), users' keys
(:class:`KeyPair`), sealing (:func:`seal`) and opening, re-encryption keys
(:class:`ReKey`) and the re-encryption server (:class:`Srs`). Bytes in,
bytes out; identities and labels are ``str``. Errors derive from
:class:`SesphrError` and carry ``kind`` (and ``reason`` for a denial).
"""

from ._sesphr import (
    CryptoError,
    DeniedError,
    FormatError,
    KeyPair,
    PatientKeys,
    ReKey,
    SesphrError,
    Srs,
    SrsError,
    StoreError,
    __version__,
    header,
    seal,
    verify_checkpoint,
    verify_grant,
    verify_receipt,
    verify_registration,
    verify_revocation,
)

__all__ = [
    "CryptoError",
    "DeniedError",
    "FormatError",
    "KeyPair",
    "PatientKeys",
    "ReKey",
    "SesphrError",
    "Srs",
    "SrsError",
    "StoreError",
    "__version__",
    "header",
    "seal",
    "verify_checkpoint",
    "verify_grant",
    "verify_receipt",
    "verify_registration",
    "verify_revocation",
]
