-- The citizen attestation kind (EKU ARC.6, level of assurance in ARC.12;
-- docs/profile.md §5.8): a pseudonymous citizen's enrollment of kind
-- `citizen` stores a challenge and a certificate of that kind. Keep in
-- step with migrations/sqlite/0007_citizen_attestation.sql.
ALTER TABLE challenges DROP CONSTRAINT challenges_kind_check,
    ADD CONSTRAINT challenges_kind_check
    CHECK (kind IN ('device', 'identity', 'identity_signing', 'citizen'));
ALTER TABLE certificates DROP CONSTRAINT certificates_kind_check,
    ADD CONSTRAINT certificates_kind_check
    CHECK (kind IN ('device', 'identity', 'enrollment_client', 'identity_signing', 'citizen'));
