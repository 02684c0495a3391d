"""Engine, sessions and the transaction boundary.

Services never commit: a request or a job is the transaction (see :func:`Database.transaction`).
Work that must happen only once the transaction is durable (waking the worker, live UI updates)
is registered with :func:`after_commit`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, DateTime, Engine, and_, create_engine, event, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

from scrm.kit.time import UTC

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# The writer transaction this thread is inside, if any. On SQLite it already holds the one
# write lock, so code that must write from inside it (e.g. a token refresh during an outbox
# job) writes through it instead of opening a second writer that would wait on the first.
_current_writer: ContextVar[Session | None] = ContextVar("scrm_current_writer", default=None)


def current_writer() -> Session | None:
    return _current_writer.get()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as UTC and always returns aware UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


# The databases SCRM runs on: statements built once per dialect iterate over these.
DIALECTS = ("postgresql", "sqlite")


def conflict_insert(on: Session | str, table: Any) -> Any:
    """An INSERT that can take `ON CONFLICT …` (each dialect has its own construct), for the
    session's database or a dialect name from `DIALECTS`."""
    name = on if isinstance(on, str) else on.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {name!r}")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the lock up front: a deferred transaction that reads and then writes
            # fails with SQLITE_BUSY instead of waiting when another writer got there first.
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)


class WriteGate:
    """SQLite's one write lock, taken in this process in priority order (reentrant per thread).

    SQLite lets one writer in at a time and makes the others poll with growing sleeps, so a
    worker that starts its next job the moment it commits keeps winning, and acknowledgements
    of inbound pushes wait behind it for seconds. Inside one process this gate hands the lock
    over in order instead: foreground writers (requests, inbound storage) go before background
    ones (worker jobs), which take it only when no foreground writer is waiting.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0
        self._waiting_foreground = 0

    @contextmanager
    def hold(self, *, background: bool) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                if not background:
                    self._waiting_foreground += 1
                try:
                    while self._owner is not None or (background and self._waiting_foreground):
                        self._cond.wait()
                finally:
                    if not background:
                        self._waiting_foreground -= 1
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._cond.notify_all()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        reader_bind = (
            self.engine.execution_options(sqlite_begin="DEFERRED") if self.is_sqlite else self.engine
        )
        self._reader = sessionmaker(reader_bind, expire_on_commit=False)
        self._gate = WriteGate() if self.is_sqlite else None

    def session(self, *, readonly: bool = False) -> Session:
        return (self._reader if readonly else self._writer)()

    @contextmanager
    def transaction(self, *, readonly: bool = False, background: bool = False) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error, then runs after-commit hooks.

        `background` (worker jobs): on SQLite, let waiting foreground writers go first.
        """
        if self._gate is None or readonly:
            with self._unit(readonly=readonly) as session:
                yield session
            return
        with self._gate.hold(background=background), self._unit(readonly=False) as session:
            yield session

    @contextmanager
    def _unit(self, *, readonly: bool) -> Iterator[Session]:
        session = self.session(readonly=readonly)
        marker = None if readonly else _current_writer.set(session)
        try:
            yield session
            if not readonly:
                session.commit()
            # A read-only unit just closes: its objects stay readable (not expired) afterwards.
        except BaseException:
            session.rollback()
            session.info.pop("after_commit", None)
            raise
        finally:
            if marker is not None:
                _current_writer.reset(marker)
            hooks = session.info.pop("after_commit", [])
            session.close()
        run_hooks(hooks)

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` once the current transaction has committed (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(hook)


def run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("after-commit hook failed")


def tx_memo(session: Session) -> dict[Any, Any]:
    """A dict that lives as long as the session's current (outermost) transaction.

    For lookups repeated within one unit of work (the rule set's version, the SLA calendar...):
    a new transaction, or a rollback, starts from an empty memo. Code that changes what a
    memoized lookup reads must drop the entry (`tx_forget`).
    """
    txn = session.get_transaction()
    memo = session.info.get("tx_memo")
    if memo is None or memo[0] is not txn or txn is None:
        memo = (txn, {})
        if txn is not None:
            session.info["tx_memo"] = memo
    return memo[1]


def tx_pin(session: Session, obj: _T | None) -> _T | None:
    """Keep `obj` referenced until the session's transaction ends, so that the session's (weak)
    identity map still holds it when the next job sharing the transaction asks for it, and
    ``session.get`` answers without SQL. Returns `obj`."""
    if obj is not None:
        tx_memo(session).setdefault(("pinned", id(obj)), obj)
    return obj


def tx_forget(session: Session, *keys: Any) -> None:
    memo = session.info.get("tx_memo")
    if memo is not None:
        for key in keys:
            memo[1].pop(key, None)


_NOT_READ = object()


class ReadAhead:
    """Rows a group of jobs read in one statement for the jobs that follow in the same
    transaction (see `JobKind.read_ahead`), kept in the transaction's memo: any rollback, a
    savepoint's too, empties it, and a job then reads for itself.

    `put` stores an answer for every key asked (None: no such row then). `get` returns the
    stored answer, or `NOT_READ` for a key nobody read ahead; `pop` does the same and forgets
    it. Code that creates what a key names calls `record`, so that a later job of the group
    sees it; nothing else may change what a stored answer says.
    """

    NOT_READ: Any = _NOT_READ

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, session: Session, answers: dict[Any, Any], keys: Any = None) -> None:
        memo = tx_memo(session)
        for key in answers if keys is None else keys:
            memo[(self.name, key)] = answers.get(key)

    def get(self, session: Session, key: Any) -> Any:
        return tx_memo(session).get((self.name, key), _NOT_READ)

    def pop(self, session: Session, key: Any) -> Any:
        return tx_memo(session).pop((self.name, key), _NOT_READ)

    def record(self, session: Session, key: Any, value: Any) -> None:
        memo = tx_memo(session)
        if (self.name, key) in memo:
            memo[(self.name, key)] = value


def keys_in(columns: Sequence[Any], keys: Iterable[Sequence[Any]]) -> ColumnElement[bool]:
    """`(c1, …, cn) IN (keys)`, written as `c1 = a AND … AND cn IN (…)` per distinct prefix.

    PostgreSQL expands a row-value IN list into ORs of row comparisons that its planner often
    does not match to the index on those columns: marking 6 jobs done scanned 10,000 rows of a
    workspace. `cn = ANY(…)` under equalities is a plain index condition.

    For keys with few distinct prefixes only (a workspace id, a namespace): each prefix count
    is a different statement to compile, and many prefixes make a long OR.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for key in keys:
        groups.setdefault(tuple(key[:-1]), []).append(key[-1])
    head, last = list(columns[:-1]), columns[-1]
    return or_(
        *(
            and_(*(c == v for c, v in zip(head, prefix, strict=True)), last.in_(values))
            for prefix, values in groups.items()
        )
    )


def undone_by(txn: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    """Was work done in `txn` undone by the rollback of `rolled_back` (the same transaction or
    one that encloses it)? For state kept per savepoint (after_soft_rollback listeners)."""
    while txn is not None:
        if txn is rolled_back:
            return True
        txn = txn.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _drop_memo_on_rollback(session: Session, previous_transaction: Any) -> None:
    # Any rollback, a savepoint's too, may undo what a memoized lookup saw.
    session.info.pop("tx_memo", None)


# Memo entries (keys are tuples whose first item names the lookup) that a flush of a given
# model invalidates: e.g. a flushed AutomationRule drops every ("ruleset", ...) entry.
_MEMO_WATCH: dict[type, set[str]] = {}


def memo_depends_on(name: str, *models: type) -> None:
    for model in models:
        _MEMO_WATCH.setdefault(model, set()).add(name)


@event.listens_for(Session, "after_flush")
def _drop_memo_on_flush(session: Session, flush_context: Any) -> None:
    memo = session.info.get("tx_memo")
    if not memo or not memo[1] or not _MEMO_WATCH:
        return
    names: set[str] = set()
    for group in (session.new, session.dirty, session.deleted):
        for obj in group:
            hit = _MEMO_WATCH.get(type(obj))
            if hit:
                names |= hit
    if names:
        for key in [k for k in memo[1] if isinstance(k, tuple) and k and k[0] in names]:
            del memo[1][key]


class CommitBuffer:
    """Items a transaction queues to write in one statement just before it commits.

    ``add`` queues an item in the session's current transaction or savepoint; a savepoint that
    rolls back drops what was queued in it, a rolled-back transaction drops everything, and
    ``write(session, items)`` runs once, after a final flush, right before the outermost
    commit. A reader that must see the queued items in the same transaction calls ``flush``.
    """

    def __init__(self, name: str, write: Callable[[Session, list[Any]], None]) -> None:
        self._key = f"scrm_buffer_{name}"
        self._write = write
        event.listen(Session, "before_commit", self._before_commit)
        event.listen(Session, "after_soft_rollback", self._after_rollback)

    def add(self, session: Session, item: Any) -> None:
        # Queued before any SQL ran: begin the transaction now, so that its commit writes it.
        root = session.get_transaction() or session.begin()
        entry = session.info.get(self._key)
        if entry is None or entry[0] is not root:
            items: list[tuple[SessionTransaction | None, Any]] = []
            entry = session.info[self._key] = (root, items)
        entry[1].append((session.get_nested_transaction() or root, item))

    def discard(self, session: Session, unwanted: Callable[[Any], bool]) -> None:
        """Drop queued items that became pointless before they were written."""
        entry = session.info.get(self._key)
        if entry is not None:
            entry[1][:] = [(txn, item) for txn, item in entry[1] if not unwanted(item)]

    def flush(self, session: Session) -> None:
        """Write what is queued now (it then stays written unless the transaction rolls back)."""
        entry = session.info.pop(self._key, None)
        if entry is None or entry[0] is not session.get_transaction() or not entry[1]:
            return
        session.flush()
        self._write(session, [item for _txn, item in entry[1]])

    def _before_commit(self, session: Session) -> None:
        if not session.in_nested_transaction():  # a released savepoint's items wait for the commit
            self.flush(session)

    def _after_rollback(self, session: Session, previous: SessionTransaction) -> None:
        entry = session.info.get(self._key)
        if entry is None:
            return
        if previous is entry[0] or not previous.nested:
            session.info.pop(self._key, None)
            return
        entry[1][:] = [(txn, item) for txn, item in entry[1] if not undone_by(txn, previous)]
