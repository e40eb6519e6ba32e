"""The pseudonymisation key: loading, generating, and deriving per-field sub-keys.

Key custody
-----------
One secret key (at least 32 random bytes) turns identifiers into tokens. It is
read from configuration (`ED_PSEUDO_KEY`, a Dagster `EnvVar`) and lives only in
the process that pseudonymises agency extracts. It is never written to either
DuckDB file, a log, MLflow, or Dagster metadata; only `key_fingerprint(key)`, a
keyed one-way digest of the key, may be recorded to say *which* key made a
table's tokens. Whoever holds the key can re-identify by enumeration (hash every
NHS number, every name with every date of birth), so in production it belongs
to the data controller's key custodian (an HSM or secret manager), not to the
analysts who use the shared warehouse.

Rotation
--------
Tokens are deterministic under one key and unrelated across keys. A new key
therefore means new tokens for every record and a full re-link: pseudonymise
all history again under the new key, rebuild the linked layer, and drop every
table made under the old key (the fingerprint tells them apart). Never mix
tokens from two keys in one table.

Accepted key formats (`load_key`)
---------------------------------
- `str`: hex (64 or more hex digits, an even number, an optional `hex:`
  prefix) or base64 (standard or URL-safe alphabet, padding optional, an
  optional `base64:` prefix) decoding to at least 32 bytes. Anything else is
  refused: text of hex digits only that is not a whole hex key (a digit lost
  in a copy), and unprefixed "base64" without capitals, small letters and
  digits all three (a passphrase is not a key).
- `bytes`: if they are ASCII text (as read from a key file), the key that text
  says, as for `str`, or an error; otherwise (binary) the bytes themselves,
  taken raw, when there are at least 32 of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

MIN_KEY_BYTES = 32
GENERATED_KEY_BYTES = 32
_DOMAIN = b"ed_pipeline.privacy/v1/"
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_B64_RE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


class InvalidKeyError(ValueError):
    """A pseudonymisation key that is missing, malformed or too short."""


def check_key(key: bytes) -> bytes:
    """Return `key` if it is bytes of at least MIN_KEY_BYTES; raise ValueError otherwise."""
    if not isinstance(key, (bytes, bytearray)):
        raise InvalidKeyError(f"the pseudonymisation key must be bytes (see load_key), not {type(key).__name__}")
    if len(key) < MIN_KEY_BYTES:
        raise InvalidKeyError(
            f"the pseudonymisation key is {len(key)} bytes; at least {MIN_KEY_BYTES} random bytes are required "
            "(generate one with ed_pipeline.privacy.generate_key_file)"
        )
    return bytes(key)


def _decode_text(text: str) -> bytes | None:
    text = text.strip()
    lowered = text.lower()
    if lowered.startswith("hex:"):
        return bytes.fromhex(text[4:].strip())
    if lowered.startswith("base64:"):
        return _b64(text[7:].strip())
    if _HEX_RE.fullmatch(text):
        # hex digits only is meant as hex: a key that lost a digit in a copy is refused, not read as base64
        # (which would give other bytes, so other tokens, and no error)
        if len(text) < 2 * MIN_KEY_BYTES or len(text) % 2:
            raise InvalidKeyError(f"the pseudonymisation key is {len(text)} hex digits: a hex key is an even "
                                  f"number of at least {2 * MIN_KEY_BYTES} (was it cut short when copied?)")
        return bytes.fromhex(text)
    if _B64_RE.fullmatch(text):
        if not (re.search("[A-Z]", text) and re.search("[a-z]", text) and re.search("[0-9]", text)):
            # random bytes in base64 all but always mix capitals, small letters and digits; words do not
            raise InvalidKeyError("the pseudonymisation key looks like a passphrase, not base64 of random bytes "
                                  "(a passphrase is not a key); if it is base64, write it as 'base64:<key>'")
        try:
            return _b64(text)
        except (binascii.Error, ValueError):
            return None
    return None


def _b64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    altchars = b"-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(padded, altchars=altchars, validate=True)


def load_key(value: str | bytes) -> bytes:
    """The key from configuration text or bytes; see the module docstring for the formats accepted."""
    if isinstance(value, str):
        try:
            decoded = _decode_text(value)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKeyError(f"the pseudonymisation key is neither valid hex nor base64: {exc}") from None
        if decoded is None:
            raise InvalidKeyError(
                "the pseudonymisation key must be hex (64+ hex digits) or base64 text decoding to at least "
                f"{MIN_KEY_BYTES} bytes"
            )
        return check_key(decoded)
    if isinstance(value, (bytes, bytearray)):
        try:
            text = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.strip() and text.strip().isprintable():
            # a key file of text holds a key written as text: never the text's own bytes taken as a key
            return load_key(text)
        return check_key(bytes(value))
    raise InvalidKeyError(f"the pseudonymisation key must be str or bytes, not {type(value).__name__}")


def load_key_file(path: Path | str) -> bytes:
    return load_key(Path(path).read_bytes())


def generate_key_file(path: Path | str, *, overwrite: bool = False) -> bytes:
    """Write a new random key (hex text, 32 bytes) to `path` with mode 0600 and return it.

    Refuses to replace an existing file unless `overwrite`: replacing a key
    silently would orphan every token made under it (see Rotation above).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(GENERATED_KEY_BYTES)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key.hex() + "\n").encode("ascii"))
    finally:
        os.close(fd)
    return key


def ensure_key_file(path: Path | str) -> bytes:
    """The key in `path`, generating it first (mode 0600) when the file does not exist: for the demo."""
    path = Path(path)
    if path.exists():
        return load_key_file(path)
    try:
        return generate_key_file(path)
    except FileExistsError:  # made by a concurrent caller in the meantime
        return load_key_file(path)


def derive_key(key: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose (a field's tokens, a field's Bloom filter): HMAC(key, domain || purpose)."""
    return hmac.digest(check_key(key), _DOMAIN + purpose.encode("utf-8"), "sha256")


def key_fingerprint(key: bytes) -> str:
    """A short, one-way label of the key (safe to record in metadata) to tell tables made under two keys apart."""
    return derive_key(key, "fingerprint")[:8].hex()


class Hmac:
    """HMAC-SHA256 under one key, fast for millions of short messages.

    The inner and outer SHA-256 states are keyed once and copied per message,
    which is the HMAC construction of RFC 2104 (tests check it against `hmac`)
    at about a third of the cost of `hmac.digest` per call.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()
