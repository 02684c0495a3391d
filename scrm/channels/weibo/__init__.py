"""weibo channel."""
