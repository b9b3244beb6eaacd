-- The audit append on the serialised path, in one round trip: the writer
-- calls govtrust_audit_append at the end of its transaction (after all of
-- the batch's other statements), and the chain head stays locked from here
-- to the commit. The function locks the head, chains the batch's entries
-- (the same hash as `audit_hash` in service/src/storage/audit.rs, which
-- `Store::verify_audit_chain` recomputes), inserts them, supersedes the
-- pending outbox items the batch's items replace, and moves the head.
-- Returns the head's seq before the batch (the entries get the next ones).

-- str(s) of the hash encoding: u64be(byte length) || UTF-8 bytes.
CREATE FUNCTION govtrust_audit_field(s text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT int8send(octet_length(convert_to(s, 'UTF8'))::bigint) || convert_to(s, 'UTF8') $$;

-- entries: [{"at", "actor", "action", "subject", "details"}, ...] in chain
-- order; survivors: [{"k": state key, "id": outbox id}, ...], the item
-- that stays pending for each state key the batch queued an item for.
CREATE FUNCTION govtrust_audit_append(entries json, survivors json) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
    first_seq bigint;
    next_hash text;
    e         record;
    k         record;
    v_seqs      bigint[] := '{}';
    v_ats       bigint[] := '{}';
    v_actors    text[] := '{}';
    v_actions   text[] := '{}';
    v_subjects  text[] := '{}';
    v_details   text[] := '{}';
    v_prevs     text[] := '{}';
    v_hashes    text[] := '{}';
BEGIN
    -- Held until the commit: appends of all writers and replicas queue
    -- here, and the statements below see everything committed before.
    SELECT a.seq, a.hash INTO STRICT head_seq, head_hash
        FROM audit_head a WHERE a.id = 1 FOR UPDATE;
    first_seq := head_seq;
    FOR e IN
        SELECT * FROM json_to_recordset(entries)
            AS r(at bigint, actor text, action text, subject text, details text)
    LOOP
        IF e.at IS NULL OR e.actor IS NULL OR e.action IS NULL OR e.details IS NULL THEN
            RAISE EXCEPTION 'audit entry without at, actor, action or details'
                USING ERRCODE = '22004';
        END IF;
        head_seq := head_seq + 1;
        -- SHA-256("govtrust-audit-v1\0" || str(prev_hash) || u64be(seq) ||
        -- i64be(at) || str(actor) || str(action) || opt(subject) ||
        -- str(details)), lower-case hex.
        next_hash := encode(sha256(
            '\x676f7674727573742d61756469742d763100'::bytea
            || govtrust_audit_field(head_hash)
            || int8send(head_seq)
            || int8send(e.at)
            || govtrust_audit_field(e.actor)
            || govtrust_audit_field(e.action)
            || CASE WHEN e.subject IS NULL THEN '\x00'::bytea
                    ELSE '\x01'::bytea || govtrust_audit_field(e.subject) END
            || govtrust_audit_field(e.details)), 'hex');
        v_seqs := array_append(v_seqs, head_seq);
        v_ats := array_append(v_ats, e.at);
        v_actors := array_append(v_actors, e.actor);
        v_actions := array_append(v_actions, e.action);
        v_subjects := array_append(v_subjects, e.subject);
        v_details := array_append(v_details, e.details);
        v_prevs := array_append(v_prevs, head_hash);
        v_hashes := array_append(v_hashes, next_hash);
        head_hash := next_hash;
    END LOOP;
    IF head_seq > first_seq THEN
        INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
        SELECT * FROM unnest(v_seqs, v_ats, v_actors, v_actions, v_subjects, v_details,
                      v_prevs, v_hashes);
        UPDATE audit_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    END IF;
    -- One pending item per state key: the batch's (committing last) wins
    -- over every item committed before, whatever their ids.
    -- Key by key, so that each lookup uses outbox_pending_key whatever the
    -- cached plan.
    FOR k IN SELECT * FROM json_to_recordset(survivors) AS s(k text, id bigint) LOOP
        UPDATE outbox SET state = 'superseded', superseded_by = k.id
            WHERE state_key = k.k AND state = 'pending' AND id <> k.id;
    END LOOP;
    RETURN first_seq;
END;
$$;
