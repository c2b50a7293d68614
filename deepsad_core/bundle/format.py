"""The bundle's format, shared by the writer (:mod:`deepsad_core.bundle.write`) and the reader
(:mod:`deepsad_core.bundle.read`): file names, version, and the signature over the checksums.

``SHA256SUMS`` lists a checksum for every other file: it catches corruption, not tampering, since
whoever changes a file can recompute it. ``SIGNATURE`` (optional) is an HMAC-SHA256 of
``SHA256SUMS`` under a secret key: only a holder of the key can make one that verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from deepsad_core.exceptions import DataError

__all__ = [
    "BUNDLE_FILES",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MANIFEST_FILE",
    "ONNX_FILE",
    "SIGNATURE_FILE",
    "SUMS_FILE",
    "TORCHSCRIPT_FILE",
    "read_key",
    "sign",
    "signature_matches",
]

BUNDLE_FORMAT, BUNDLE_VERSION = "deepsad-bundle", 1
ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE = "model.onnx", "model.torchscript.pt", "manifest.json"
SUMS_FILE, SIGNATURE_FILE = "SHA256SUMS", "SIGNATURE"
BUNDLE_FILES = (ONNX_FILE, TORCHSCRIPT_FILE, MANIFEST_FILE, SUMS_FILE, SIGNATURE_FILE)


def read_key(path: str | os.PathLike) -> bytes:
    """A signing key from a file (its bytes, surrounding whitespace removed); refuses an empty one."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as e:
        raise DataError(f"cannot read the key file {Path(path).name}: {e.strerror}") from None
    if len(key) < 16:
        raise DataError(
            f"the key file {Path(path).name} holds {len(key)} bytes; use at least 16 (e.g. openssl rand -hex 32)"
        )
    return key


def sign(sums: bytes, key: bytes) -> str:
    """The hex HMAC-SHA256 of the checksum file's bytes."""
    return hmac.new(key, sums, hashlib.sha256).hexdigest()


def signature_matches(sums: bytes, signature: bytes, key: bytes) -> bool:
    return hmac.compare_digest(sign(sums, key), signature.decode("ascii", "replace").strip())
