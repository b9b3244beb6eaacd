-- Operator tokens get roles, an optional expiry, revocation and rotation
-- times (issue #12). Tokens that exist already (the first-run token written
-- to <data_dir>/operator-token) become `admin`, which is what they could do
-- before. `roles` is a comma-separated list of role names.
ALTER TABLE operator_tokens ADD COLUMN roles TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE operator_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE operator_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE operator_tokens ADD COLUMN rotated_at INTEGER;

-- GET /v1/certificates pages by (created_at, serial), the issuance order,
-- optionally narrowed to one authority or one user.
CREATE INDEX certificates_issued ON certificates (created_at, serial);
CREATE INDEX certificates_authority_issued ON certificates (authority_id, created_at, serial);
CREATE INDEX certificates_user_issued ON certificates (user_id, created_at, serial);

-- GET /v1/audit/log?since=… finds its first entry by time.
CREATE INDEX audit_log_at ON audit_log (at, seq);
