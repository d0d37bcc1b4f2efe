-- API-key mode: keys stored only as SHA-256 hashes, and the instances that fetch tokens.
-- PostgreSQL twin of migrations/sqlite/0002_api_keys.sql (see 0001 for the type choices).
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    key_hash    TEXT COLLATE "C" UNIQUE NOT NULL,
    key_prefix  TEXT COLLATE "C" NOT NULL,
    product     TEXT COLLATE "C" NOT NULL,
    tier        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    org_name    TEXT COLLATE "C",
    trial       BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at  TEXT COLLATE "C",
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TEXT COLLATE "C" NOT NULL,
    updated_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_api_keys_created ON api_keys (created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    api_key_id  TEXT COLLATE "C" NOT NULL REFERENCES api_keys(id),
    instance_id TEXT COLLATE "C" NOT NULL,
    version     TEXT COLLATE "C",
    first_seen  TEXT COLLATE "C" NOT NULL,
    last_seen   TEXT COLLATE "C" NOT NULL,
    fetch_count BIGINT NOT NULL DEFAULT 1,
    UNIQUE (api_key_id, instance_id)
);
CREATE INDEX IF NOT EXISTS idx_instances_last_seen ON instances (last_seen DESC, id DESC);
