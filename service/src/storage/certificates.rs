//! Certificates: the columns and row decoding of `certificates`, issuance
//! (plain, or an enrollment that consumes its challenge in the same
//! transaction) and the reads by serial, binding and authority. Renewal
//! claims are in [`super::renewals`], revocation in [`super::revocations`],
//! the issuance statements in `writer::certificates`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::audit::AuditEntry;
use super::model::{
    Certificate, CertificateKind, CertificateQuery, CertificateStatus, ChallengeClaim,
    ChallengeOutcome, ListedStatus, NewCertificate, NewOutboxItem,
};
use super::writer::{prepare_outbox, Op, Outcome};
use super::{duplicate, limit_i64, Store, StoreError, StoreResult};

/// Columns of `certificates` in the order [`cert_from_row`] reads them.
macro_rules! cert_cols {
    () => {
        "serial, issuing_ca, kind, user_id, device_id, key, authority_id, not_before, \
         not_after, der, status, renewed_from, created_at, renewal_claimed_until"
    };
}
pub(super) use cert_cols;

/// The query for a binding's certificates not expired at `now` whose status
/// matches `$status`, then `$tail` (ORDER BY, LIMIT): `device_id = $3` for a
/// device (`Some`), `device_id IS NULL` for an identity (`None`).
macro_rules! binding_query {
    ($status:literal, $tail:literal, $user_id:expr, $kind:expr, $device_id:expr, $now:expr) => {
        match $device_id {
            Some(device) => sqlx::query(concat!(
                "SELECT ",
                $crate::storage::certificates::cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id = $3 AND ",
                $status,
                " AND not_after > $4 ",
                $tail
            ))
            .bind($user_id)
            .bind($kind.as_str())
            .bind(device)
            .bind($now),
            None => sqlx::query(concat!(
                "SELECT ",
                $crate::storage::certificates::cert_cols!(),
                " FROM certificates WHERE user_id = $1 AND kind = $2 AND device_id IS NULL AND ",
                $status,
                " AND not_after > $3 ",
                $tail
            ))
            .bind($user_id)
            .bind($kind.as_str())
            .bind($now),
        }
    };
}
pub(super) use binding_query;

/// Decodes the columns of [`cert_cols!`].
pub(super) fn cert_from_row(row: &AnyRow) -> StoreResult<Certificate> {
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

impl Store {
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
    /// it. Without `renewed_from`, the certificate renews the binding's
    /// live certificate ([`Store::find_live_certificate`] at `created_at`),
    /// looked up in that transaction: the enrollment needs no read of its
    /// own, and the certificate superseded is the one live when the new one
    /// is stored. `Ok(Err(outcome))` when the challenge is refused
    /// (unknown, expired, already used, bound to someone else): nothing is
    /// written.
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
        let query = binding_query!(
            "status = 'valid'",
            "ORDER BY not_after DESC LIMIT 1",
            user_id,
            kind,
            device_id,
            now
        );
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
        let query = binding_query!(
            "status <> 'revoked'",
            "ORDER BY not_after",
            user_id,
            kind,
            device_id,
            now
        );
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

    /// One page of certificates in issuance order, (created_at, serial)
    /// ascending, filtered as `query` says and starting after
    /// `query.after`. Certificates issued later sort after every existing
    /// one (their created_at is now or later), so paging by the last row's
    /// (created_at, serial) neither skips nor repeats rows under inserts.
    /// The indexes `certificates_issued`, `certificates_authority_issued`
    /// and `certificates_user_issued` serve the order, with or without an
    /// authority or user filter.
    pub async fn list_certificates(
        &self,
        query: &CertificateQuery,
    ) -> StoreResult<Vec<Certificate>> {
        enum Bind<'a> {
            Text(&'a str),
            Int(i64),
        }
        /// Adds a condition whose `${i}` are the i-th of `values`.
        fn add<'a>(
            conditions: &mut Vec<String>,
            binds: &mut Vec<Bind<'a>>,
            condition: &str,
            values: Vec<Bind<'a>>,
        ) {
            let mut text = condition.to_owned();
            for i in 0..values.len() {
                text = text.replace(&format!("${{{i}}}"), &format!("${}", binds.len() + i + 1));
            }
            conditions.push(text);
            binds.extend(values);
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<Bind<'_>> = Vec::new();
        let mut push =
            |condition: &str, values| add(&mut conditions, &mut binds, condition, values);
        if let Some(authority) = &query.authority_id {
            push("authority_id = ${0}", vec![Bind::Text(authority)]);
        }
        if let Some(user) = &query.user_id {
            push("user_id = ${0}", vec![Bind::Text(user)]);
        }
        match query.status {
            None => {}
            Some(ListedStatus::Live) => push(
                "status = 'valid' AND not_after > ${0}",
                vec![Bind::Int(query.now)],
            ),
            Some(ListedStatus::Superseded) => push(
                "status = 'superseded' AND not_after > ${0}",
                vec![Bind::Int(query.now)],
            ),
            Some(ListedStatus::Expired) => push(
                "status <> 'revoked' AND not_after <= ${0}",
                vec![Bind::Int(query.now)],
            ),
            Some(ListedStatus::Revoked) => push("status = 'revoked'", vec![]),
        }
        if let Some(before) = query.expiring_before {
            push("not_after < ${0}", vec![Bind::Int(before)]);
        }
        if let Some((created_at, serial)) = &query.after {
            push(
                "(created_at > ${0} OR (created_at = ${1} AND serial > ${2}))",
                vec![
                    Bind::Int(*created_at),
                    Bind::Int(*created_at),
                    Bind::Text(serial),
                ],
            );
        }
        let mut sql = concat!("SELECT ", cert_cols!(), " FROM certificates").to_owned();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY created_at, serial LIMIT ${}",
            binds.len() + 1
        ));
        // Only fixed fragments are joined; every value is a bind parameter.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for bind in binds {
            q = match bind {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        let rows = q
            .bind(limit_i64(query.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(cert_from_row).collect()
    }
}
