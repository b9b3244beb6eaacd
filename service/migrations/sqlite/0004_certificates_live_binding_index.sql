-- find_live_certificate (every enrollment) looks for the newest valid
-- certificate of one (user, kind, device). A generic plan cached while the
-- table was small walked certificates_renewal_due (every valid certificate,
-- newest first) and filtered: O(valid certificates) per enrollment. This
-- index answers the query exactly (equality on the binding, status in the
-- predicate, not_after for the ORDER BY ... LIMIT 1), so it wins whatever
-- the statistics say.
CREATE INDEX certificates_live_binding ON certificates (user_id, kind, device_id, not_after)
    WHERE status = 'valid';
