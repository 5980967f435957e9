"""Versioned schema migrations, per component, for SQLite and PostgreSQL.

``schema_migrations`` holds one row per applied (component, version). Each
component (``spend_logs`` now, the guardrail registry later) lists its own
``Migration``s; ``pending`` picks those not applied yet. Runners live with
each backend, because each dialect serialises concurrent upgraders its own
way (an advisory lock, ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = [
    "MIGRATIONS_TABLE",
    "POSTGRES_MIGRATIONS_DDL",
    "SQLITE_MIGRATIONS_DDL",
    "Migration",
    "check_identifier",
    "pending",
    "spend_log_migrations",
]

MIGRATIONS_TABLE = "schema_migrations"
SQLITE_MIGRATIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
    " component text NOT NULL, version integer NOT NULL, description text NOT NULL,"
    " applied_at text NOT NULL, PRIMARY KEY (component, version))"
)
POSTGRES_MIGRATIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
    " component text NOT NULL, version integer NOT NULL, description text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))"
)
_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step of one component; statements per dialect, run in order."""

    component: str
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


def check_identifier(name: str) -> str:
    """A table name we can put into SQL unquoted (lowercase, digits, _)."""
    ok = 0 < len(name) <= 40 and not name[0].isdigit() and set(name) <= _IDENTIFIER_CHARS
    if not ok:
        raise ValueError(f"invalid table name {name!r}")
    return name


def pending(
    migrations: Sequence[Migration], applied: Collection[tuple[str, int]]
) -> list[Migration]:
    """Migrations not applied yet, in (component, version) order."""
    todo = [m for m in migrations if (m.component, m.version) not in applied]
    return sorted(todo, key=lambda m: (m.component, m.version))


_COMMON_COLUMNS = """
    call_type text NOT NULL DEFAULT '',
    api_key text NOT NULL DEFAULT '',
    "user" text NOT NULL DEFAULT '',
    team_id text NOT NULL DEFAULT '',
    end_user text NOT NULL DEFAULT '',
    session_id text NOT NULL DEFAULT '',
    "startTime" {ts} NOT NULL,
    "endTime" {ts} NOT NULL,
    request_duration_ms double precision NOT NULL DEFAULT 0,
    status text NOT NULL,
    request_tags {json} NOT NULL DEFAULT '[]',
    metadata {json} NOT NULL DEFAULT '{{}}',
    client_request_id text NOT NULL DEFAULT '',
    grpc_code text NOT NULL DEFAULT '',
    decision text NOT NULL DEFAULT '',
    registry_generation bigint NOT NULL DEFAULT 0,
    worker integer NOT NULL DEFAULT 0"""

# A first, unversioned release created a plain (unpartitioned) PostgreSQL
# table; partitioning cannot be added in place, so it is renamed and kept.
_PG_KEEP_LEGACY = """
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = '{t}' AND c.relkind = 'r'
               AND n.nspname = current_schema()) THEN
    ALTER TABLE {t} RENAME TO {t}_unpartitioned;
    ALTER TABLE {t}_unpartitioned RENAME CONSTRAINT {t}_pkey TO {t}_unpartitioned_pkey;
    ALTER INDEX IF EXISTS {t}_start_idx RENAME TO {t}_unpartitioned_start_idx;
  END IF;
END $$
"""


def spend_log_migrations(table: str = "spend_logs") -> list[Migration]:
    """The SpendLogs table's migrations; the component is the table name."""
    t = check_identifier(table)
    sqlite_columns = _COMMON_COLUMNS.format(ts="text", json="text")
    pg_columns = _COMMON_COLUMNS.format(ts="timestamptz", json="jsonb")
    return [
        Migration(
            t, 1, "spend log table; PostgreSQL partitioned by day on startTime",
            sqlite=(
                f"CREATE TABLE IF NOT EXISTS {t} ("
                f"request_id text PRIMARY KEY,{sqlite_columns})",
                f'CREATE INDEX IF NOT EXISTS {t}_start_idx ON {t} ("startTime")',
            ),
            postgres=(
                _PG_KEEP_LEGACY.format(t=t),
                f"CREATE TABLE IF NOT EXISTS {t} (request_id text NOT NULL,{pg_columns},"
                f' PRIMARY KEY (request_id, "startTime")) PARTITION BY RANGE ("startTime")',
                f'CREATE INDEX IF NOT EXISTS {t}_start_idx ON {t} ("startTime")',
            ),
        ),
        Migration(
            t, 2, "content columns (empty unless the operator stores content)",
            sqlite=(
                f"ALTER TABLE {t} ADD COLUMN messages text NOT NULL DEFAULT '{{}}'",
                f"ALTER TABLE {t} ADD COLUMN response text NOT NULL DEFAULT '{{}}'",
            ),
            postgres=(
                f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS"
                " messages jsonb NOT NULL DEFAULT '{}'",
                f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS"
                " response jsonb NOT NULL DEFAULT '{}'",
            ),
        ),
    ]  # fmt: skip


REGISTRY_COMPONENT = "registry"


def registry_migrations() -> list[Migration]:
    """The guardrail registry's tables (component ``registry``).

    ``registry_guardrails`` holds the stored definitions in force (one row per
    name; the spec is the serialized ``guardrail.v1.Guardrail`` so fields added
    to the proto later persist unchanged), ``registry_history`` every change
    with before and after, ``registry_state`` the single generation counter.
    """
    return [
        Migration(
            REGISTRY_COMPONENT, 1, "guardrail definitions, history and generation",
            sqlite=(
                "CREATE TABLE IF NOT EXISTS registry_state ("
                " id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
                "INSERT INTO registry_state VALUES (1, 1) ON CONFLICT (id) DO NOTHING",
                "CREATE TABLE IF NOT EXISTS registry_guardrails ("
                " name text PRIMARY KEY, version integer NOT NULL, spec blob NOT NULL,"
                " source text NOT NULL, disabled integer NOT NULL DEFAULT 0,"
                " updated_at text NOT NULL, updated_by text NOT NULL DEFAULT '')",
                "CREATE TABLE IF NOT EXISTS registry_history ("
                " id integer PRIMARY KEY AUTOINCREMENT, generation bigint NOT NULL,"
                " name text NOT NULL, version integer NOT NULL, action text NOT NULL,"
                " actor text NOT NULL, source text NOT NULL, at text NOT NULL,"
                " before blob, after blob)",
                "CREATE INDEX IF NOT EXISTS registry_history_name_idx"
                " ON registry_history (name, id)",
            ),
            postgres=(
                "CREATE TABLE IF NOT EXISTS registry_state ("
                " id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
                "INSERT INTO registry_state VALUES (1, 1) ON CONFLICT (id) DO NOTHING",
                "CREATE TABLE IF NOT EXISTS registry_guardrails ("
                " name text PRIMARY KEY, version integer NOT NULL, spec bytea NOT NULL,"
                " source text NOT NULL, disabled boolean NOT NULL DEFAULT false,"
                " updated_at timestamptz NOT NULL, updated_by text NOT NULL DEFAULT '')",
                "CREATE TABLE IF NOT EXISTS registry_history ("
                " id bigserial PRIMARY KEY, generation bigint NOT NULL,"
                " name text NOT NULL, version integer NOT NULL, action text NOT NULL,"
                " actor text NOT NULL, source text NOT NULL, at timestamptz NOT NULL,"
                " before bytea, after bytea)",
                "CREATE INDEX IF NOT EXISTS registry_history_name_idx"
                " ON registry_history (name, id)",
            ),
        ),
    ]  # fmt: skip


def mcp_pin_migrations() -> list[Migration]:
    """Component ``mcp_pins``: pinned MCP tool hashes and their change counter."""
    return [
        Migration(
            component="mcp_pins",
            version=1,
            description="mcp_pins and mcp_pin_generation",
            sqlite=(
                "CREATE TABLE IF NOT EXISTS mcp_pins (scope text NOT NULL,"
                " server text NOT NULL, tool text NOT NULL, sha256 text NOT NULL,"
                " pinned_at text NOT NULL, PRIMARY KEY (scope, server, tool))",
                "CREATE TABLE IF NOT EXISTS mcp_pin_generation"
                " (id integer PRIMARY KEY CHECK (id = 1), generation integer NOT NULL)",
                "INSERT OR IGNORE INTO mcp_pin_generation VALUES (1, 0)",
            ),
            postgres=(
                "CREATE TABLE IF NOT EXISTS mcp_pins (scope text NOT NULL,"
                " server text NOT NULL, tool text NOT NULL, sha256 text NOT NULL,"
                " pinned_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (scope, server, tool))",
                "CREATE TABLE IF NOT EXISTS mcp_pin_generation"
                " (id integer PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL)",
                "INSERT INTO mcp_pin_generation VALUES (1, 0) ON CONFLICT DO NOTHING",
            ),
        )
    ]
