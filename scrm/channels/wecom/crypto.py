"""WeCom uses the Official Account's safe-mode crypto with receiveid = CorpID (reference §3)."""

from __future__ import annotations

from scrm.channels.wechat.crypto import MessageCrypto, sha1_signature, signature_matches
from scrm.channels.wecom.config import WecomAccountConfig

__all__ = ["MessageCrypto", "crypto_for", "sha1_signature", "signature_matches"]


def crypto_for(account: WecomAccountConfig) -> MessageCrypto:
    return MessageCrypto(account.token.get_secret_value(), account.aes_keys(), account.effective_receive_id)
