"""Importing this registers every job kind, pipeline step and event listener."""

from __future__ import annotations


def load() -> None:
    import scrm.outbox.tasks
    import scrm.pipeline  # noqa: F401
