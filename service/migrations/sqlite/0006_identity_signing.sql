-- The identity-signing certificate kind (EKU ARC.5, io.element.x509;
-- docs/profile.md §5.7): enrollments of kind `identity_signing` store a
-- challenge and a certificate of that kind. SQLite cannot alter a CHECK
-- constraint, so `challenges` and `certificates` are rebuilt with the
-- wider one (same columns, same order, same indexes). Foreign keys to
-- `certificates` (revocations, renewed_from) are checked at commit: the
-- rows are copied aside, the table is re-created and the rows come back,
-- so every reference has its row again when the transaction ends.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE challenges_new (
    id           TEXT PRIMARY KEY NOT NULL,
    authority_id TEXT NOT NULL REFERENCES authorities (id),
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'identity_signing')),
    proof        TEXT NOT NULL CHECK (proof IN ('to_device', 'signature')),
    key          TEXT NOT NULL,
    device_key   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
INSERT INTO challenges_new SELECT * FROM challenges;
DROP TABLE challenges;
ALTER TABLE challenges_new RENAME TO challenges;
CREATE INDEX challenges_expires_at ON challenges (expires_at);

CREATE TABLE certificates_copy AS SELECT * FROM certificates;
DROP TABLE certificates;
CREATE TABLE certificates (
    serial                TEXT PRIMARY KEY NOT NULL,
    issuing_ca            TEXT NOT NULL,
    kind                  TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'enrollment_client', 'identity_signing')),
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
INSERT INTO certificates SELECT * FROM certificates_copy;
DROP TABLE certificates_copy;
CREATE INDEX certificates_binding ON certificates (user_id, kind, device_id, not_after);
CREATE INDEX certificates_authority ON certificates (authority_id, serial);
CREATE INDEX certificates_renewal_due ON certificates (not_after) WHERE status = 'valid';
CREATE INDEX certificates_live_binding ON certificates (user_id, kind, device_id, not_after)
    WHERE status = 'valid';
CREATE INDEX certificates_issued ON certificates (created_at, serial);
CREATE INDEX certificates_authority_issued ON certificates (authority_id, created_at, serial);
CREATE INDEX certificates_user_issued ON certificates (user_id, created_at, serial);
