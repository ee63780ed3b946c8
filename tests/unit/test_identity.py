"""The node key: keystore v3 on disk, checked against eth-account as the oracle."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from eth_account import Account

from agent.errors import KeystoreError, WrongPasswordError
from agent.identity import NodeIdentity, create_identity, keystore_address, load_identity

PASSWORD = "correct horse battery"
FAST_SCRYPT = 1 << 10  # tests only; production uses eth-account's default cost


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Path, NodeIdentity]:
    path = tmp_path / "home" / "keystore.json"
    return path, create_identity(path, PASSWORD, scrypt_n=FAST_SCRYPT)


def test_keystore_is_private_v3_scrypt_and_decrypts_with_eth_account(
    keystore: tuple[Path, NodeIdentity],
) -> None:
    path, node = keystore
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    key = Account.decrypt(document, PASSWORD)
    assert Account.from_key(key).address == node.address
    assert keystore_address(path) == node.address


def test_public_key_matches_address(keystore: tuple[Path, NodeIdentity]) -> None:
    from eth_utils import keccak, to_checksum_address

    _, node = keystore
    assert len(node.public_key) == 64
    assert to_checksum_address(keccak(node.public_key)[-20:]) == node.address
    assert node.public_key_hex == "0x04" + node.public_key.hex()


def test_load_round_trip_and_signing(keystore: tuple[Path, NodeIdentity]) -> None:
    from eth_account.messages import encode_defunct

    path, node = keystore
    loaded = load_identity(path, PASSWORD)
    assert loaded == node
    message = encode_defunct(text="noosphere")
    signed = loaded.account.sign_message(message)
    assert Account.recover_message(message, signature=signed.signature) == node.address


def test_repr_hides_private_key(keystore: tuple[Path, NodeIdentity]) -> None:
    _, node = keystore
    assert node.private_key.hex() not in repr(node)
    assert "private_key" not in repr(node)


def test_wrong_password(keystore: tuple[Path, NodeIdentity]) -> None:
    path, _ = keystore
    with pytest.raises(WrongPasswordError, match="wrong password"):
        load_identity(path, "not the password")


def test_never_replaces_an_existing_key(keystore: tuple[Path, NodeIdentity]) -> None:
    path, _ = keystore
    before = path.read_bytes()
    with pytest.raises(KeystoreError, match="refusing to replace"):
        create_identity(path, PASSWORD, scrypt_n=FAST_SCRYPT)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_short_password_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="too short"):
        create_identity(tmp_path / "k.json", "short")
    assert not (tmp_path / "k.json").exists()


def test_unsafe_permissions_refused(keystore: tuple[Path, NodeIdentity]) -> None:
    path, _ = keystore
    os.chmod(path, 0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_identity(path, PASSWORD)


def test_missing_keystore_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="noosphere init"):
        load_identity(tmp_path / "nope.json", PASSWORD)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not json", "unreadable"),
        (b"\xff\xfe", "unreadable"),
        (b"[]", "not an Ethereum keystore"),
        (b'{"version": 1}', "not an Ethereum keystore"),
        (b'{"version": 3, "crypto": {}}', "malformed"),
        (b"{" + b" " * 70_000 + b"}", "too large"),
    ],
)
def test_malformed_keystores(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "keystore.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeystoreError, match=words):
        load_identity(path, PASSWORD)


def test_tampered_ciphertext_is_rejected(keystore: tuple[Path, NodeIdentity]) -> None:
    path, _ = keystore
    document = json.loads(path.read_text())
    text = document["crypto"]["ciphertext"]
    document["crypto"]["ciphertext"] = ("0" if text[0] != "0" else "1") + text[1:]
    path.write_text(json.dumps(document))
    with pytest.raises(WrongPasswordError):
        load_identity(path, PASSWORD)
