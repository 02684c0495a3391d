"""wecom channel."""
