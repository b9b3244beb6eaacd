-- Superseding looks up the pending items of one state key on the
-- serialised write path. With only outbox_pending (id) to choose from, a
-- plan cached while the table was still small scanned every pending item
-- (O(backlog) per issuance). This index serves that lookup exactly, so it
-- wins whatever the statistics say.
CREATE INDEX outbox_pending_key ON outbox (state_key) WHERE state = 'pending';
