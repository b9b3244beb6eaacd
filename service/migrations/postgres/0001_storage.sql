-- govtrust storage schema, PostgreSQL flavour. Keep in step with
-- migrations/sqlite/0001_storage.sql: same tables, columns and meaning.
-- Times are unix milliseconds (BIGINT); JSON is stored as TEXT.

CREATE TABLE authorities (
    id            TEXT PRIMARY KEY,
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
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE challenges (
    id           TEXT PRIMARY KEY,
    authority_id TEXT NOT NULL REFERENCES authorities (id),
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('device', 'identity')),
    proof        TEXT NOT NULL CHECK (proof IN ('to_device', 'signature')),
    key          TEXT NOT NULL,
    device_key   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);
CREATE INDEX challenges_expires_at ON challenges (expires_at);

CREATE TABLE certificates (
    serial                TEXT PRIMARY KEY,
    issuing_ca            TEXT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'enrollment_client')),
    user_id               TEXT,
    device_id             TEXT,
    key                   TEXT NOT NULL,
    authority_id          TEXT NOT NULL REFERENCES authorities (id),
    not_before            BIGINT NOT NULL,
    not_after             BIGINT NOT NULL,
    der                   BYTEA NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('valid', 'revoked', 'superseded')),
    renewed_from          TEXT REFERENCES certificates (serial),
    created_at            BIGINT NOT NULL,
    renewal_claimed_until BIGINT
);
CREATE INDEX certificates_binding ON certificates (user_id, kind, device_id, not_after);
CREATE INDEX certificates_authority ON certificates (authority_id, serial);
CREATE INDEX certificates_renewal_due ON certificates (not_after) WHERE status = 'valid';

CREATE TABLE revocations (
    serial     TEXT PRIMARY KEY REFERENCES certificates (serial),
    issuing_ca TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX revocations_issuing_ca ON revocations (issuing_ca, serial);

-- One row per issuing CA: CRL number allocation, generation lease and the
-- latest signed CRL.
CREATE TABLE crls (
    issuing_ca    TEXT PRIMARY KEY,
    last_number   BIGINT NOT NULL,
    claimed_until BIGINT,
    crl_number    BIGINT,
    der           BYTEA,
    this_update   BIGINT,
    next_update   BIGINT
);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    state_key       TEXT NOT NULL,
    content         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'published', 'superseded')),
    superseded_by   BIGINT,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT,
    last_error      TEXT,
    published_at    BIGINT,
    event_id        TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_state_key ON outbox (state_key, id);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject);

-- The chain head: seq and hash of the last entry. Appenders lock this row
-- (SELECT ... FOR UPDATE), which serialises appends across replicas.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only: refuse UPDATE and DELETE on the audit log.
CREATE FUNCTION govtrust_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION govtrust_audit_log_append_only();

CREATE TABLE operator_tokens (
    name       TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
