-- API-key mode: keys stored only as SHA-256 hashes, and the instances that fetch tokens.
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    key_hash    TEXT UNIQUE NOT NULL,
    key_prefix  TEXT NOT NULL,
    product     TEXT NOT NULL,
    tier        TEXT NOT NULL,
    name        TEXT NOT NULL,
    org_name    TEXT,
    trial       INTEGER NOT NULL DEFAULT 0,
    expires_at  TEXT,
    revoked     INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_api_keys_created ON api_keys (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS instances (
    id          TEXT PRIMARY KEY,
    api_key_id  TEXT NOT NULL REFERENCES api_keys(id),
    instance_id TEXT NOT NULL,
    version     TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    fetch_count INTEGER NOT NULL DEFAULT 1,
    UNIQUE (api_key_id, instance_id)
);
CREATE INDEX IF NOT EXISTS idx_instances_last_seen ON instances (last_seen DESC, id DESC);
