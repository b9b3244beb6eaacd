//! Background work: publishing the outbox, keeping CRLs fresh, renewing
//! certificates. Each is safe to run in several replicas at once: the
//! database hands out leases (outbox items, CRL generation, renewals), so
//! no two replicas do the same piece of work.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use govtrust_pki::{AttestationRequest, RevocationReason, RevokedCertificate};
use govtrust_verifier::event::{state_key, AttestationContent};
use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};

use crate::clock::now_ms;
use crate::state::{AppState, Service};
use crate::storage::{
    AuditEntry, AuthorityStatus, Certificate, CertificateKind, NewCertificate, NewOutboxItem,
    StoredCrl,
};

/// Lease on claimed outbox items: long enough for a slow homeserver.
const OUTBOX_LEASE_MS: i64 = 30_000;
/// Outbox items claimed per round.
const OUTBOX_BATCH: u32 = 32;
/// Lease on renewals and CRL generation.
const WORK_LEASE_MS: i64 = 60_000;
/// How long a CRL request waits for another signer's CRL that lists every
/// recorded revocation, before it answers with an error.
const CRL_WAIT_MS: i64 = 5_000;
/// How often it looks while waiting.
const CRL_WAIT_POLL: Duration = Duration::from_millis(50);

/// Publishes queued attestation events until the process ends; retries
/// with exponential backoff while the homeserver is unavailable.
pub async fn run_outbox(svc: AppState) {
    if !svc.publisher.is_configured() {
        return;
    }
    loop {
        let Some(bot) = svc.publisher.get().cloned() else {
            // Not connected yet: items stay queued until the bot is.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), svc.outbox_wakeup.notified()).await;
            continue;
        };
        match publish_round(&svc, &bot).await {
            Ok(0) => {
                let _ = tokio::time::timeout(Duration::from_secs(1), svc.outbox_wakeup.notified())
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "outbox round failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if let Ok(depth) = svc.store.outbox_depth().await {
            svc.metrics
                .outbox_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }
}

async fn publish_round(svc: &Service, bot: &crate::matrix::Bot) -> Result<usize> {
    let items = svc
        .store
        .claim_outbox(now_ms(), OUTBOX_BATCH, OUTBOX_LEASE_MS)
        .await?;
    let count = items.len();
    for item in items {
        let content: AttestationContent = match serde_json::from_value(item.content.clone()) {
            Ok(c) => c,
            Err(e) => {
                // Cannot happen for rows this service wrote; park it visibly.
                svc.store
                    .mark_failed(item.id, &format!("undecodable content: {e}"), i64::MAX)
                    .await?;
                continue;
            }
        };
        match bot.publish(&item.state_key, &content).await {
            Ok(event_id) => {
                svc.store
                    .mark_published(item.id, &event_id, now_ms())
                    .await?;
                svc.published.notify_waiters();
            }
            Err(e) => {
                let backoff = 1000i64 << item.attempts.clamp(0, 6);
                tracing::info!(state_key = %item.state_key, attempts = item.attempts, error = %e, "publication failed; will retry");
                svc.store
                    .mark_failed(item.id, &e.to_string(), now_ms() + backoff)
                    .await?;
            }
        }
    }
    Ok(count)
}

/// Issuing CA `ca`'s current CRL: the stored one while it is fresh and no
/// revocation has been recorded since its entries were read, otherwise a
/// newly signed one.
pub async fn current_crl(svc: &Service, ca: &str) -> Result<StoredCrl> {
    let ca = ca.to_owned();
    let lifetime_ms = i64::try_from(svc.pki.crl_lifetime().as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let latest = svc.store.latest_crl(&ca).await?;
    let revocations = svc.store.revocation_count(&ca).await?;
    if let Some(crl) = &latest {
        let fresh = now - crl.this_update < lifetime_ms / 4;
        if fresh && covers(crl, revocations) {
            return Ok(crl.clone());
        }
    }
    let deadline = now + CRL_WAIT_MS;
    while !svc
        .store
        .claim_crl_generation(&ca, now_ms(), WORK_LEASE_MS)
        .await?
    {
        // Another task or replica is signing one right now. Serve the
        // newest CRL only if it covers every recorded revocation: one that
        // misses a revocation would vouch for a revoked certificate.
        let newest = svc.store.latest_crl(&ca).await?;
        let revocations = svc.store.revocation_count(&ca).await?;
        if let Some(crl) = newest.filter(|crl| covers(crl, revocations)) {
            return Ok(crl);
        }
        if now_ms() > deadline {
            anyhow::bail!("the CRL of {ca} is being signed elsewhere; try again");
        }
        tokio::time::sleep(CRL_WAIT_POLL).await;
    }
    let result = sign_crl(svc, &ca).await;
    svc.store.release_crl_claim(&ca).await?;
    let crl = result?;
    svc.metrics
        .crl_age
        .get_or_create(&crate::metrics::CaLabel { ca: ca.clone() })
        .set(0.0);
    Ok(crl)
}

/// Whether `crl` lists every revocation recorded for its CA, `revocations`
/// of them now: its entries were read when the CA had exactly as many.
/// Revocations are only ever inserted, so an equal count means the same
/// set. Comparing times instead would not do: a revocation is stamped
/// before its transaction commits, so one stamped before a CRL's
/// thisUpdate can still commit after that CRL's entries were read. A CRL
/// without a count (stored before it was kept) never covers: it is
/// re-signed once.
fn covers(crl: &StoredCrl, revocations: u64) -> bool {
    crl.revocation_count == Some(revocations)
}

/// Signs and stores a new CRL of `ca` and returns it, with the revocation
/// count its entries were read with, so that [`covers`] can tell later
/// whether it still lists every revocation.
async fn sign_crl(svc: &Service, ca: &str) -> Result<StoredCrl> {
    let (entries, revocation_count) = svc.store.crl_entries(ca, Some(now_ms())).await?;
    let revoked = entries
        .into_iter()
        .map(|r| {
            Ok(RevokedCertificate {
                serial: crate::cadir::parse_hex(&r.serial)?,
                revoked_at: time::OffsetDateTime::from_unix_timestamp(r.revoked_at / 1000)?,
                reason: RevocationReason::parse(&r.reason).unwrap_or(RevocationReason::Unspecified),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let number = svc.store.allocate_crl_number(ca).await?;
    // Decoded and signature-checked by the CA before it is returned.
    let signed = svc.pki.sign_crl(ca, &revoked, number)?;
    let crl = StoredCrl {
        issuing_ca: ca.to_owned(),
        number,
        this_update: signed.this_update() * 1000,
        next_update: signed.next_update().unwrap_or(signed.this_update()) * 1000,
        der: signed.into_der(),
        revocation_count: Some(revocation_count),
    };
    svc.store
        .store_crl(
            crl.clone(),
            AuditEntry::new(
                "system",
                "crl.signed",
                ca,
                serde_json::json!({"number": number, "revoked": revoked.len()}),
            ),
        )
        .await?;
    Ok(crl)
}

/// Keeps the CRL fresh and renews certificates inside the renewal window.
pub async fn run_maintenance(svc: AppState) {
    let interval = Duration::from_secs(svc.config.renewal.interval_secs.max(1));
    loop {
        for ca in svc.pki.ca_ids() {
            if let Err(e) = current_crl(&svc, &ca).await {
                tracing::warn!(%ca, error = %format!("{e:#}"), "CRL refresh failed");
            }
        }
        match renew_due(&svc).await {
            Ok(n) if n > 0 => tracing::info!(renewed = n, "renewed certificates"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "renewal round failed"),
        }
        let _ = svc.store.purge_expired_challenges(now_ms()).await;
        tokio::time::sleep(interval.min(Duration::from_secs(
            u64::from(svc.config.ca.crl_hours) * 3600 / 4,
        )))
        .await;
    }
}

/// Renews every valid attestation that expires inside the renewal window
/// and whose authority is still active and still permits the user.
pub async fn renew_due(svc: &Service) -> Result<usize> {
    let window_ms = i64::from(svc.config.renewal.window_days) * 86_400_000;
    let now = now_ms();
    let due = svc
        .store
        .claim_due_renewals(now + window_ms, now, WORK_LEASE_MS, 100)
        .await?;
    let mut renewed = 0;
    for cert in due {
        let serial = cert.serial.clone();
        match renew_one(svc, &cert).await {
            Ok(true) => renewed += 1,
            Ok(false) => svc.store.release_renewal_claim(&serial).await?,
            Err(e) => {
                tracing::warn!(%serial, error = %format!("{e:#}"), "renewal failed");
                svc.store.release_renewal_claim(&serial).await?;
            }
        }
    }
    svc.metrics.renewals.inc_by(renewed as u64);
    Ok(renewed)
}

async fn renew_one(svc: &Service, cert: &Certificate) -> Result<bool> {
    let subject = match (cert.kind, &cert.device_id) {
        (CertificateKind::Device, Some(d)) => Subject::Device(DeviceId::parse(d)?),
        (CertificateKind::Identity, _) => Subject::Identity,
        _ => return Ok(false),
    };
    let user = UserId::parse(
        cert.user_id
            .as_deref()
            .context("attestation without user")?,
    )?;
    let Some(authority) = svc.store.get_authority(&cert.authority_id).await? else {
        return Ok(false);
    };
    if authority.status != AuthorityStatus::Active
        || govtrust_api::policy::check_user(&user, &authority.servers, &authority.user_patterns)
            .is_err()
    {
        return Ok(false);
    }
    let key = Ed25519Key::from_base64(&cert.key)?;
    if !still_served(svc, &user, &subject, &key).await? {
        tracing::info!(serial = %cert.serial, "not renewed: the homeserver no longer serves this key");
        return Ok(false);
    }
    let request = AttestationRequest {
        user_id: user.clone(),
        subject: subject.clone(),
        key,
        authority: authority.record.clone(),
    };
    let issued = svc.pki.issue(&request)?;
    let content = issued.attestation_content(&request);
    let serial = issued.serial_hex();
    svc.store
        .insert_certificate(
            NewCertificate {
                serial: serial.clone(),
                issuing_ca: svc.pki.issuing_id().to_owned(),
                kind: cert.kind,
                user_id: cert.user_id.clone(),
                device_id: cert.device_id.clone(),
                key: cert.key.clone(),
                authority_id: cert.authority_id.clone(),
                not_before: issued.not_before.unix_timestamp() * 1000,
                not_after: issued.not_after.unix_timestamp() * 1000,
                der: issued.certificate().to_vec(),
                renewed_from: Some(cert.serial.clone()),
                created_at: now_ms(),
            },
            svc.publishing().then(|| NewOutboxItem {
                kind: "attestation".into(),
                state_key: state_key(&user, &subject),
                content: serde_json::to_value(&content).unwrap_or_default(),
            }),
            AuditEntry::new(
                "system",
                "certificate.renewed",
                serial,
                serde_json::json!({"renews": cert.serial}),
            ),
        )
        .await?;
    svc.outbox_wakeup.notify_one();
    Ok(true)
}

/// Whether the homeserver still serves `key` for the subject (a deleted
/// device or a new master key ends renewal; the old certificate expires).
/// Without a homeserver nothing can be re-checked, so nothing is renewed.
async fn still_served(
    svc: &Service,
    user: &UserId,
    subject: &Subject,
    key: &Ed25519Key,
) -> Result<bool> {
    let device = match subject {
        Subject::Device(d) => d.clone(),
        // An identity is re-checked through its master key alone.
        Subject::Identity => DeviceId::parse("-")?,
    };
    let answer = match svc.keys.lookup(user, &device).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "renewal postponed: keys unavailable");
            return Ok(false);
        }
    };
    Ok(match subject {
        Subject::Device(_) => answer
            .device
            .is_some_and(|d| d.self_signed && d.ed25519 == *key),
        Subject::Identity => answer
            .identity
            .is_some_and(|i| i.self_signing_signed_by_master && i.master == *key),
    })
}

/// Revokes a certificate and queues its updated state event (with the
/// `revoked` notice) in the same transaction; returns whether it was newly
/// revoked.
pub async fn revoke(
    svc: &Service,
    cert: &Certificate,
    reason: RevocationReason,
    actor: &str,
) -> Result<bool> {
    let now = now_ms();
    let outbox = match (svc.publishing(), attestation_of(cert)?) {
        (true, Some((user, subject))) => {
            let issuer = svc
                .pki
                .ca_der(&cert.issuing_ca)
                .with_context(|| format!("issuing CA {} is not loaded", cert.issuing_ca))?;
            let chain = [cert.der.as_slice(), issuer.as_ref()];
            let content = AttestationContent {
                version: 1,
                kind: match subject {
                    Subject::Device(_) => govtrust_verifier::event::AttestationKind::Device,
                    Subject::Identity => govtrust_verifier::event::AttestationKind::Identity,
                },
                user_id: user.to_string(),
                device_id: cert.device_id.clone(),
                key: cert.key.clone(),
                chain: chain
                    .iter()
                    .map(|c| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c))
                    .collect(),
                expires_at: u64::try_from(cert.not_after).ok(),
                revoked: Some(govtrust_verifier::event::RevocationNotice {
                    revoked_at: u64::try_from(now).unwrap_or(0),
                    reason: reason.name().to_owned(),
                }),
            };
            Some(NewOutboxItem {
                kind: "attestation".into(),
                state_key: state_key(&user, &subject),
                content: serde_json::to_value(&content)?,
            })
        }
        _ => None,
    };
    let outcome = svc
        .store
        .revoke(
            &cert.serial,
            reason.name(),
            now,
            outbox,
            AuditEntry::new(
                actor,
                "certificate.revoked",
                cert.serial.clone(),
                serde_json::json!({"reason": reason.name()}),
            ),
        )
        .await?;
    svc.outbox_wakeup.notify_one();
    Ok(outcome == crate::storage::RevokeOutcome::Revoked)
}

fn attestation_of(cert: &Certificate) -> Result<Option<(UserId, Subject)>> {
    let Some(user) = cert.user_id.as_deref() else {
        return Ok(None);
    };
    let user = UserId::parse(user)?;
    Ok(match (cert.kind, &cert.device_id) {
        (CertificateKind::Device, Some(d)) => Some((user, Subject::Device(DeviceId::parse(d)?))),
        (CertificateKind::Identity, _) => Some((user, Subject::Identity)),
        _ => None,
    })
}

/// Longest pause between attempts to reach the homeserver.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(60);

/// Connects the Matrix bot and ensures the directory room, retrying with
/// exponential backoff (1 s doubling to 60 s) until it succeeds; then the
/// key source and the outbox publisher start using it. Returns at once if
/// no homeserver is configured or the bot is already connected.
pub async fn run_matrix_connect(svc: AppState) {
    if !svc.publisher.is_configured() {
        return;
    }
    let mut backoff = Duration::from_secs(1);
    while svc.publisher.get().is_none() {
        match crate::connect_bot(&svc.config).await {
            Ok(Some(bot)) => {
                crate::install_bot(&svc, Arc::new(bot));
                tracing::info!("Matrix bot connected; directory room ready");
                return;
            }
            Ok(None) => return,
            Err(e) => {
                let why = format!("{e:#}");
                tracing::warn!(error = %why, "homeserver unreachable; retrying in {backoff:?}");
                svc.publisher.set_error(Some(why));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
            }
        }
    }
}

/// Keeps the served TLS certificate current without a restart: sleeps
/// until `tls.renew_before_secs` before it expires, then re-issues it
/// (self-issued) or re-reads the configured files (checked every minute),
/// and swaps it in for new connections.
pub async fn run_tls_renewal(svc: AppState) {
    let Some(holder) = svc.tls.get().cloned() else {
        return;
    };
    let renew_before = i64::try_from(svc.config.tls.renew_before_secs).unwrap_or(i64::MAX);
    let configured_files = svc.config.tls.cert.is_some();
    loop {
        let now = now_ms() / 1000;
        let due_in = holder
            .leaf()
            .and_then(|leaf| crate::pki::not_after(&leaf).ok())
            .map_or(60, |not_after| {
                not_after.saturating_sub(renew_before).saturating_sub(now)
            });
        let mut wait = u64::try_from(due_in).unwrap_or(0).clamp(1, 3600);
        if configured_files {
            wait = wait.min(60);
        }
        tokio::time::sleep(Duration::from_secs(wait)).await;
        match svc.pki.tls_load(&svc.config) {
            Ok(material) => {
                let changed = material.chain.first() != holder.leaf().as_ref();
                if changed {
                    let serial = material
                        .chain
                        .first()
                        .and_then(|leaf| serial_hex(leaf))
                        .unwrap_or_default();
                    match holder.replace(material.chain, material.key) {
                        Ok(()) => {
                            svc.metrics.tls_renewals.inc();
                            svc.metrics
                                .tls_expiry
                                .set((material.not_after - now_ms() / 1000) as f64);
                            tracing::info!(%serial, not_after = material.not_after, "TLS certificate renewed; new connections get it");
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "new TLS certificate not usable; keeping the old one");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "TLS certificate renewal failed; retrying in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

fn serial_hex(der: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(
        parsed
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Refreshes the expiry and CRL gauges every minute (and `/metrics`
/// refreshes them before each scrape too).
pub async fn run_gauges(svc: AppState) {
    loop {
        crate::gauges::refresh(&svc).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// The running background tasks; [`BackgroundTasks::stop`] ends them.
pub struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl BackgroundTasks {
    /// Stops every task (at its next await point) and waits for them.
    pub async fn stop(self) {
        for task in &self.0 {
            task.abort();
        }
        for task in self.0 {
            let _ = task.await;
        }
    }
}

/// Spawns the background tasks: Matrix connection, outbox, maintenance
/// (CRLs, renewals), TLS certificate renewal, gauges.
pub fn spawn_all(svc: &AppState) -> BackgroundTasks {
    BackgroundTasks(vec![
        tokio::spawn(run_matrix_connect(Arc::clone(svc))),
        tokio::spawn(run_outbox(Arc::clone(svc))),
        tokio::spawn(run_maintenance(Arc::clone(svc))),
        tokio::spawn(run_tls_renewal(Arc::clone(svc))),
        tokio::spawn(run_gauges(Arc::clone(svc))),
    ])
}

#[cfg(test)]
mod tests {
    //! [`current_crl`] against a real service on SQLite (no homeserver):
    //! a stored CRL is served only if it lists every recorded revocation,
    //! on both paths that serve a stored CRL — the fresh-CRL shortcut and
    //! the wait for another signer — however the revocation's time relates
    //! to the CRL's thisUpdate. A CRL that misses a revocation would vouch
    //! for a revoked certificate.
    //!
    //! Revocation times are set relative to the CRLs' thisUpdate (whole
    //! seconds), so the outcome does not depend on where in a second the
    //! test runs.

    use super::*;
    use crate::config::Config;
    use crate::storage::{Authority, RevokeOutcome};
    use govtrust_verifier::AuthorityRecord;

    const AUTHORITY: &str = "DE-CRL-0001";

    fn audit(action: &str, subject: &str) -> AuditEntry {
        AuditEntry::new("system", action, subject, serde_json::json!({}))
    }

    /// A service without a homeserver (no background tasks run) on SQLite
    /// in `dir`, with one authority; and the id of its issuing CA.
    async fn service(dir: &std::path::Path) -> (AppState, String) {
        let config = Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        let svc = crate::build(config).await.expect("service");
        let created = now_ms() - 10_000;
        svc.store
            .insert_authority(
                Authority {
                    record: AuthorityRecord {
                        id: AUTHORITY.into(),
                        name: "Bürgeramt Sperrliste".into(),
                        ..Default::default()
                    },
                    servers: vec!["localhost".into()],
                    user_patterns: vec!["office.*".into()],
                    status: AuthorityStatus::Active,
                    contact: None,
                    created_at: created,
                    updated_at: created,
                },
                audit("authority.created", AUTHORITY),
            )
            .await
            .expect("authority");
        let ca = svc.pki.issuing_id().to_owned();
        (svc, ca)
    }

    /// Stores a valid certificate `serial` of `ca` and revokes it as of
    /// `at` (unix ms). Its DER is a placeholder: a CRL needs the serial.
    async fn revoke_new_certificate(svc: &Service, ca: &str, serial: &str, at: i64) {
        svc.store
            .insert_certificate(
                NewCertificate {
                    serial: serial.into(),
                    issuing_ca: ca.into(),
                    kind: CertificateKind::Device,
                    user_id: Some("@office.one:localhost".into()),
                    device_id: Some(format!("DEVICE{serial}")),
                    key: "key".into(),
                    authority_id: AUTHORITY.into(),
                    not_before: at - 1,
                    not_after: now_ms() + 3_600_000,
                    der: vec![0x30, 0x00],
                    renewed_from: None,
                    created_at: at - 1,
                },
                None,
                audit("certificate.issued", serial),
            )
            .await
            .expect("certificate");
        let outcome = svc
            .store
            .revoke(
                serial,
                "keyCompromise",
                at,
                None,
                audit("certificate.revoked", serial),
            )
            .await
            .expect("revoke");
        assert_eq!(outcome, RevokeOutcome::Revoked);
    }

    /// Whether `crl` lists `serial` (hex).
    fn lists(crl: &StoredCrl, serial: &str) -> bool {
        let parsed = govtrust_verifier::Crl::from_der(&crl.der).expect("CRL");
        let serial = crate::cadir::parse_hex(serial).expect("hex serial");
        parsed.lookup(&serial).is_some()
    }

    /// A fresh CRL that lists every revocation is served as it is; once a
    /// revocation is recorded after it, a new CRL that lists it is signed
    /// instead.
    #[tokio::test]
    async fn fresh_crl_is_served_only_while_it_covers_the_newest_revocation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (svc, ca) = service(dir.path()).await;
        // Revoked a second before the first CRL is signed: that CRL's
        // thisUpdate (whole seconds) is after it.
        revoke_new_certificate(&svc, &ca, "4a01", now_ms() - 1000).await;
        let first = current_crl(&svc, &ca).await.expect("first CRL");
        assert!(lists(&first, "4a01"), "the first CRL lists 4a01");

        let again = current_crl(&svc, &ca).await.expect("CRL again");
        assert_eq!(
            (again.number, &again.der),
            (first.number, &first.der),
            "a fresh CRL that covers every revocation is served without re-signing"
        );

        revoke_new_certificate(&svc, &ca, "4a02", first.this_update + 1).await;
        let next = current_crl(&svc, &ca)
            .await
            .expect("CRL after a revocation");
        assert!(
            next.number > first.number,
            "CRL {} is fresh but misses 4a02, revoked after it: it was served",
            first.number
        );
        assert!(
            lists(&next, "4a01") && lists(&next, "4a02"),
            "CRL {} lists both revocations",
            next.number
        );
    }

    /// While another signer holds the CRL generation claim, a request
    /// waits for a CRL that lists every revocation and never falls
    /// back to the stored one that misses it: with none in time it fails.
    /// The other signer's CRL, once stored, is served as it is.
    #[tokio::test]
    async fn waiting_for_another_signer_never_serves_a_crl_missing_a_revocation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (svc, ca) = service(dir.path()).await;
        let stale = current_crl(&svc, &ca).await.expect("first CRL");
        let revoked_at = stale.this_update + 1;
        revoke_new_certificate(&svc, &ca, "4a03", revoked_at).await;

        // Another replica starts signing the next CRL.
        assert!(svc
            .store
            .claim_crl_generation(&ca, now_ms(), WORK_LEASE_MS)
            .await
            .expect("claim"));
        let started = now_ms();
        match current_crl(&svc, &ca).await {
            Ok(crl) => panic!(
                "served CRL {} although it misses 4a03, revoked after it",
                crl.number
            ),
            Err(e) => assert!(format!("{e:#}").contains("being signed elsewhere"), "{e:#}"),
        }
        assert!(
            now_ms() - started >= CRL_WAIT_MS,
            "it waited for the other signer"
        );
        let latest = svc.store.latest_crl(&ca).await.expect("read").expect("CRL");
        assert_eq!(
            latest.number, stale.number,
            "nothing was signed while another signer held the claim"
        );

        // The other replica stores its CRL, whose entries were read after
        // the revocation.
        let elsewhere = sign_crl(&svc, &ca).await.expect("the other signer's CRL");
        let served = current_crl(&svc, &ca).await.expect("CRL");
        assert_eq!(
            (served.number, &served.der),
            (elsewhere.number, &elsewhere.der),
            "the covering CRL is served as it is"
        );
        assert!(lists(&served, "4a03"));
        svc.store.release_crl_claim(&ca).await.expect("release");
    }

    /// The race the revocation count closes: a revocation stamped before a
    /// CRL's thisUpdate whose transaction commits only after that CRL's
    /// entries were read. The stored CRL misses it although no revocation
    /// is newer than its thisUpdate, so it must not be served: the next
    /// request signs a CRL that lists it.
    #[tokio::test]
    async fn revocation_stamped_before_a_crl_but_stored_after_its_entries_were_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (svc, ca) = service(dir.path()).await;
        revoke_new_certificate(&svc, &ca, "4a04", now_ms() - 1000).await;
        let stored = current_crl(&svc, &ca).await.expect("first CRL");
        assert!(lists(&stored, "4a04"));

        // Stamped a second before the stored CRL's thisUpdate, stored
        // after its entries were read (as if its commit had been slow).
        let stamped = stored.this_update - 1000;
        revoke_new_certificate(&svc, &ca, "4a05", stamped).await;
        assert!(!lists(&stored, "4a05"), "the stored CRL misses 4a05");

        let served = current_crl(&svc, &ca).await.expect("CRL");
        assert!(
            served.number > stored.number,
            "CRL {} misses 4a05 (revoked at {stamped}, before its thisUpdate {}): it was served",
            stored.number,
            stored.this_update
        );
        assert!(
            lists(&served, "4a04") && lists(&served, "4a05"),
            "CRL {} lists both revocations",
            served.number
        );
        let again = current_crl(&svc, &ca).await.expect("CRL again");
        assert_eq!(
            again.number, served.number,
            "the complete CRL is served without re-signing"
        );
    }

    /// A CRL stored before revocation counts were kept (no count) may miss
    /// a revocation, so it is never served: it is re-signed once, and the
    /// new CRL is served from then on.
    #[tokio::test]
    async fn crl_without_a_revocation_count_is_signed_again_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (svc, ca) = service(dir.path()).await;
        revoke_new_certificate(&svc, &ca, "4a06", now_ms() - 1000).await;
        let signed = current_crl(&svc, &ca).await.expect("first CRL");
        let legacy = StoredCrl {
            number: svc.store.allocate_crl_number(&ca).await.expect("number"),
            revocation_count: None,
            ..signed
        };
        assert!(svc
            .store
            .store_crl(legacy.clone(), audit("crl.signed", &ca))
            .await
            .expect("store"));
        assert_eq!(
            svc.store.latest_crl(&ca).await.expect("read"),
            Some(legacy.clone())
        );

        let resigned = current_crl(&svc, &ca).await.expect("CRL");
        assert!(
            resigned.number > legacy.number,
            "CRL {} without a revocation count was served",
            legacy.number
        );
        assert!(lists(&resigned, "4a06"));
        let again = current_crl(&svc, &ca).await.expect("CRL again");
        assert_eq!(
            again.number, resigned.number,
            "the re-signed CRL is served without re-signing"
        );
    }
}
