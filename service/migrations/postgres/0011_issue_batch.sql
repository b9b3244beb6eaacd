-- Issuance in one call per batch. Before this, a writer batch of k
-- enrollments took k + 3 round trips (BEGIN, one issuance statement per
-- enrollment, the audit append, COMMIT), and on a busy 2-core machine
-- PostgreSQL spent about 40 % of its CPU outside the executor: protocol,
-- portal set-up, transaction start and end. govtrust_issue_batch runs the
-- batch's issuances one after the other, in batch order (each statement
-- sees the ones before, as separate statements in one transaction do: two
-- enrollments of one binding in one batch supersede in order), and, when
-- asked, appends the audit entries of the issuances that were stored with
-- govtrust_audit_append (0008), which takes the chain head last. Called
-- alone, in an implicit transaction, the batch is one round trip.
--
-- The writer's single issuance (a batch that holds other changes, or a
-- change redone on its own) calls it too, with one element and without the
-- append, so the rule is spelt once (service/src/storage/writer/
-- certificates.rs documents it; SQLite runs the same steps from there).
--
-- issues: [{ serial, issuing_ca, kind, user_id, device_id, key,
--   authority_id, not_before, not_after, der (base64), renewed_from,
--   created_at, find_live, outbox_kind, outbox_state_key, outbox_content,
--   claim_id, claim_authority, claim_user, claim_device, claim_key,
--   claim_now, audit }, ...]; audit is the entry to append if the
--   certificate is stored ({"at", "actor", "action", "subject", "details"}).
-- Returns {"first": head seq before the append (null without one),
--   "results": [{"consumed", "inserted", "outbox_id", "challenge"}, ...]}
--   in the order of issues; "challenge" is the claimed challenge's row when
--   the claim was refused (null if there is none), for the writer to say
--   why.
CREATE FUNCTION govtrust_issue_batch(issues json, append boolean) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    i         record;
    prev      text;
    stored    text;
    queued    bigint;
    results   json[] := '{}';
    entries   json[] := '{}';
    keys      text[] := '{}';
    ids       bigint[] := '{}';
    first_seq bigint;
BEGIN
    FOR i IN
        SELECT * FROM json_to_recordset(issues) AS r(
            serial text, issuing_ca text, kind text, user_id text, device_id text,
            key text, authority_id text, not_before bigint, not_after bigint, der text,
            renewed_from text, created_at bigint, find_live boolean,
            outbox_kind text, outbox_state_key text, outbox_content text,
            claim_id text, claim_authority text, claim_user text, claim_device text,
            claim_key text, claim_now bigint, audit json)
    LOOP
        IF i.claim_id IS NOT NULL THEN
            UPDATE challenges SET used_at = i.claim_now
                WHERE id = i.claim_id AND authority_id = i.claim_authority
                AND user_id = i.claim_user AND device_id = i.claim_device
                AND key = i.claim_key AND used_at IS NULL AND expires_at > i.claim_now;
            IF NOT FOUND THEN
                results := results || json_build_object('consumed', false, 'inserted', false,
                    'challenge', (SELECT json_build_object('authority_id', c.authority_id,
                        'user_id', c.user_id, 'device_id', c.device_id, 'key', c.key,
                        'expires_at', c.expires_at, 'used_at', c.used_at)
                        FROM challenges c WHERE c.id = i.claim_id));
                CONTINUE;
            END IF;
        END IF;
        -- The binding's live certificate (find_live_certificate's rule), the
        -- device condition spelt per case so that certificates_live_binding
        -- (0004) answers it exactly.
        prev := i.renewed_from;
        IF prev IS NULL AND i.find_live THEN
            IF i.device_id IS NULL THEN
                SELECT c.serial INTO prev FROM certificates c
                    WHERE c.user_id = i.user_id AND c.kind = i.kind AND c.device_id IS NULL
                    AND c.status = 'valid' AND c.not_after > i.created_at
                    ORDER BY c.not_after DESC LIMIT 1;
            ELSE
                SELECT c.serial INTO prev FROM certificates c
                    WHERE c.user_id = i.user_id AND c.kind = i.kind AND c.device_id = i.device_id
                    AND c.status = 'valid' AND c.not_after > i.created_at
                    ORDER BY c.not_after DESC LIMIT 1;
            END IF;
        END IF;
        stored := NULL;
        INSERT INTO certificates (serial, issuing_ca, kind, user_id, device_id, key,
                authority_id, not_before, not_after, der, status, renewed_from, created_at)
            VALUES (i.serial, i.issuing_ca, i.kind, i.user_id, i.device_id, i.key,
                i.authority_id, i.not_before, i.not_after, decode(i.der, 'base64'), 'valid',
                prev, i.created_at)
            ON CONFLICT (serial) DO NOTHING RETURNING serial INTO stored;
        IF stored IS NULL THEN
            -- Nothing of a refused issuance may remain: give the challenge back.
            IF i.claim_id IS NOT NULL THEN
                UPDATE challenges SET used_at = NULL WHERE id = i.claim_id;
            END IF;
            results := results || json_build_object('consumed', true, 'inserted', false);
            CONTINUE;
        END IF;
        queued := NULL;
        IF i.outbox_kind IS NOT NULL THEN
            INSERT INTO outbox (kind, state_key, content, state, created_at, attempts,
                    next_attempt_at)
                VALUES (i.outbox_kind, i.outbox_state_key, i.outbox_content, 'pending',
                    i.created_at, 0, i.created_at)
                RETURNING id INTO queued;
            keys := keys || i.outbox_state_key;
            ids := ids || queued;
        END IF;
        -- Spelt "neither revoked nor superseded" (SUPERSEDE_SQL says why).
        IF prev IS NOT NULL THEN
            UPDATE certificates SET status = 'superseded'
                WHERE serial = prev AND status NOT IN ('revoked', 'superseded');
        END IF;
        IF i.audit IS NOT NULL THEN
            entries := entries || i.audit;
        END IF;
        results := results || json_build_object('consumed', true, 'inserted', true,
            'outbox_id', queued);
    END LOOP;
    IF append AND (cardinality(entries) > 0 OR cardinality(ids) > 0) THEN
        -- The batch's last item per state key survives: ids drawn in one
        -- session increase.
        first_seq := govtrust_audit_append(array_to_json(entries),
            (SELECT coalesce(json_agg(json_build_object('k', s.k, 'id', s.id)), '[]'::json)
                FROM (SELECT u.k, max(u.id) AS id FROM unnest(keys, ids) AS u(k, id)
                      GROUP BY u.k) s));
    END IF;
    RETURN json_build_object('first', first_seq, 'results', array_to_json(results));
END;
$$;
