-- Claims walk pending outbox items in id order (oldest first) and stop at
-- the limit; an index on (next_attempt_at, id) made them sort every pending
-- item first. Also serves outbox_depth() as an index-only count.
DROP INDEX outbox_due;
CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending';
