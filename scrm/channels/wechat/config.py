"""Configuration of one WeChat Official Account, built by the caller (e.g. from a DB row)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr


class WechatAccountConfig(BaseModel):
    """Credentials and settings of one Official Account.

    `token` signs every push, `encoding_aes_key` (43 characters) enables compat/safe mode and
    `previous_encoding_aes_key` keeps pushes decryptable while a rotation propagates.
    `original_id` (``gh_…``) is checked against ``ToUserName`` when set, so a push meant for
    another account is refused even in plaintext mode. With `require_encryption` a plaintext
    push is refused (no downgrade once the account runs in safe mode).
    """

    model_config = ConfigDict(frozen=True)

    appid: str
    token: SecretStr
    secret: SecretStr = SecretStr("")
    encoding_aes_key: SecretStr | None = None
    previous_encoding_aes_key: SecretStr | None = None
    original_id: str | None = None
    require_encryption: bool = False

    @property
    def namespace(self) -> str:
        return f"wechat:{self.appid}"

    def aes_keys(self) -> list[str]:
        """EncodingAESKeys to try, current first."""
        keys = [self.encoding_aes_key, self.previous_encoding_aes_key]
        return [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]
