from __future__ import annotations

import base64
import hashlib
import hmac
import stat

import pytest

from ed_pipeline.privacy import (
    MIN_KEY_BYTES,
    InvalidKeyError,
    derive_key,
    ensure_key_file,
    generate_key_file,
    key_fingerprint,
    load_key,
    load_key_file,
    pseudonymise_people,
)
from ed_pipeline.privacy.keys import Hmac
from ed_pipeline_tests.privacy.records import KEY, records


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        # RFC 4231, test case 1
        (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        # RFC 4231, test case 2
        (b"Jefe", b"what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        # RFC 4231, test case 6 (a key longer than the block size)
        (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ],
)
def test_hmac_matches_rfc_4231(key: bytes, data: bytes, expected: str) -> None:
    assert Hmac(key).digest(data).hex() == expected
    assert hmac.new(key, data, hashlib.sha256).hexdigest() == expected


def test_short_key_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"at least 32"):
        pseudonymise_people(records(), b"k" * 31)
    with pytest.raises(InvalidKeyError, match=r"at least 32"):
        load_key(b"too short")
    with pytest.raises(ValueError, match=r"hex|base64"):
        load_key("correct horse battery staple")


def test_load_key_accepts_hex_base64_and_raw() -> None:
    raw = bytes(range(200, 232))
    assert load_key(raw.hex()) == raw
    assert load_key("hex:" + raw.hex().upper()) == raw
    assert load_key(base64.b64encode(raw).decode()) == raw
    assert load_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert load_key(raw) == raw
    assert load_key((raw.hex() + "\n").encode()) == raw  # the text of a key file
    with pytest.raises(ValueError):
        load_key(raw[:16].hex())  # 16 bytes: too short


def test_a_key_damaged_or_guessable_is_refused_not_read_another_way(tmp_path) -> None:
    """A hex key that lost digits in a copy is not read as base64 (other bytes, other tokens, no error); a
    passphrase is not taken for base64; a key file's text is never taken as the key's own bytes."""
    raw = bytes(range(200, 232))
    for cut in (raw.hex()[:-2], raw.hex()[:-1], raw[:16].hex() + "\n"):
        with pytest.raises(InvalidKeyError, match="hex digits"):
            load_key(cut)
    with pytest.raises(InvalidKeyError, match="passphrase"):
        load_key("correcthorsebatterystaplecorrecthorsebatterystaple")
    assert load_key("base64:" + base64.b64encode(b"\x00" * 32).decode()) == b"\x00" * 32  # "AAAA...": prefixed
    short = tmp_path / "short.key"
    short.write_text("hex:" + raw[:16].hex() + "\n")  # 37 bytes of text, a 16-byte key
    with pytest.raises(InvalidKeyError, match="at least 32"):
        load_key_file(short)
    with pytest.raises(InvalidKeyError):
        load_key(b"x" * 40)  # text, in no key format


def test_generate_key_file_is_private_and_not_overwritten(tmp_path) -> None:
    path = tmp_path / "secrets" / "pseudo.key"
    key = generate_key_file(path)
    assert len(key) >= MIN_KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_file(path) == key
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    assert ensure_key_file(path) == key
    assert generate_key_file(path, overwrite=True) != key


def test_sub_keys_and_fingerprint() -> None:
    assert derive_key(KEY, "token/given_name") != derive_key(KEY, "token/family_name")
    assert derive_key(KEY, "token/x") == hmac.new(KEY, b"ed_pipeline.privacy/v1/token/x", hashlib.sha256).digest()
    fingerprint = key_fingerprint(KEY)
    assert len(fingerprint) == 16 and KEY.hex()[:16] not in fingerprint
