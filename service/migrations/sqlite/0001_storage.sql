-- govtrust storage schema, SQLite flavour. Keep in step with
-- migrations/postgres/0001_storage.sql: same tables, columns and meaning.
-- Times are unix milliseconds (INTEGER); JSON is stored as TEXT.

CREATE TABLE authorities (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    unit          TEXT,
    street        TEXT,
    postal_code   TEXT,
    locality      TEXT,
    state         TEXT,
    country       TEXT,
    servers       TEXT NOT NULL,           -- JSON array of Matrix server names
    user_patterns TEXT NOT NULL,           -- JSON array of localpart patterns
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    contact       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE challenges (
    id           TEXT PRIMARY KEY NOT NULL,
    authority_id TEXT NOT NULL REFERENCES authorities (id),
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('device', 'identity')),
    proof        TEXT NOT NULL CHECK (proof IN ('to_device', 'signature')),
    key          TEXT NOT NULL,
    device_key   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE INDEX challenges_expires_at ON challenges (expires_at);

CREATE TABLE certificates (
    serial                TEXT PRIMARY KEY NOT NULL,
    issuing_ca            TEXT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'enrollment_client')),
    user_id               TEXT,
    device_id             TEXT,
    key                   TEXT NOT NULL,
    authority_id          TEXT NOT NULL REFERENCES authorities (id),
    not_before            INTEGER NOT NULL,
    not_after             INTEGER NOT NULL,
    der                   BLOB NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('valid', 'revoked', 'superseded')),
    renewed_from          TEXT REFERENCES certificates (serial),
    created_at            INTEGER NOT NULL,
    renewal_claimed_until INTEGER
);
CREATE INDEX certificates_binding ON certificates (user_id, kind, device_id, not_after);
CREATE INDEX certificates_authority ON certificates (authority_id, serial);
CREATE INDEX certificates_renewal_due ON certificates (not_after) WHERE status = 'valid';

CREATE TABLE revocations (
    serial     TEXT PRIMARY KEY NOT NULL REFERENCES certificates (serial),
    issuing_ca TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revocations_issuing_ca ON revocations (issuing_ca, serial);

-- One row per issuing CA: CRL number allocation, generation lease and the
-- latest signed CRL.
CREATE TABLE crls (
    issuing_ca    TEXT PRIMARY KEY NOT NULL,
    last_number   INTEGER NOT NULL,
    claimed_until INTEGER,
    crl_number    INTEGER,
    der           BLOB,
    this_update   INTEGER,
    next_update   INTEGER
);

-- AUTOINCREMENT: ids are never reused, so "larger id = newer" always holds.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    state_key       TEXT NOT NULL,
    content         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'published', 'superseded')),
    superseded_by   INTEGER,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    last_error      TEXT,
    published_at    INTEGER,
    event_id        TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_state_key ON outbox (state_key, id);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject);

-- The chain head: seq and hash of the last entry. SQLite serialises writers
-- (BEGIN IMMEDIATE), so appends are ordered without an explicit row lock.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: refuse UPDATE and DELETE on the audit log.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TABLE operator_tokens (
    name       TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
