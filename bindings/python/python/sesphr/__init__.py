"""sesphr: secure sharing of personal health records on untrusted storage.

The patient's keys and consent (:class:`PatientKeys`), users' keys
(:class:`KeyPair`), sealing (:func:`seal`, :func:`seal_stream` over file
objects) and opening, re-encryption keys (:class:`ReKey`, split among
threshold nodes as :class:`ReKeyShare`, opened with
:class:`ThresholdOpener`) and the re-encryption server (:class:`Srs`). Bytes in,
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
    ReKeyShare,
    SesphrError,
    Srs,
    SrsError,
    StoreError,
    ThresholdOpener,
    __version__,
    header,
    seal,
    seal_stream,
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
    "ReKeyShare",
    "SesphrError",
    "Srs",
    "SrsError",
    "StoreError",
    "ThresholdOpener",
    "__version__",
    "header",
    "seal",
    "seal_stream",
    "verify_checkpoint",
    "verify_grant",
    "verify_receipt",
    "verify_registration",
    "verify_revocation",
]
