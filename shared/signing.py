"""Signed manifests: an HMAC-SHA256 over a manifest's canonical content, with a site key.

A sha256 in a manifest only proves a file matches the manifest; whoever can edit both can forge
both. With a key configured (`$MEDTRANS_SIGNING_KEY`, or `$MEDTRANS_SIGNING_KEY_FILE` naming a
file outside the run folder), every manifest carries a signature that `medtrans verify` and every
consuming stage check, so an edit without the key is detected. Without a key nothing is signed
and manifests are byte-identical to unsigned ones.
"""

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from medtrans.shared.hashing import canonical_json

KEY_ENV = "MEDTRANS_SIGNING_KEY"
KEY_FILE_ENV = "MEDTRANS_SIGNING_KEY_FILE"
ALGORITHM = "hmac-sha256"
FIELD = "signature"
HOW = (
    "create one with `python3 -c 'import secrets; print(secrets.token_hex(32))'` and keep it "
    "outside the run folder (a secrets store, or a file only the pipeline's user can read)"
)


class SigningKeyError(RuntimeError):
    """A signing key that is configured but unusable (unreadable, empty, inside the run)."""


def signing_key(run_root: Path | None = None) -> bytes | None:
    """The configured key, or None (nothing is signed). A key file inside `run_root` is refused:
    whoever can edit the run could then re-sign it."""
    text = os.environ.get(KEY_ENV, "")
    if text:
        return text.strip().encode()
    path_text = os.environ.get(KEY_FILE_ENV, "")
    if not path_text:
        return None
    path = Path(path_text).expanduser().resolve()
    if run_root is not None and path.is_relative_to(Path(run_root).resolve()):
        raise SigningKeyError(f"{path}: ${KEY_FILE_ENV} points inside the run folder; {HOW}")
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise SigningKeyError(f"{path}: unreadable signing key file ({err.strerror}); {HOW}") from None
    if not key:
        raise SigningKeyError(f"{path}: empty signing key file; {HOW}")
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of the key, so a reader knows which key a manifest needs."""
    return hashlib.sha256(b"medtrans-signing-key-id:" + key).hexdigest()[:12]


def _mac(content: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in content.items() if k != FIELD}
    return hmac.new(key, canonical_json(body).encode(), hashlib.sha256).hexdigest()


def sign(content: dict[str, Any], key: bytes) -> dict[str, str]:
    """The signature entry of a JSON-ready manifest (over everything but the signature)."""
    return {"algorithm": ALGORITHM, "key_id": key_id(key), "hmac": _mac(content, key)}


def check(content: dict[str, Any], key: bytes | None) -> str | None:
    """Why a parsed manifest's signature does not hold under `key` (None: it holds, or no key
    is configured and the manifest is unsigned)."""
    sig = content.get(FIELD)
    if key is None:
        return None
    if not isinstance(sig, dict):
        return f"not signed (a signing key is configured: ${KEY_ENV} / ${KEY_FILE_ENV})"
    if sig.get("algorithm") != ALGORITHM:
        return f"unknown signature algorithm {sig.get('algorithm')!r}"
    if sig.get("key_id") != key_id(key):
        return f"signed with another key (key id {sig.get('key_id')}, configured {key_id(key)})"
    if not hmac.compare_digest(str(sig.get("hmac", "")), _mac(content, key)):
        return "signature does not match its content (edited after it was written)"
    return None
