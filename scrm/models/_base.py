"""Column helpers shared by the tables.

Every workspace-owned table has `workspace_id NOT NULL` and the primary key
`(workspace_id, id)`; every unique constraint and foreign key between workspace-owned tables
includes `workspace_id` (the Citus distribution column).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from scrm.db import UTCDateTime
from scrm.kit.ids import new_id
from scrm.kit.time import utcnow


class WorkspaceOwned:
    workspace_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("workspace.id"), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, default=new_id)


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
