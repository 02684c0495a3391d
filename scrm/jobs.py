"""Importing this registers every job kind, pipeline step and event listener."""

from __future__ import annotations


def load() -> None:
    import scrm.automation.tasks
    import scrm.casework.tasks
    import scrm.inbound.polling
    import scrm.nlp.triage
    import scrm.outbox.tasks
    import scrm.pipeline
    import scrm.sla.tasks
    import scrm.worker.tasks  # noqa: F401
