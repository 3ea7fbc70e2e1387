"""Schema migrations for the transcript store, safe when several bridges start at once.

Each migration is a numbered list of statements (``{timestamp}`` is the dialect's timestamp type).
`migrate()` applies the missing ones in ONE transaction that first takes a database-wide lock:
PostgreSQL ``pg_advisory_xact_lock``, SQLite ``BEGIN IMMEDIATE``. A second bridge starting at the
same moment waits for that lock, then finds the versions recorded and applies nothing; a failure
rolls the whole step back, so no database is left half-migrated.

Rules for new migrations: append, never edit a released one; additive only (new tables, new
nullable columns), so that bridges of the previous release keep working beside upgraded ones
during a rolling upgrade. A database newer than this code is used as it is, with a warning.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Any constant shared by every bridge of the product: the key of the PostgreSQL advisory lock.
ADVISORY_LOCK_KEY = 0x41574231  # "AWB1"


@dataclass(frozen=True)
class PerDialect:
    """A statement that differs between the databases (None: nothing to run on that one)."""

    sqlite: "str | None"
    postgresql: "str | None"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple["str | PerDialect", ...]


MIGRATIONS: tuple[Migration, ...] = (
    # The schema of the releases before migrations existed (hence IF NOT EXISTS: on their
    # databases it finds the tables already there).
    Migration(1, "calls and segments", (
        """CREATE TABLE IF NOT EXISTS calls (
            uuid TEXT PRIMARY KEY,
            channel TEXT,
            uniqueid TEXT,
            linkedid TEXT,
            peer TEXT,
            started_at {timestamp} NOT NULL,
            ended_at {timestamp},
            end_reason TEXT,
            language TEXT,
            sample_rate_hz INTEGER,
            dtmf TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS segments (
            uuid TEXT NOT NULL REFERENCES calls(uuid),
            segment_index INTEGER NOT NULL,
            start_s DOUBLE PRECISION NOT NULL,
            end_s DOUBLE PRECISION NOT NULL,
            text TEXT NOT NULL,
            language TEXT,
            avg_logprob DOUBLE PRECISION,
            no_speech_prob DOUBLE PRECISION,
            words TEXT,
            PRIMARY KEY (uuid, segment_index)
        )""",
    )),
    Migration(2, "bridges sharing one database: call owner, grammar, bridge presence", (
        "ALTER TABLE calls ADD COLUMN bridge_id TEXT",
        "ALTER TABLE calls ADD COLUMN grammar TEXT",
        """CREATE TABLE bridges (
            bridge_id TEXT PRIMARY KEY,
            address TEXT,
            started_at {timestamp} NOT NULL,
            heartbeat_at {timestamp} NOT NULL,
            draining INTEGER NOT NULL DEFAULT 0,
            stopped_at {timestamp}
        )""",
        "CREATE INDEX calls_live_by_bridge ON calls (bridge_id) WHERE ended_at IS NULL",
    )),
    Migration(3, "registrations shared by the bridges (FastAGI register on one, call on another)", (
        """CREATE TABLE registrations (
            uuid TEXT PRIMARY KEY,
            channel TEXT,
            uniqueid TEXT,
            linkedid TEXT,
            options TEXT NOT NULL,
            registered_at {timestamp} NOT NULL
        )""",
    )),
    Migration(4, "one bridge, several PBXs: the AMI server of a shared registration", (
        "ALTER TABLE registrations ADD COLUMN server TEXT",
    )),
    # 5, not 4: numbers are taken when work starts, and pending() applies what is missing in
    # version order, so a database may meet 5 before 4.
    Migration(5, "webhook deliveries: the durable queue of post-call POSTs", (
        """CREATE TABLE webhook_deliveries (
            uuid TEXT NOT NULL,
            url TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at {timestamp} NOT NULL,
            lease_owner TEXT,
            lease_until {timestamp},
            last_error TEXT,
            created_at {timestamp} NOT NULL,
            delivered_at {timestamp},
            PRIMARY KEY (uuid, url)
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, next_attempt_at) "
        "WHERE state = 'pending'",
        "CREATE INDEX calls_by_end ON calls (ended_at)",
    )),
    Migration(6, "captions: a call's conversation and speaker, phrase alerts, full-text search", (
        "ALTER TABLE calls ADD COLUMN conversation TEXT",
        "ALTER TABLE calls ADD COLUMN speaker TEXT",
        "CREATE INDEX calls_by_conversation ON calls (conversation) WHERE conversation IS NOT NULL",
        """CREATE TABLE alerts (
            uuid TEXT NOT NULL,
            segment_index INTEGER NOT NULL,
            rule TEXT NOT NULL,
            matched TEXT NOT NULL,
            start_s DOUBLE PRECISION NOT NULL,
            end_s DOUBLE PRECISION NOT NULL,
            raised_at {timestamp} NOT NULL,
            PRIMARY KEY (uuid, segment_index, rule)
        )""",
        # SQLite: an FTS5 index over segments.text kept by triggers (finals are only inserted;
        # a deletion, e.g. retention, removes them from the index too); 'rebuild' indexes the
        # finals stored before. PostgreSQL: a GIN index over the same expression the search uses.
        PerDialect(sqlite="CREATE VIRTUAL TABLE segments_fts USING fts5(text, content='segments', "
                          "content_rowid='rowid')",
                   postgresql="CREATE INDEX segments_text_search ON segments "
                              "USING GIN (to_tsvector('simple', text))"),
        PerDialect(sqlite="""CREATE TRIGGER segments_fts_insert AFTER INSERT ON segments BEGIN
                INSERT INTO segments_fts (rowid, text) VALUES (new.rowid, new.text); END""",
                   postgresql=None),
        PerDialect(sqlite="""CREATE TRIGGER segments_fts_delete AFTER DELETE ON segments BEGIN
                INSERT INTO segments_fts (segments_fts, rowid, text)
                VALUES ('delete', old.rowid, old.text); END""", postgresql=None),
        PerDialect(sqlite="INSERT INTO segments_fts (segments_fts) VALUES ('rebuild')",
                   postgresql=None),
    )),
    Migration(7, "privacy: each call's redaction policy and retention", (
        "ALTER TABLE calls ADD COLUMN redaction TEXT",
        "ALTER TABLE calls ADD COLUMN retention_days DOUBLE PRECISION",
        "ALTER TABLE calls ADD COLUMN expires_at {timestamp}",
        "CREATE INDEX calls_by_expiry ON calls (expires_at)",
    )),
)

LATEST_VERSION = max(m.version for m in MIGRATIONS)

_VERSIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {timestamp} NOT NULL
)"""


def pending(applied: set[int], migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Migration]:
    """The migrations not yet applied, in version order (which may differ from the tuple's)."""
    return sorted((m for m in migrations if m.version not in applied), key=lambda m: m.version)


def migrate(connection, dialect: "Dialect", migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Bring the schema up to date; returns the versions applied now (empty when up to date)."""
    with dialect.locked_transaction(connection):
        dialect.execute(connection, _VERSIONS_TABLE.format(timestamp=dialect.timestamp_type))
        applied = {int(row[0]) for row in
                   dialect.query(connection, "SELECT version FROM schema_migrations")}
        newest_known = max(m.version for m in migrations)
        if applied and max(applied) > newest_known:
            log.warning("storage schema is at version %d, newer than this bridge's %d: using it "
                        "as it is (migrations are additive)", max(applied), newest_known)
        steps = pending(applied, migrations)
        for migration in steps:
            for statement in migration.statements:
                if isinstance(statement, PerDialect):
                    statement = getattr(statement, dialect.name)
                if statement:
                    dialect.execute(connection, statement.format(timestamp=dialect.timestamp_type))
            dialect.execute(connection, "INSERT INTO schema_migrations (version, description, "
                            "applied_at) VALUES (?, ?, CURRENT_TIMESTAMP)",
                            (migration.version, migration.description))
    for migration in steps:
        log.info("storage schema: applied migration %d (%s)", migration.version,
                 migration.description)
    return [m.version for m in steps]


class Dialect:
    """How one database runs a migration; see SqliteDialect and PostgresDialect."""

    name = "sqlite"  # which PerDialect statement applies
    timestamp_type = "TEXT"
    # Appended to a SELECT that picks rows to claim; SQLite needs none (one writer at a time).
    skip_locked = ""

    def locked_transaction(self, connection):
        raise NotImplementedError

    def execute(self, connection, sql: str, params: tuple = ()) -> None:
        connection.execute(sql, params)

    def query(self, connection, sql: str, params: tuple = ()) -> list[tuple]:
        return connection.execute(sql, params).fetchall()


class SqliteDialect(Dialect):
    """sqlite3 in autocommit mode (isolation_level=None): BEGIN IMMEDIATE takes the write lock
    before the versions are read, and SQLite's DDL is transactional."""

    class _Immediate:
        def __init__(self, connection) -> None:
            self.connection = connection

        def __enter__(self) -> None:
            self.connection.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, *_) -> None:
            self.connection.execute("ROLLBACK" if exc_type else "COMMIT")

    def locked_transaction(self, connection):
        return self._Immediate(connection)


class PostgresDialect(Dialect):
    """psycopg 3: one transaction holding a transaction-scoped advisory lock (released at commit
    or rollback); PostgreSQL's DDL is transactional too."""

    name = "postgresql"
    timestamp_type = "TIMESTAMPTZ"
    skip_locked = "FOR UPDATE SKIP LOCKED"

    class _Locked:
        def __init__(self, connection) -> None:
            self.transaction = connection.transaction()
            self.connection = connection

        def __enter__(self) -> None:
            self.transaction.__enter__()
            self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))

        def __exit__(self, *exc_info) -> bool:
            return bool(self.transaction.__exit__(*exc_info))

    def locked_transaction(self, connection):
        return self._Locked(connection)

    def execute(self, connection, sql: str, params: tuple = ()) -> None:
        connection.execute(sql.replace("?", "%s"), params)

    def query(self, connection, sql: str, params: tuple = ()) -> list[tuple]:
        return connection.execute(sql.replace("?", "%s"), params).fetchall()
