//! The operations of [`Store`]: audited changes go through the writer task,
//! reads and lease claims run directly on the pool.

use govtrust_verifier::AuthorityRecord;
use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::oneshot;

use super::audit::{AuditEntry, AuditRecord, AuditReport, ChainVerifier};
use super::model::{
    AgencyStanding, Authority, AuthorityStatus, Certificate, CertificateKind, CertificateStatus,
    Challenge, ChallengeClaim, ChallengeOutcome, NewCertificate, NewOutboxItem, OperatorToken,
    OutboxRecord, OutboxState, Revocation, RevokeOutcome, StoredCrl,
};
use super::writer::{
    to_i64, Job, Op, Outcome, PreparedAudit, PreparedAuthority, PreparedOutbox, Reply, Work,
};
use super::{Backend, Store, StoreError, StoreResult};

/// Columns of `certificates` in the order [`cert_from_row`] reads them.
macro_rules! cert_cols {
    () => {
        "serial, issuing_ca, kind, user_id, device_id, key, authority_id, not_before, \
         not_after, der, status, renewed_from, created_at, renewal_claimed_until"
    };
}

/// Columns of `outbox` in the order [`outbox_from_row`] reads them.
macro_rules! outbox_cols {
    () => {
        "id, kind, state_key, content, state, created_at, attempts, next_attempt_at, \
         claimed_until, last_error, published_at, event_id"
    };
}

/// Columns of `authorities` in the order [`authority_from_row`] reads them.
macro_rules! authority_cols {
    () => {
        "id, name, unit, street, postal_code, locality, state, country, servers, \
         user_patterns, status, contact, created_at, updated_at"
    };
}

/// Columns of `challenges`, named `ch_*` so that they can sit beside
/// another table's in one row, in the order [`challenge_from_row`] reads
/// them.
macro_rules! challenge_cols {
    () => {
        "id AS ch_id, authority_id AS ch_authority_id, user_id AS ch_user_id, \
         device_id AS ch_device_id, created_at AS ch_created_at, expires_at AS ch_expires_at, \
         used_at AS ch_used_at, kind AS ch_kind, proof AS ch_proof, key AS ch_key, \
         device_key AS ch_device_key"
    };
}

/// Entries read per query while verifying the audit chain.
const AUDIT_PAGE: i64 = 5_000;

fn prepare_audit(entry: AuditEntry) -> StoreResult<PreparedAudit> {
    let details = serde_json::to_string(&entry.details)
        .map_err(|e| StoreError::InvalidInput(format!("audit details: {e}")))?;
    Ok(PreparedAudit {
        actor: entry.actor,
        action: entry.action,
        subject: entry.subject,
        details,
    })
}

fn prepare_outbox(item: NewOutboxItem) -> StoreResult<PreparedOutbox> {
    let content = serde_json::to_string(&item.content)
        .map_err(|e| StoreError::InvalidInput(format!("outbox content: {e}")))?;
    Ok(PreparedOutbox {
        kind: item.kind,
        state_key: item.state_key,
        content,
    })
}

fn prepare_authority(authority: Authority) -> StoreResult<Box<PreparedAuthority>> {
    let json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| StoreError::InvalidInput(e.to_string()))
    };
    Ok(Box::new(PreparedAuthority {
        servers: json(&authority.servers)?,
        user_patterns: json(&authority.user_patterns)?,
        authority,
    }))
}

fn duplicate(entity: &'static str, key: &str) -> StoreError {
    StoreError::Duplicate {
        entity,
        key: key.to_owned(),
    }
}

fn not_found(entity: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_owned(),
    }
}

fn authority_from_row(row: &AnyRow) -> StoreResult<Authority> {
    let servers: String = row.try_get("servers")?;
    let patterns: String = row.try_get("user_patterns")?;
    let status: String = row.try_get("status")?;
    Ok(Authority {
        record: AuthorityRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            unit: row.try_get("unit")?,
            street: row.try_get("street")?,
            postal_code: row.try_get("postal_code")?,
            locality: row.try_get("locality")?,
            state: row.try_get("state")?,
            country: row.try_get("country")?,
        },
        servers: serde_json::from_str(&servers)
            .map_err(|e| StoreError::Corrupt(format!("authority servers: {e}")))?,
        user_patterns: serde_json::from_str(&patterns)
            .map_err(|e| StoreError::Corrupt(format!("authority user_patterns: {e}")))?,
        status: AuthorityStatus::parse(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        contact: row.try_get("contact")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn challenge_from_row(row: &AnyRow) -> StoreResult<Challenge> {
    Ok(Challenge {
        id: row.try_get("ch_id")?,
        authority_id: row.try_get("ch_authority_id")?,
        user_id: row.try_get("ch_user_id")?,
        device_id: row.try_get("ch_device_id")?,
        kind: CertificateKind::parse(&row.try_get::<String, _>("ch_kind")?)?,
        proof: row.try_get("ch_proof")?,
        key: row.try_get("ch_key")?,
        device_key: row.try_get("ch_device_key")?,
        created_at: row.try_get("ch_created_at")?,
        expires_at: row.try_get("ch_expires_at")?,
        used_at: row.try_get("ch_used_at")?,
    })
}

fn cert_from_row(row: &AnyRow) -> StoreResult<Certificate> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(Certificate {
        serial: row.try_get("serial")?,
        issuing_ca: row.try_get("issuing_ca")?,
        kind: CertificateKind::parse(&kind)?,
        user_id: row.try_get("user_id")?,
        device_id: row.try_get("device_id")?,
        key: row.try_get("key")?,
        authority_id: row.try_get("authority_id")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        der: row.try_get("der")?,
        status: CertificateStatus::parse(&status)?,
        renewed_from: row.try_get("renewed_from")?,
        created_at: row.try_get("created_at")?,
        renewal_claimed_until: row.try_get("renewal_claimed_until")?,
    })
}

fn outbox_from_row(row: &AnyRow) -> StoreResult<OutboxRecord> {
    let content: String = row.try_get("content")?;
    let state: String = row.try_get("state")?;
    Ok(OutboxRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        state_key: row.try_get("state_key")?,
        content: serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("outbox content: {e}")))?,
        state: OutboxState::parse(&state)?,
        created_at: row.try_get("created_at")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        claimed_until: row.try_get("claimed_until")?,
        last_error: row.try_get("last_error")?,
        published_at: row.try_get("published_at")?,
        event_id: row.try_get("event_id")?,
    })
}

fn audit_from_row(row: &AnyRow) -> StoreResult<AuditRecord> {
    let seq: i64 = row.try_get("seq")?;
    Ok(AuditRecord {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

fn limit_i64(limit: u32) -> i64 {
    i64::from(limit)
}

impl Store {
    /// Hands a change to its writer task and waits for its committed result.
    async fn submit(&self, op: Op, audit: Option<AuditEntry>, at: i64) -> StoreResult<Reply> {
        let audit = audit.map(prepare_audit).transpose()?;
        let writers = &self.inner.writers;
        let writer = match op {
            Op::InsertChallenge(_) | Op::ConsumeChallenge(_) => &writers.challenges,
            _ => &writers.audited,
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            work: Work { op, audit, at },
            reply,
        };
        writer
            .send(job)
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        rx.await.map_err(|_| StoreError::WriterClosed)?
    }

    // ----- authorities -------------------------------------------------

    /// Stores a new authority. [`StoreError::Duplicate`] if the id exists.
    pub async fn insert_authority(
        &self,
        authority: Authority,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let id = authority.record.id.clone();
        let at = authority.created_at;
        let op = Op::InsertAuthority(prepare_authority(authority)?);
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Duplicate => Err(duplicate("authority", &id)),
            _ => Ok(()),
        }
    }

    /// Replaces an authority's fields (all but `id` and `created_at`).
    /// [`StoreError::NotFound`] if it does not exist.
    pub async fn update_authority(
        &self,
        authority: Authority,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let id = authority.record.id.clone();
        let at = authority.updated_at;
        let op = Op::UpdateAuthority(prepare_authority(authority)?);
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("authority", &id)),
            _ => Ok(()),
        }
    }

    /// Suspends or reactivates an authority.
    pub async fn set_authority_status(
        &self,
        id: &str,
        status: AuthorityStatus,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let op = Op::SetAuthorityStatus {
            id: id.to_owned(),
            status,
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("authority", id)),
            _ => Ok(()),
        }
    }

    /// The authority with that id.
    pub async fn get_authority(&self, id: &str) -> StoreResult<Option<Authority>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            authority_cols!(),
            " FROM authorities WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(authority_from_row).transpose()
    }

    /// Everything an agency request needs to know about its caller, in one
    /// round trip (every agency request pays it): the authority record
    /// (`None` if not registered), the status of the client certificate it
    /// authenticated with (`None` if this service did not issue it), and,
    /// for an enrollment, the challenge it answers (`None` if unknown).
    pub async fn agency_standing(
        &self,
        authority_id: &str,
        client_serial: &str,
        challenge_id: Option<&str>,
    ) -> StoreResult<AgencyStanding> {
        let row = sqlx::query(concat!(
            "SELECT client_status, ",
            authority_cols!(),
            ", ch.* FROM (SELECT (SELECT status FROM certificates WHERE serial = $2) \
             AS client_status) AS s \
             LEFT JOIN authorities ON authorities.id = $1 \
             LEFT JOIN (SELECT ",
            challenge_cols!(),
            " FROM challenges WHERE id = $3) AS ch ON TRUE"
        ))
        .bind(authority_id)
        .bind(client_serial)
        .bind(challenge_id)
        .fetch_one(self.pool())
        .await?;
        let client_status = row
            .try_get::<Option<String>, _>("client_status")?
            .map(|s| CertificateStatus::parse(&s))
            .transpose()?;
        let authority = match row.try_get::<Option<String>, _>("id")? {
            Some(_) => Some(authority_from_row(&row)?),
            None => None,
        };
        let challenge = match row.try_get::<Option<String>, _>("ch_id")? {
            Some(_) => Some(challenge_from_row(&row)?),
            None => None,
        };
        Ok(AgencyStanding {
            authority,
            client_status,
            challenge,
        })
    }

    /// Up to `limit` authorities ordered by id, starting after `after_id`
    /// (keyset paging: pass the last id of the previous page).
    pub async fn list_authorities(
        &self,
        after_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Authority>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            authority_cols!(),
            " FROM authorities WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id.unwrap_or(""))
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(authority_from_row).collect()
    }

    // ----- service support ---------------------------------------------

    /// Checks the database answers (readiness probe).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    /// Time (unix ms) of the newest revocation of an issuing CA, to tell
    /// whether the latest CRL already lists it.
    pub async fn newest_revocation_at(&self, issuing_ca: &str) -> StoreResult<Option<i64>> {
        let row =
            sqlx::query("SELECT MAX(revoked_at) AS at FROM revocations WHERE issuing_ca = $1")
                .bind(issuing_ca)
                .fetch_one(self.pool())
                .await?;
        Ok(row.try_get::<Option<i64>, _>("at")?)
    }

    /// The event ID of the newest outbox item for `state_key`, if that item
    /// has been published.
    pub async fn published_event_id(&self, state_key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT state, event_id FROM outbox WHERE state_key = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(state_key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) if row.try_get::<String, _>("state")? == "published" => {
                row.try_get("event_id")?
            }
            _ => None,
        })
    }

    // ----- challenges --------------------------------------------------

    /// Stores a fresh challenge. Not audited: issuing a challenge grants
    /// nothing; the enrollment that consumes it is audited. Goes through the
    /// writer like every change, so challenges share its batched commits.
    /// [`StoreError::Duplicate`] if the id exists.
    pub async fn insert_challenge(&self, challenge: &Challenge) -> StoreResult<()> {
        let op = Op::InsertChallenge(Box::new(challenge.clone()));
        match self.submit(op, None, challenge.created_at).await?.outcome {
            Outcome::Duplicate => Err(duplicate("challenge", &challenge.id)),
            _ => Ok(()),
        }
    }

    /// Consumes a challenge if it is unused, unexpired at `claim.now` and
    /// bound to exactly the claimed authority, user, device and key, without
    /// issuing anything (burning a challenge whose delivery went wrong). One
    /// conditional `UPDATE` decides, so across all replicas at most one
    /// caller ever gets [`ChallengeOutcome::Ok`]; other outcomes are
    /// classified afterwards.
    pub async fn consume_challenge(&self, claim: ChallengeClaim) -> StoreResult<ChallengeOutcome> {
        let now = claim.now;
        Ok(
            match self
                .submit(Op::ConsumeChallenge(claim), None, now)
                .await?
                .outcome
            {
                Outcome::Challenge(refused) => refused,
                _ => ChallengeOutcome::Ok,
            },
        )
    }

    /// The challenge with that id (for diagnostics).
    pub async fn get_challenge(&self, id: &str) -> StoreResult<Option<Challenge>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            challenge_cols!(),
            " FROM challenges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    /// Deletes challenges that expired before `before`; returns how many.
    pub async fn purge_expired_challenges(&self, before: i64) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let res = sqlx::query("DELETE FROM challenges WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected())
    }

    // ----- certificates ------------------------------------------------

    /// Stores an issued certificate together with its audit entry and (for
    /// attestations) the outbox item announcing it, in one transaction. If
    /// `renewed_from` is set, that certificate becomes superseded in the
    /// same transaction. Returns the audit entry's seq.
    ///
    /// [`StoreError::Duplicate`] if the serial exists (nothing is written);
    /// [`StoreError::Constraint`] for an unknown authority or renewed serial.
    pub async fn insert_certificate(
        &self,
        cert: NewCertificate,
        outbox: Option<NewOutboxItem>,
        audit: AuditEntry,
    ) -> StoreResult<u64> {
        match self.issue(cert, outbox, audit, None).await? {
            Ok(seq) => Ok(seq),
            Err(outcome) => Err(StoreError::Corrupt(format!(
                "issuance without a challenge refused by {outcome:?}"
            ))),
        }
    }

    /// An enrollment's write: consumes the claimed challenge and stores the
    /// certificate (as [`Store::insert_certificate`]) in one transaction,
    /// so a challenge is used up exactly when a certificate is stored for
    /// it. `Ok(Err(outcome))` when the challenge is refused (unknown,
    /// expired, already used, bound to someone else): nothing is written.
    pub async fn enroll_certificate(
        &self,
        claim: ChallengeClaim,
        cert: NewCertificate,
        outbox: Option<NewOutboxItem>,
        audit: AuditEntry,
    ) -> StoreResult<Result<u64, ChallengeOutcome>> {
        self.issue(cert, outbox, audit, Some(claim)).await
    }

    async fn issue(
        &self,
        cert: NewCertificate,
        outbox: Option<NewOutboxItem>,
        audit: AuditEntry,
        claim: Option<ChallengeClaim>,
    ) -> StoreResult<Result<u64, ChallengeOutcome>> {
        let serial = cert.serial.clone();
        let at = cert.created_at;
        let op = Op::IssueCertificate {
            cert: Box::new(cert),
            outbox: outbox.map(prepare_outbox).transpose()?,
            claim,
        };
        let reply = self.submit(op, Some(audit), at).await?;
        match (reply.outcome, reply.audit_seq) {
            (Outcome::Challenge(refused), _) => Ok(Err(refused)),
            (Outcome::Duplicate, _) => Err(duplicate("certificate", &serial)),
            (_, Some(seq)) => Ok(Ok(seq)),
            (_, None) => Err(StoreError::Corrupt("issuance without audit entry".into())),
        }
    }

    /// The certificate with that serial.
    pub async fn get_certificate(&self, serial: &str) -> StoreResult<Option<Certificate>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// The current certificate for a binding: status valid and not expired
    /// at `now`; the one that lasts longest if there are several.
    /// `device_id` is `None` for identity certificates.
    pub async fn find_live_certificate(
        &self,
        user_id: &str,
        kind: CertificateKind,
        device_id: Option<&str>,
        now: i64,
    ) -> StoreResult<Option<Certificate>> {
        let query = match device_id {
            Some(device) => sqlx::query(concat!(
                "SELECT ",
                cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id = $3 \
                 AND status = 'valid' AND not_after > $4 ORDER BY not_after DESC LIMIT 1"
            ))
            .bind(user_id)
            .bind(kind.as_str())
            .bind(device)
            .bind(now),
            None => sqlx::query(concat!(
                "SELECT ",
                cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id IS NULL \
                 AND status = 'valid' AND not_after > $3 ORDER BY not_after DESC LIMIT 1"
            ))
            .bind(user_id)
            .bind(kind.as_str())
            .bind(now),
        };
        let row = query.fetch_optional(self.pool()).await?;
        row.as_ref().map(cert_from_row).transpose()
    }

    /// Every certificate for a binding that a verifier would still accept
    /// at `now` (valid or superseded, not expired): what must be revoked
    /// when the device or key is compromised.
    pub async fn list_unrevoked_for_binding(
        &self,
        user_id: &str,
        kind: CertificateKind,
        device_id: Option<&str>,
        now: i64,
    ) -> StoreResult<Vec<Certificate>> {
        let query = match device_id {
            Some(device) => sqlx::query(concat!(
                "SELECT ",
                cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id = $3 \
                 AND status <> 'revoked' AND not_after > $4 ORDER BY not_after"
            ))
            .bind(user_id)
            .bind(kind.as_str())
            .bind(device)
            .bind(now),
            None => sqlx::query(concat!(
                "SELECT ",
                cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id IS NULL \
                 AND status <> 'revoked' AND not_after > $3 ORDER BY not_after"
            ))
            .bind(user_id)
            .bind(kind.as_str())
            .bind(now),
        };
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(cert_from_row).collect()
    }

    /// Up to `limit` unrevoked, unexpired (at `now`) certificates of an
    /// authority — superseded ones included, since they still verify until
    /// they expire (suspension must revoke them too) — ordered by serial,
    /// starting after `after_serial`.
    pub async fn list_live_by_authority(
        &self,
        authority_id: &str,
        now: i64,
        after_serial: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Certificate>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE authority_id = $1 AND serial > $2 \
             AND status IN ('valid', 'superseded') AND not_after > $3 ORDER BY serial LIMIT $4"
        ))
        .bind(authority_id)
        .bind(after_serial.unwrap_or(""))
        .bind(now)
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(cert_from_row).collect()
    }

    /// Claims up to `limit` device and identity certificates that are valid
    /// and end before `due_before`, for renewal by this replica: each
    /// returned certificate is leased until `now + lease_ms`, and no other
    /// claim returns it before the lease ends (enrollment-client
    /// certificates are never returned: the service has no key to renew
    /// them with). Renewing supersedes the old certificate, which ends the
    /// claim for good; [`Store::release_renewal_claim`] gives it back early.
    // Expired certificates are never renewed: trust that lapsed needs a new
    // enrollment with a fresh proof of possession.
    pub async fn claim_due_renewals(
        &self,
        due_before: i64,
        now: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<Certificate>> {
        let sql = match self.backend() {
            Backend::Sqlite => concat!(
                "UPDATE certificates SET renewal_claimed_until = $1 WHERE serial IN (",
                "SELECT serial FROM certificates WHERE status = 'valid' AND not_after < $2 AND not_after > $3 ",
                "AND kind IN ('device', 'identity') ",
                "AND (renewal_claimed_until IS NULL OR renewal_claimed_until < $3) ",
                "ORDER BY not_after LIMIT $4) ",
                "RETURNING ",
                cert_cols!()
            ),
            // SKIP LOCKED keeps replicas from queueing behind each other; the
            // outer conditions are re-checked on the latest row version, so
            // a row claimed concurrently is not claimed twice.
            Backend::Postgres => concat!(
                "UPDATE certificates SET renewal_claimed_until = $1 WHERE serial IN (",
                "SELECT serial FROM certificates WHERE status = 'valid' AND not_after < $2 AND not_after > $3 ",
                "AND kind IN ('device', 'identity') ",
                "AND (renewal_claimed_until IS NULL OR renewal_claimed_until < $3) ",
                "ORDER BY not_after LIMIT $4 FOR UPDATE SKIP LOCKED) ",
                "AND status = 'valid' ",
                "AND (renewal_claimed_until IS NULL OR renewal_claimed_until < $3) ",
                "RETURNING ",
                cert_cols!()
            ),
        };
        let _gate = self.write_gate().await;
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(due_before)
            .bind(now)
            .bind(limit_i64(limit))
            .fetch_all(self.pool())
            .await?;
        let mut certs = rows
            .iter()
            .map(cert_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        certs.sort_by_key(|c| c.not_after);
        Ok(certs)
    }

    /// Ends a renewal claim early (e.g. the renewal failed and should be
    /// retried by any replica).
    pub async fn release_renewal_claim(&self, serial: &str) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE certificates SET renewal_claimed_until = NULL WHERE serial = $1")
            .bind(serial)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a valid certificate superseded (without issuing a successor).
    /// Returns false if it was not valid; [`StoreError::NotFound`] if unknown.
    pub async fn mark_superseded(
        &self,
        serial: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<bool> {
        let op = Op::Supersede {
            serial: serial.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Done => Ok(true),
            _ => match self.get_certificate(serial).await? {
                Some(_) => Ok(false),
                None => Err(not_found("certificate", serial)),
            },
        }
    }

    // ----- revocation --------------------------------------------------

    /// Revokes a certificate (valid or superseded): sets its status, records
    /// the revocation, queues `outbox` (the updated state event) and appends
    /// `audit`, all in one transaction. Nothing is written unless the
    /// outcome is [`RevokeOutcome::Revoked`].
    pub async fn revoke(
        &self,
        serial: &str,
        reason: &str,
        at: i64,
        outbox: Option<NewOutboxItem>,
        audit: AuditEntry,
    ) -> StoreResult<RevokeOutcome> {
        let op = Op::Revoke {
            serial: serial.to_owned(),
            reason: reason.to_owned(),
            outbox: outbox.map(prepare_outbox).transpose()?,
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::Revoke(r) => Ok(r),
            other => Err(StoreError::Corrupt(format!(
                "unexpected revoke outcome {other:?}"
            ))),
        }
    }

    /// Revoked certificates of an issuing CA, by serial. With
    /// `unexpired_at`, certificates that expired before then are left out
    /// (a CRL may drop them), which keeps CRLs small.
    pub async fn revoked_for_ca(
        &self,
        issuing_ca: &str,
        unexpired_at: Option<i64>,
    ) -> StoreResult<Vec<Revocation>> {
        let rows = sqlx::query(
            "SELECT r.serial, r.revoked_at, r.reason FROM revocations r \
             JOIN certificates c ON c.serial = r.serial \
             WHERE r.issuing_ca = $1 AND c.not_after >= $2 ORDER BY r.serial",
        )
        .bind(issuing_ca)
        .bind(unexpired_at.unwrap_or(i64::MIN))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Revocation {
                    serial: row.try_get("serial")?,
                    revoked_at: row.try_get("revoked_at")?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    // ----- CRLs --------------------------------------------------------

    /// The next CRL number of an issuing CA (1, 2, 3, ...): one atomic
    /// upsert, so numbers are unique and increasing across replicas.
    ///
    /// Allocate the number *before* reading [`Store::revoked_for_ca`]: then
    /// a CRL with a higher number always includes every revocation that a
    /// lower-numbered one includes, and [`Store::store_crl`] keeps the
    /// highest.
    pub async fn allocate_crl_number(&self, issuing_ca: &str) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let row = sqlx::query(
            "INSERT INTO crls (issuing_ca, last_number) VALUES ($1, 1) \
             ON CONFLICT (issuing_ca) DO UPDATE SET last_number = crls.last_number + 1 \
             RETURNING last_number",
        )
        .bind(issuing_ca)
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("last_number")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("CRL number {n}")))
    }

    /// Claims the generation of the next CRL of an issuing CA for
    /// `lease_ms`; false if another replica holds an unexpired claim.
    /// Storing a CRL does not end the claim: call
    /// [`Store::release_crl_claim`] when done (or let the lease run out).
    pub async fn claim_crl_generation(
        &self,
        issuing_ca: &str,
        now: i64,
        lease_ms: i64,
    ) -> StoreResult<bool> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "INSERT INTO crls (issuing_ca, last_number, claimed_until) VALUES ($1, 0, $2) \
             ON CONFLICT (issuing_ca) DO UPDATE SET claimed_until = $2 \
             WHERE crls.claimed_until IS NULL OR crls.claimed_until < $3",
        )
        .bind(issuing_ca)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Gives up a CRL generation claim.
    pub async fn release_crl_claim(&self, issuing_ca: &str) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE crls SET claimed_until = NULL WHERE issuing_ca = $1")
            .bind(issuing_ca)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Keeps `crl` as the latest CRL of its CA, with its audit entry, unless
    /// a CRL with the same or a higher number is stored already (then
    /// nothing is written and the result is false).
    pub async fn store_crl(&self, crl: StoredCrl, audit: AuditEntry) -> StoreResult<bool> {
        let at = crl.this_update;
        let reply = self
            .submit(Op::StoreCrl(Box::new(crl)), Some(audit), at)
            .await?;
        Ok(reply.outcome == Outcome::Done)
    }

    /// The latest stored CRL of an issuing CA.
    pub async fn latest_crl(&self, issuing_ca: &str) -> StoreResult<Option<StoredCrl>> {
        let row = sqlx::query(
            "SELECT crl_number, der, this_update, next_update FROM crls \
             WHERE issuing_ca = $1 AND der IS NOT NULL",
        )
        .bind(issuing_ca)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let number: Option<i64> = row.try_get("crl_number")?;
        let der: Option<Vec<u8>> = row.try_get("der")?;
        let this_update: Option<i64> = row.try_get("this_update")?;
        let next_update: Option<i64> = row.try_get("next_update")?;
        match (number, der, this_update, next_update) {
            (Some(n), Some(der), Some(this_update), Some(next_update)) => Ok(Some(StoredCrl {
                issuing_ca: issuing_ca.to_owned(),
                number: u64::try_from(n)
                    .map_err(|_| StoreError::Corrupt(format!("CRL number {n}")))?,
                der,
                this_update,
                next_update,
            })),
            _ => Err(StoreError::Corrupt(format!(
                "incomplete CRL row for {issuing_ca}"
            ))),
        }
    }

    // ----- outbox ------------------------------------------------------

    /// Queues an outbox item on its own (e.g. re-publishing after a room
    /// was added), superseding older pending items for its state key.
    /// Returns the audit seq if `audit` was given.
    pub async fn enqueue_outbox(
        &self,
        item: NewOutboxItem,
        at: i64,
        audit: Option<AuditEntry>,
    ) -> StoreResult<Option<u64>> {
        let op = Op::Enqueue(prepare_outbox(item)?);
        Ok(self.submit(op, audit, at).await?.audit_seq)
    }

    /// Claims up to `limit` pending items due at `now` for publication,
    /// leased until `now + lease_ms`, oldest first, and counts the attempt.
    /// An item is not claimed while an older item with the same state key is
    /// still leased (being published), so the newest content is always
    /// published last.
    pub async fn claim_outbox(
        &self,
        now: i64,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Vec<OutboxRecord>> {
        let sql = match self.backend() {
            Backend::Sqlite => concat!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (",
                "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= $2 ",
                "AND (o.claimed_until IS NULL OR o.claimed_until < $2) ",
                "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state_key = o.state_key ",
                "AND p.id <> o.id AND p.claimed_until >= $2) ",
                "ORDER BY o.id LIMIT $3) ",
                "RETURNING ",
                outbox_cols!()
            ),
            Backend::Postgres => concat!(
                "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (",
                "SELECT o.id FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= $2 ",
                "AND (o.claimed_until IS NULL OR o.claimed_until < $2) ",
                "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state_key = o.state_key ",
                "AND p.id <> o.id AND p.claimed_until >= $2) ",
                "ORDER BY o.id LIMIT $3 FOR UPDATE OF o SKIP LOCKED) ",
                "AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $2) ",
                "RETURNING ",
                outbox_cols!()
            ),
        };
        let _gate = self.write_gate().await;
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit_i64(limit))
            .fetch_all(self.pool())
            .await?;
        let mut items = rows
            .iter()
            .map(outbox_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Records a successful publication and ends the claim.
    pub async fn mark_published(&self, id: i64, event_id: &str, now: i64) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET state = CASE WHEN state = 'pending' THEN 'published' ELSE state END, \
             published_at = $2, event_id = $3, claimed_until = NULL, last_error = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(event_id)
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(not_found("outbox item", &id.to_string()));
        }
        Ok(())
    }

    /// Records a failed publication, ends the claim and makes the item due
    /// again at `retry_at` (unless a newer item superseded it meanwhile).
    pub async fn mark_failed(&self, id: i64, error: &str, retry_at: i64) -> StoreResult<()> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "UPDATE outbox SET last_error = $2, next_attempt_at = $3, claimed_until = NULL WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(not_found("outbox item", &id.to_string()));
        }
        Ok(())
    }

    /// Number of items waiting for publication (a health metric).
    pub async fn outbox_depth(&self) -> StoreResult<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
            .fetch_one(self.pool())
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The outbox item with that id.
    pub async fn get_outbox_item(&self, id: i64) -> StoreResult<Option<OutboxRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(outbox_from_row).transpose()
    }

    /// Deletes published and superseded items created before `before`;
    /// returns how many.
    pub async fn purge_outbox(&self, before: i64) -> StoreResult<u64> {
        let _gate = self.write_gate().await;
        let res = sqlx::query(
            "DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1 \
             AND (claimed_until IS NULL OR claimed_until < $1)",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected())
    }

    // ----- audit log ---------------------------------------------------

    /// Appends an entry that goes with no other change (a refused
    /// enrollment, an operator login, ...). Returns its seq.
    pub async fn append_audit(&self, entry: AuditEntry, at: i64) -> StoreResult<u64> {
        let reply = self.submit(Op::AuditOnly, Some(entry), at).await?;
        reply
            .audit_seq
            .ok_or_else(|| StoreError::Corrupt("audit entry was not appended".into()))
    }

    /// Up to `limit` entries after `after_seq`, in order.
    pub async fn list_audit(&self, after_seq: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(to_i64(after_seq)?)
        .bind(limit_i64(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Checks the whole audit chain up to the head recorded when the check
    /// starts (entries appended meanwhile are not examined), reading it in
    /// pages of a few thousand entries, and names the first broken entry.
    pub async fn verify_audit_chain(&self) -> StoreResult<AuditReport> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        let head_seq_u = u64::try_from(head_seq)
            .map_err(|_| StoreError::Corrupt(format!("audit head seq {head_seq}")))?;

        let mut verifier = ChainVerifier::new();
        let mut after: i64 = 0;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            )
            .bind(after)
            .bind(head_seq)
            .bind(AUDIT_PAGE)
            .fetch_all(self.pool())
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("seq")?;
            for row in &rows {
                if !verifier.push(&audit_from_row(row)?) {
                    break;
                }
            }
            if verifier.is_broken() || rows.len() < AUDIT_PAGE as usize {
                break;
            }
        }
        Ok(verifier.finish(head_seq_u, &head_hash))
    }

    // ----- operator tokens ---------------------------------------------

    /// Stores an operator token (its SHA-256 hex, see
    /// [`sha256_hex`](super::sha256_hex)). [`StoreError::Duplicate`] if the
    /// name or the hash exists.
    pub async fn insert_operator_token(
        &self,
        token: OperatorToken,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let name = token.name.clone();
        let at = token.created_at;
        match self
            .submit(Op::InsertOperatorToken(token), Some(audit), at)
            .await?
            .outcome
        {
            Outcome::Duplicate => Err(duplicate("operator token", &name)),
            _ => Ok(()),
        }
    }

    /// Deletes an operator's token. [`StoreError::NotFound`] if none.
    pub async fn delete_operator_token(
        &self,
        name: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let op = Op::DeleteOperatorToken {
            name: name.to_owned(),
        };
        match self.submit(op, Some(audit), at).await?.outcome {
            Outcome::NotFound => Err(not_found("operator token", name)),
            _ => Ok(()),
        }
    }

    /// The operator whose token hashes to `token_hash` (lower-case hex).
    pub async fn find_operator_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<OperatorToken>> {
        let row = sqlx::query(
            "SELECT name, token_hash, created_at FROM operator_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(OperatorToken {
                name: row.try_get("name")?,
                token_hash: row.try_get("token_hash")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }
}
