"""Checkpoints that anchor the audit chain outside the database.

Whoever can write the database can edit a record and recompute every later hash and the
head: the chain then verifies. A checkpoint is the head (seq and hash) at a moment, signed
with an Ed25519 key that is not in the database (a file or an environment secret) and kept
outside it (a file the operator ships elsewhere). Verifying with the public key alone
proves that the history up to each checkpoint is still the one that was signed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from mechanisms.core import audit
from mechanisms.core.audit import GENESIS_HASH, HEAD_ID
from mechanisms.core.config import Settings
from mechanisms.core.errors import InvalidInput
from mechanisms.core.tables import AuditHead

PURPOSE = "mechanisms-audit-checkpoint-v1"


# --- keys ---------------------------------------------------------------------------


def new_signing_key_pem() -> tuple[bytes, bytes]:
    """A fresh key pair as PEM: (private, public)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private, public_pem(key.public_key())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_from_pem(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{where} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{where} is not an Ed25519 key")
    return key


def signing_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The configured signing key: MECH_AUDIT_SIGNING_KEY (the PEM itself) or the file
    MECH_AUDIT_SIGNING_KEY_FILE names; None when neither is set."""
    pem = settings.audit_signing_key.get_secret_value()
    if pem.strip():
        return _private_from_pem(pem.encode(), "MECH_AUDIT_SIGNING_KEY")
    if settings.audit_signing_key_file:
        path = Path(settings.audit_signing_key_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read the audit signing key {path}: {exc}") from None
        return _private_from_pem(data, str(path))
    return None


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise InvalidInput(f"cannot read the public key {path}: {exc}") from None
    except (ValueError, TypeError):
        raise InvalidInput(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path} is not an Ed25519 public key")
    return key


# --- checkpoints --------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    signature: str = ""

    def signed_bytes(self) -> bytes:
        return f"{PURPOSE}\n{self.seq}\n{self.hash}\n{self.at.isoformat()}".encode()

    def to_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "hash": self.hash,
                "at": self.at.isoformat(),
                "signature": self.signature,
            }
        )


def take(session: Session, key: Ed25519PrivateKey, now: datetime) -> Checkpoint:
    """Sign the chain's head as it is now."""
    head = session.get(AuditHead, HEAD_ID)
    seq, hash_ = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    unsigned = Checkpoint(seq, hash_, now)
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return Checkpoint(seq, hash_, now, signature)


def append(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(checkpoint.to_json() + "\n")


def _parse(line: str, number: int, path: Path) -> Checkpoint:
    try:
        data: dict[str, Any] = json.loads(line)
        return Checkpoint(
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            at=datetime.fromisoformat(data["at"]),
            signature=str(data["signature"]),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{path}, line {number}: not a checkpoint") from None


def read(path: Path) -> list[Checkpoint]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read the checkpoints {path}: {exc}") from None
    return [_parse(line, n, path) for n, line in enumerate(lines, 1) if line.strip()]


def last(path: Path) -> Checkpoint | None:
    if not path.exists():
        return None
    checkpoints = read(path)
    return max(checkpoints, key=lambda c: c.at) if checkpoints else None


def is_signed(checkpoint: Checkpoint, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


def _name(number: int, checkpoint: Checkpoint) -> str:
    return f"checkpoint {number} (record {checkpoint.seq}, taken {checkpoint.at.isoformat()})"


def verify(
    session: Session, checkpoints: list[Checkpoint], key: Ed25519PublicKey
) -> audit.VerifyResult:
    """The chain verifies, every checkpoint carries a valid signature, and the chain still
    has at each checkpoint's position the hash that was signed."""
    for number, checkpoint in enumerate(checkpoints, 1):
        if not is_signed(checkpoint, key):
            name = _name(number, checkpoint)
            return audit.VerifyResult(
                False,
                0,
                checkpoint.seq,
                None,
                f"the signature of {name} is not valid (the checkpoint was forged or altered)",
                name,
            )
    anchors = [audit.Anchor(c.seq, c.hash, _name(n, c)) for n, c in enumerate(checkpoints, 1)]
    return audit.verify(session, anchors)
