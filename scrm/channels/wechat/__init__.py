"""wechat channel."""
