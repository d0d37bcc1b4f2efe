-- PostgreSQL twin of migrations/sqlite/0001_init.sql: same tables, columns and indexes.
-- Timestamps stay fixed-width RFC 3339 TEXT (as in SQLite) so `tessera db copy` is a straight
-- copy; every TEXT column uses the "C" collation so comparisons and ORDER BY are byte order,
-- exactly like SQLite's BINARY, whatever the database's default collation. Booleans are BOOLEAN,
-- integers BIGINT (the row types decode bool and i64).
CREATE TABLE IF NOT EXISTS license_keys (
    id             TEXT COLLATE "C" PRIMARY KEY,
    key_display    TEXT COLLATE "C" UNIQUE NOT NULL,
    product        TEXT COLLATE "C" NOT NULL,
    tier           TEXT COLLATE "C" NOT NULL,
    seats          BIGINT NOT NULL DEFAULT 1,
    valid_until    TEXT COLLATE "C",
    revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    customer_email TEXT COLLATE "C",
    source         TEXT COLLATE "C" NOT NULL DEFAULT 'manual',
    trial          BOOLEAN NOT NULL DEFAULT FALSE,
    notes          TEXT COLLATE "C",
    created_at     TEXT COLLATE "C" NOT NULL,
    lease_ttl_secs BIGINT
);
CREATE INDEX IF NOT EXISTS idx_license_keys_created ON license_keys (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS activations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    key_id         TEXT COLLATE "C" NOT NULL REFERENCES license_keys(id),
    machine_id     TEXT COLLATE "C" NOT NULL,
    app_version    TEXT COLLATE "C",
    platform       TEXT COLLATE "C",
    activated_at   TEXT COLLATE "C" NOT NULL,
    last_refresh   TEXT COLLATE "C" NOT NULL,
    deactivated_at TEXT COLLATE "C",
    UNIQUE (key_id, machine_id)
);
CREATE INDEX IF NOT EXISTS idx_activations_key_active ON activations (key_id, deactivated_at);
CREATE INDEX IF NOT EXISTS idx_activations_activated ON activations (activated_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS usage_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES license_keys(id),
    machine_id  TEXT COLLATE "C" NOT NULL,
    product     TEXT COLLATE "C" NOT NULL,
    event_type  TEXT COLLATE "C" NOT NULL,
    metadata    TEXT COLLATE "C",
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_usage_key_created ON usage_events (key_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_usage_created ON usage_events (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS flags (
    id           TEXT COLLATE "C" PRIMARY KEY,
    key_id       TEXT COLLATE "C" NOT NULL REFERENCES license_keys(id),
    machine_id   TEXT COLLATE "C",
    product      TEXT COLLATE "C" NOT NULL,
    flag_type    TEXT COLLATE "C" NOT NULL,
    details      TEXT COLLATE "C",
    status       TEXT COLLATE "C" NOT NULL DEFAULT 'open',
    created_at   TEXT COLLATE "C" NOT NULL,
    reviewed_at  TEXT COLLATE "C",
    action_taken TEXT COLLATE "C"
);
CREATE INDEX IF NOT EXISTS idx_flags_status_created ON flags (status, created_at DESC);

CREATE TABLE IF NOT EXISTS audit_log (
    id          TEXT COLLATE "C" PRIMARY KEY,
    entity_type TEXT COLLATE "C" NOT NULL,
    entity_id   TEXT COLLATE "C" NOT NULL,
    action      TEXT COLLATE "C" NOT NULL,
    actor       TEXT COLLATE "C",
    details     TEXT COLLATE "C",
    created_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_created ON audit_log (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit_log (entity_id, created_at DESC);
