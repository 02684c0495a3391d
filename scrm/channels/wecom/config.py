"""Configuration of one WeCom (企业微信) self-built app's callback, built by the caller."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr


class WecomAccountConfig(BaseModel):
    """`receive_id` is the id framed after each message: the CorpID for self-built apps (the
    default), the suite id for third-party apps, ``""`` for smart robots (reference §3 b)."""

    model_config = ConfigDict(frozen=True)

    corpid: str
    token: SecretStr
    encoding_aes_key: SecretStr
    previous_encoding_aes_key: SecretStr | None = None
    agent_id: str | None = None  # when set, a push for another agent is refused
    receive_id: str | None = None

    @property
    def namespace(self) -> str:
        return f"wecom:{self.corpid}"

    @property
    def effective_receive_id(self) -> str:
        return self.corpid if self.receive_id is None else self.receive_id

    def aes_keys(self) -> list[str]:
        keys = [self.encoding_aes_key, self.previous_encoding_aes_key]
        return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]
