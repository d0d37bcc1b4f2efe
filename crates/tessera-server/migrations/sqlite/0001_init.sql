-- The seed's schema, plus indexes for the queries the API makes and a lease TTL for floating seats.
CREATE TABLE IF NOT EXISTS license_keys (
    id             TEXT PRIMARY KEY,
    key_display    TEXT UNIQUE NOT NULL,
    product        TEXT NOT NULL,
    tier           TEXT NOT NULL,
    seats          INTEGER NOT NULL DEFAULT 1,
    valid_until    TEXT,
    revoked        INTEGER NOT NULL DEFAULT 0,
    customer_email TEXT,
    source         TEXT NOT NULL DEFAULT 'manual',
    trial          INTEGER NOT NULL DEFAULT 0,
    notes          TEXT,
    created_at     TEXT NOT NULL,
    lease_ttl_secs INTEGER
);
CREATE INDEX IF NOT EXISTS idx_license_keys_created ON license_keys (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS activations (
    id             TEXT PRIMARY KEY,
    key_id         TEXT NOT NULL REFERENCES license_keys(id),
    machine_id     TEXT NOT NULL,
    app_version    TEXT,
    platform       TEXT,
    activated_at   TEXT NOT NULL,
    last_refresh   TEXT NOT NULL,
    deactivated_at TEXT,
    UNIQUE (key_id, machine_id)
);
CREATE INDEX IF NOT EXISTS idx_activations_key_active ON activations (key_id, deactivated_at);
CREATE INDEX IF NOT EXISTS idx_activations_activated ON activations (activated_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS usage_events (
    id          TEXT PRIMARY KEY,
    key_id      TEXT NOT NULL REFERENCES license_keys(id),
    machine_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    metadata    TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_usage_key_created ON usage_events (key_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_usage_created ON usage_events (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS flags (
    id           TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL REFERENCES license_keys(id),
    machine_id   TEXT,
    product      TEXT NOT NULL,
    flag_type    TEXT NOT NULL,
    details      TEXT,
    status       TEXT NOT NULL DEFAULT 'open',
    created_at   TEXT NOT NULL,
    reviewed_at  TEXT,
    action_taken TEXT
);
CREATE INDEX IF NOT EXISTS idx_flags_status_created ON flags (status, created_at DESC);

CREATE TABLE IF NOT EXISTS audit_log (
    id          TEXT PRIMARY KEY,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT,
    details     TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_audit_created ON audit_log (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit_log (entity_id, created_at DESC);
