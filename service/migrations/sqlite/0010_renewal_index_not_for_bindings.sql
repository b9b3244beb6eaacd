-- The live-binding lookup of every enrollment (find_live_certificate, and
-- the issuance statement's "prev") could still walk certificates_renewal_due
-- in spite of certificates_live_binding (0004). Both are partial indexes on
-- status = 'valid', so both answer "status = 'valid' AND not_after > $n
-- ORDER BY not_after DESC LIMIT 1"; while the table is a few hundred rows,
-- with no statistics yet, the two plans cost the same to the planner, and a
-- generic plan cached then kept the renewal index: every valid certificate,
-- newest first, filtered, per enrollment. Measured with govtrust-bench on
-- PostgreSQL (autovacuum off, so nothing re-planned): half of the pool's
-- connections had that plan, 667 buffer reads per enrollment at 20,000
-- certificates, and the rate fell from 900 to 460 enrollments/s.
--
-- The renewal claim is the only statement that needs this index, and it
-- asks only for device and identity certificates. With that condition in
-- the predicate the binding lookup, whose kind is a parameter, cannot use
-- the index under a generic plan, whatever the statistics say; and the index
-- no longer holds the certificates no renewal looks at. Keep in step with
-- the other backend's 0010 and with Store::claim_due_renewals, whose
-- condition must stay spelt exactly so.
DROP INDEX certificates_renewal_due;
CREATE INDEX certificates_renewal_due ON certificates (not_after)
    WHERE status = 'valid' AND kind IN ('device', 'identity');
