"""SLOT: a department records a case's outcome (S7, closing the loop).

The routing/automation package owns outcome recording (the outcome is told to the fan on the
channel they used). Until it ships a service function, the department view shows the form
disabled. When it lands, point `_recorder` at it: one line, no template change.
Expected signature: ``record_outcome(session, principal, conversation_id, text) -> object``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from scrm.errors import Forbidden, Invalid
from scrm.models import Conversation
from scrm.workspace.schemas import Principal

# Where the routing engineer's service is expected; the first that exists is used.
CANDIDATES = (("scrm.automation.outcome", "record_outcome"), ("scrm.automation.service", "record_outcome"))


def _recorder() -> Callable[..., Any] | None:
    for module_name, attr in CANDIDATES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, attr, None)
        if callable(fn):
            return fn
    return None


def available() -> bool:
    return _recorder() is not None


def record(
    session: Session, principal: Principal, conv: Conversation, text: str, team_ids: list[int]
) -> None:
    fn = _recorder()
    if fn is None:
        raise Invalid("outcome recording is not available yet")
    if conv.team_id is None or conv.team_id not in team_ids:
        raise Forbidden("only the department the case is routed to records its outcome")
    if not text.strip():
        raise Invalid("the outcome is empty", field="text")
    fn(session, principal, conv.id, text.strip())
