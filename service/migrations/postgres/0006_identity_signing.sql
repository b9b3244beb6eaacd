-- The identity-signing certificate kind (EKU ARC.5, io.element.x509;
-- docs/profile.md §5.7): enrollments of kind `identity_signing` store a
-- challenge and a certificate of that kind. Keep in step with
-- migrations/sqlite/0006_identity_signing.sql.
ALTER TABLE challenges DROP CONSTRAINT challenges_kind_check,
    ADD CONSTRAINT challenges_kind_check
    CHECK (kind IN ('device', 'identity', 'identity_signing'));
ALTER TABLE certificates DROP CONSTRAINT certificates_kind_check,
    ADD CONSTRAINT certificates_kind_check
    CHECK (kind IN ('device', 'identity', 'enrollment_client', 'identity_signing'));
