"""The node's one identity: a secp256k1 key in an Ethereum keystore v3 file.

The same key is the node's Ethereum account, the owner of its Swarm single-owner
chunks and feeds, and the signer of its messages. At rest it is encrypted with
scrypt in a file of mode 0600 that is written once and never replaced.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NewType

from agent.errors import KeystoreError, WrongPasswordError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# eth-account, eth-keys and eth-utils are imported where they are used: together they
# take about a second to import, which commands that never touch the key should not pay.

ChecksumAddress = NewType("ChecksumAddress", str)

MIN_PASSWORD_CHARS = 8
KEYSTORE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class NodeIdentity:
    """A decrypted node key. `repr` never shows the private key."""

    address: ChecksumAddress
    public_key: bytes  # 64 bytes: uncompressed point without the 0x04 prefix
    private_key: bytes = field(repr=False)

    @classmethod
    def from_private_key(cls, private_key: bytes) -> NodeIdentity:
        from eth_keys.datatypes import PrivateKey

        pk = PrivateKey(private_key)
        address = ChecksumAddress(pk.public_key.to_checksum_address())
        return cls(address=address, public_key=pk.public_key.to_bytes(), private_key=private_key)

    @property
    def account(self) -> LocalAccount:
        """The key as an eth-account signer (transactions, messages)."""
        from eth_account import Account

        acct: LocalAccount = Account.from_key(self.private_key)
        return acct

    @property
    def public_key_hex(self) -> str:
        return "0x04" + self.public_key.hex()


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise KeystoreError(f"password too short: use at least {MIN_PASSWORD_CHARS} characters")


def create_identity(path: Path, password: str, *, scrypt_n: int | None = None) -> NodeIdentity:
    """Make a fresh key and write it encrypted to `path`, which must not exist.

    `scrypt_n` lowers the scrypt cost (tests only); the default is eth-account's.
    """
    from eth_account import Account

    check_new_password(password)
    if path.exists():
        raise KeystoreError(f"refusing to replace existing keystore {path}")
    account = Account.create()
    document = Account.encrypt(account.key, password, kdf="scrypt", iterations=scrypt_n)
    _write_new_private_file(path, json.dumps(document).encode())
    return NodeIdentity.from_private_key(bytes(account.key))


def load_identity(path: Path, password: str) -> NodeIdentity:
    """Decrypt the keystore at `path`."""
    from eth_account import Account

    document = read_keystore(path)
    try:
        private_key = Account.decrypt(document, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPasswordError(f"wrong password for keystore {path}") from None
        raise KeystoreError(f"keystore {path} is malformed: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise KeystoreError(f"keystore {path} is malformed: missing or bad {exc}") from None
    identity = NodeIdentity.from_private_key(bytes(private_key))
    recorded = document.get("address")
    if (
        isinstance(recorded, str)
        and recorded.lower().removeprefix("0x") != identity.address[2:].lower()
    ):
        raise KeystoreError(f"keystore {path}: recorded address does not match the key")
    return identity


def keystore_address(path: Path) -> ChecksumAddress:
    """The address recorded in the keystore, readable without the password."""
    from eth_utils.address import to_checksum_address

    document = read_keystore(path)
    recorded = document.get("address")
    if not isinstance(recorded, str):
        raise KeystoreError(f"keystore {path} records no address")
    try:
        return ChecksumAddress(to_checksum_address("0x" + recorded.removeprefix("0x")))
    except ValueError:
        raise KeystoreError(f"keystore {path} records a malformed address") from None


def read_keystore(path: Path) -> dict[str, Any]:
    """Read and sanity-check a keystore file: present, private, small, JSON object."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}; run `noosphere init` first") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeystoreError(f"keystore {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeystoreError(
            f"keystore {path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    if st.st_size > KEYSTORE_MAX_BYTES:
        raise KeystoreError(f"keystore {path} is too large to be a keystore")
    try:
        document = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"keystore {path} is unreadable: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != 3:
        raise KeystoreError(f"keystore {path} is not an Ethereum keystore v3 file")
    return document


def _write_new_private_file(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, mode 0600, failing if `path` exists.

    The bytes go to a temporary file that is fsynced and then hard-linked into
    place: link() never replaces, so a concurrent `init` cannot clobber a key.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeystoreError(f"refusing to replace existing keystore {path}") from None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
