-- The citizen attestation kind (EKU ARC.6, level of assurance in ARC.12;
-- docs/profile.md §5.8): a pseudonymous citizen's enrollment of kind
-- `citizen` stores a challenge and a certificate of that kind. As in
-- 0006, SQLite cannot alter a CHECK constraint, so `challenges` and
-- `certificates` are rebuilt with the wider one (same columns, same order,
-- same indexes), foreign keys to `certificates` checked at commit. Keep in
-- step with migrations/postgres/0007_citizen_attestation.sql.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE challenges_new (
    id           TEXT PRIMARY KEY NOT NULL,
    authority_id TEXT NOT NULL REFERENCES authorities (id),
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'identity_signing', 'citizen')),
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
    kind                  TEXT NOT NULL CHECK (kind IN ('device', 'identity', 'enrollment_client', 'identity_signing', 'citizen')),
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
