"""The package layout of DESIGN.md, checked: services hold rules, repositories hold queries, and
nobody but the transaction boundary (scrm/db.py) commits."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRM = Path(__file__).resolve().parents[2] / "scrm"
SERVICES = sorted(SCRM.glob("*/service.py"))

# What a service may take from SQLAlchemy: the Session type it is handed, and the errors it
# turns into domain errors. Statements (select, insert, delete, func...) belong in repositories.
ALLOWED = {"sqlalchemy.orm": {"Session"}, "sqlalchemy.exc": None}


def violations(source: str) -> list[str]:
    """What breaks the layout in `source`, in line order."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [
                f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("sqlalchemy")
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            module = node.module or ""
            if module not in ALLOWED:
                out.append(f"line {node.lineno}: from {module} import …")
                continue
            allowed = ALLOWED[module]
            out += [
                f"line {node.lineno}: from {module} import {a.name}"
                for a in node.names
                if allowed is not None and a.name not in allowed
            ]
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit"
        ):
            out.append(f"line {node.lineno}: .commit()")
    return sorted(out, key=lambda v: int(v.split(":")[0].removeprefix("line ")))


def test_the_layout_checker_sees_what_it_must() -> None:
    bad = (
        "from sqlalchemy import select\n"
        "import sqlalchemy\n"
        "from sqlalchemy.orm import Session, joinedload\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "def f(session):\n"
        "    session.commit()\n"
        "from sqlalchemy import func\n"
    )
    assert violations(bad) == [
        "line 1: from sqlalchemy import …",
        "line 2: import sqlalchemy",
        "line 3: from sqlalchemy.orm import joinedload",
        "line 6: .commit()",
        "line 7: from sqlalchemy import …",
    ]
    assert violations("from sqlalchemy.orm import Session\nfrom sqlalchemy.exc import IntegrityError\n") == []


def test_there_are_services_to_check() -> None:
    assert len(SERVICES) >= 10, SERVICES


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.parent.name)
def test_services_build_no_statements_and_never_commit(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []
