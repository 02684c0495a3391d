"""Builders shared by the channel tests (independent of the code under test where it matters)."""

from __future__ import annotations

import base64
import hashlib
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OLD_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"
APPID = "wx5823bf96d3bd56c7"
TOKEN = "QDG6eK"
ORIGINAL_ID = "gh_3f8a1c2b9d0e"
REPO = Path(__file__).resolve().parents[2]


def sha1_sorted(*parts: str) -> str:
    """Written out again here so tests do not trust the implementation under test."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def raw_aes_encrypt(encoding_aes_key: str, plaintext: bytes) -> str:
    """AES-256-CBC over already padded bytes: lets tests forge bad padding and framing."""
    key = base64.b64decode(encoding_aes_key + "=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plaintext) + enc.finalize()).decode()


def frame(msg: bytes, receive_id: bytes, *, msg_len: int | None = None, rnd: bytes = b"R" * 16) -> bytes:
    n = len(msg) if msg_len is None else msg_len
    return rnd + struct.pack(">I", n) + msg + receive_id


def pad32(data: bytes) -> bytes:
    n = 32 - len(data) % 32
    return data + bytes([n]) * n


def fixture_text(channel: str, name: str) -> bytes:
    return (REPO / "scrm" / "channels" / channel / "fixtures" / name).read_bytes()
