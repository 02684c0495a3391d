"""WeChat callback crypto: SHA-1 signatures and the AES "safe mode" framing.

Shared by the Official Account (receive id = AppID) and WeCom (receive id = CorpID); Weibo
uses :func:`sha1_signature` with its App Secret in the token's place.

Safe mode (reference §1.3): ``AESKey = b64decode(EncodingAESKey + "=")``, AES-256-CBC with
``IV = AESKey[:16]``, PKCS#7 padded to a multiple of **32**, plaintext framed as
``random16 ‖ msg_len (4 bytes, big endian) ‖ msg ‖ receive_id``.

Everything a remote party can influence fails with :class:`InboundRejected` (4xx); only our
own misconfiguration (a malformed EncodingAESKey) raises ``ValueError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from scrm.channels.base import InboundRejected

BLOCK = 32  # WeChat pads to 32 bytes, not to the AES block size
_SIGNATURE_RE = re.compile(r"[0-9a-fA-F]{40}")
_AES_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")
# A push is a few KB; compat mode triples it. Anything larger is not WeChat.
MAX_ENCRYPTED_CHARS = 512 * 1024


def sha1_signature(*parts: str) -> str:
    """``sha1("".join(sorted(parts)))`` as lowercase hex (WeChat, WeCom and Weibo recipe)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 (protocol)


def signature_matches(signature: str | None, *parts: str) -> bool:
    """Constant-time check of a hex SHA-1 `signature` over `parts`; malformed means no match."""
    if not signature or _SIGNATURE_RE.fullmatch(signature) is None:
        return False
    return hmac.compare_digest(sha1_signature(*parts).encode("ascii"), signature.lower().encode("ascii"))


def decode_encoding_aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind a 43-character EncodingAESKey (raises ``ValueError``)."""
    if _AES_KEY_RE.fullmatch(encoding_aes_key) is None:
        raise ValueError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
    return base64.b64decode(encoding_aes_key + "=")


@dataclass(frozen=True, slots=True)
class Decrypted:
    plaintext: bytes
    key_index: int  # 0 = current EncodingAESKey, 1 = previous one


@dataclass(frozen=True, slots=True)
class EncryptedEnvelope:
    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str


class _FrameError(Exception):
    def __init__(self, reason: str, *, wrong_receiver: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wrong_receiver = wrong_receiver


def pkcs7_pad(data: bytes, block: int = BLOCK) -> bytes:
    n = block - len(data) % block
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block: int = BLOCK) -> bytes:
    """Strict PKCS#7: pad byte in 1..block and every pad byte equal (wechatpy skips this)."""
    if not data:
        raise _FrameError("empty plaintext")
    n = data[-1]
    if n < 1 or n > block or n > len(data):
        raise _FrameError("bad padding")
    if not hmac.compare_digest(data[-n:], bytes([n]) * n):
        raise _FrameError("bad padding")
    return data[:-n]


class MessageCrypto:
    """Signs, encrypts and decrypts callback messages for one receive id."""

    def __init__(self, token: str, encoding_aes_keys: Sequence[str], receive_id: str) -> None:
        if not encoding_aes_keys:
            raise ValueError("safe mode needs at least one EncodingAESKey")
        self._token = token
        self._keys = [decode_encoding_aes_key(k) for k in encoding_aes_keys]
        # Built once: a Cipher is reusable, each push only asks it for a fresh (de|en)cryptor.
        self._ciphers = [Cipher(algorithms.AES(key), modes.CBC(key[:16])) for key in self._keys]
        self._receive_id = receive_id.encode("utf-8")

    def __repr__(self) -> str:  # never show the keys
        return f"MessageCrypto(receive_id={self._receive_id.decode('utf-8', 'replace')!r})"

    # -- signatures ---------------------------------------------------------------------

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return sha1_signature(self._token, timestamp, nonce, encrypt)

    def verify_signature(self, msg_signature: str | None, timestamp: str, nonce: str, encrypt: str) -> None:
        if not signature_matches(msg_signature, self._token, timestamp, nonce, encrypt):
            raise InboundRejected(401, "invalid msg_signature")

    # -- AES framing --------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, *, key_index: int = 0, random16: bytes | None = None) -> str:
        rnd = secrets.token_bytes(16) if random16 is None else random16
        if len(rnd) != 16:
            raise ValueError("random prefix must be 16 bytes")
        framed = rnd + struct.pack(">I", len(plaintext)) + plaintext + self._receive_id
        encryptor = self._ciphers[key_index].encryptor()
        ciphertext = encryptor.update(pkcs7_pad(framed)) + encryptor.finalize()
        return base64.b64encode(ciphertext).decode("ascii")

    def decrypt(self, encrypt: str) -> Decrypted:
        """Decrypt and check the receive id, trying the previous key if the current one fails."""
        if not encrypt or len(encrypt) > MAX_ENCRYPTED_CHARS:
            raise InboundRejected(400, "missing or oversized Encrypt")
        try:
            ciphertext = base64.b64decode(encrypt.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise InboundRejected(400, "Encrypt is not valid base64") from None
        if len(ciphertext) < BLOCK or len(ciphertext) % 16:
            raise InboundRejected(400, "Encrypt has an invalid length")
        errors: list[_FrameError] = []
        for index, cipher in enumerate(self._ciphers):
            try:
                return Decrypted(self._open(cipher, ciphertext), index)
            except _FrameError as exc:
                errors.append(exc)
        if any(e.wrong_receiver for e in errors):
            raise InboundRejected(403, "message is addressed to another AppID/CorpID")
        raise InboundRejected(400, f"cannot decrypt Encrypt ({errors[0].reason})")

    def _open(self, cipher: Cipher[modes.CBC], ciphertext: bytes) -> bytes:
        decryptor = cipher.decryptor()
        framed = pkcs7_unpad(decryptor.update(ciphertext) + decryptor.finalize())
        if len(framed) < 20:
            raise _FrameError("frame too short")
        (msg_len,) = struct.unpack(">I", framed[16:20])
        if 20 + msg_len > len(framed):
            raise _FrameError("msg_len past the end of the frame")
        receive_id = framed[20 + msg_len :]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise _FrameError("wrong receive id", wrong_receiver=True)
        return framed[20 : 20 + msg_len]

    # -- envelopes ----------------------------------------------------------------------

    def seal(self, plaintext: bytes, *, timestamp: str, nonce: str, key_index: int = 0) -> EncryptedEnvelope:
        """Encrypt and sign, ready for the 4-field reply XML."""
        encrypt = self.encrypt(plaintext, key_index=key_index)
        return EncryptedEnvelope(encrypt, self.sign(timestamp, nonce, encrypt), timestamp, nonce)
