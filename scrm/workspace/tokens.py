"""Channel API access tokens in the database, shared by every process (WeChat ``stable_token``).

Implements ``scrm.channels.wechat.tokens.TokenStore``. The channel code gets this object and
knows nothing of the database; the store gets the :class:`Database`.

* ``get`` reads the row without a lock (a short read-only transaction; the decrypted token is
  cached in-process for a few seconds so a burst of sends costs no queries).
* ``refresh`` is single-flight across processes: in its own short transaction it inserts the
  row if missing and locks it (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite ``BEGIN
  IMMEDIATE`` already holds the one write lock). If the stored token is unexpired and differs
  from the caller's stale one, somebody else refreshed: return it without fetching. Otherwise
  call ``fetch()`` once and store the result.
* On SQLite, when called from inside a writer transaction of the same database (an outbox
  job), the refresh runs through that transaction: it already holds the write lock, and a
  second writer would wait on it until the busy timeout. If that job then rolls back, the
  token is simply fetched again next time (``stable_token`` hands back the same token).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.channels.registry import AccountView
from scrm.channels.wechat.tokens import CachedToken
from scrm.config import Settings, get_settings
from scrm.db import Database, conflict_insert, current_writer
from scrm.kit import crypto
from scrm.kit.ids import new_id
from scrm.kit.time import as_utc, utcnow
from scrm.models import ChannelToken

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _same_database(session: Session, db: Database) -> bool:
    bind = session.get_bind()
    return str(bind.engine.url) == str(db.engine.url)


class DbTokenStore:
    """TokenStore for one channel account, backed by the ``channel_token`` table."""

    def __init__(
        self,
        db: Database,
        workspace_id: int,
        channel_account_id: int,
        *,
        cache_seconds: float = 5.0,
        secret_key: str | None = None,
    ) -> None:
        self._db = db
        self._workspace_id = workspace_id
        self._account_id = channel_account_id
        self._cache_seconds = cache_seconds
        self._box = crypto.SecretBox(secret_key or get_settings().secret_key.get_secret_value())
        self._cache: dict[str, tuple[float, CachedToken]] = {}
        self._lock = threading.Lock()  # in-process single flight; the row lock does the rest
        self.fetch_count = 0

    # -- TokenStore ---------------------------------------------------------------------

    def get(self, account_key: str) -> CachedToken | None:
        now = time.monotonic()
        cached = self._cache.get(account_key)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._db.transaction(readonly=True) as session:
            row = self._select(session, account_key, lock=False)
            token = self._token(row)
        if token is not None:
            self._cache[account_key] = (now, token)
        return token

    def refresh(
        self, account_key: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken:
        with self._lock:
            self._cache.pop(account_key, None)
            ambient = current_writer()
            if self._db.is_sqlite and ambient is not None and _same_database(ambient, self._db):
                token = self._refresh_in(ambient, account_key, fetch, stale_token)
            else:
                with self._db.transaction() as session:
                    token = self._refresh_in(session, account_key, fetch, stale_token)
            self._cache[account_key] = (time.monotonic(), token)
            return token

    # -- internals ----------------------------------------------------------------------

    def _refresh_in(
        self, session: Session, account_key: str, fetch: Callable[[], CachedToken], stale: str | None
    ) -> CachedToken:
        self._ensure_row(session, account_key)
        row = self._select(session, account_key, lock=True)
        assert row is not None
        current = self._token(row)
        if current is not None and current.access_token != stale and current.is_valid(utcnow()):
            return current  # refreshed by someone else while we waited for the lock
        token = fetch()  # raises: nothing stored, the transaction rolls back
        self.fetch_count += 1
        row.access_token = self._box.encrypt(token.access_token)
        row.expires_at = token.expires_at
        row.updated_at = utcnow()
        session.flush()
        return token

    def _ensure_row(self, session: Session, account_key: str) -> None:
        stmt = (
            conflict_insert(session, ChannelToken)
            .values(
                workspace_id=self._workspace_id,
                id=new_id(),
                channel_account_id=self._account_id,
                account_key=account_key,
                access_token="",
                expires_at=_EPOCH,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
        session.execute(stmt)

    def _select(self, session: Session, account_key: str, *, lock: bool) -> ChannelToken | None:
        stmt = select(ChannelToken).where(
            ChannelToken.workspace_id == self._workspace_id,
            ChannelToken.channel_account_id == self._account_id,
            ChannelToken.account_key == account_key,
        )
        if lock:
            stmt = stmt.with_for_update()  # a no-op on SQLite, where BEGIN IMMEDIATE serialises
            return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
        return session.execute(stmt).scalar_one_or_none()

    def _token(self, row: ChannelToken | None) -> CachedToken | None:
        if row is None or not row.access_token:
            return None
        try:
            value = self._box.decrypt(row.access_token)
        except ValueError:  # SCRM_SECRET_KEY changed: treat as missing, refresh replaces it
            return None
        return CachedToken(value, as_utc(row.expires_at))


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def use_database(db: Database) -> None:
    """Let token stores share an existing engine (the app's or the worker's) for its URL."""
    with _databases_lock:
        _databases.setdefault(db.url, db)


def token_store_for(account: AccountView, settings: Settings) -> DbTokenStore:
    """The shared token store of one channel account (``ChannelSpec.build_client`` calls this)."""
    url = settings.database_url
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url, pool_size=2)
    return DbTokenStore(
        db, account.workspace_id, account.id, secret_key=settings.secret_key.get_secret_value()
    )
