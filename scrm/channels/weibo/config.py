"""Configuration of one Sina Weibo brand account, built by the caller (e.g. from a DB row)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr

NAMESPACE = "weibo"  # Weibo uids are global: one identity namespace for every account


class WeiboAccountConfig(BaseModel):
    """`uid` is the brand account (``receiver_id`` of fan-service pushes, owner of the posts).

    `app_secret` signs fan-service pushes (it plays WeChat's token role); `access_token` is the
    OAuth2 token of the brand account, used for the Open API and the fan-service reply API.
    """

    model_config = ConfigDict(frozen=True)

    uid: str
    app_key: str = ""
    app_secret: SecretStr
    access_token: SecretStr = SecretStr("")
