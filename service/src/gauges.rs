//! Keeping the gauges true: reads the outbox depth, CRL ages and
//! nextUpdates, CA and TLS certificate expiry from the running service into
//! the registry ([`crate::metrics`], which holds only the metric
//! definitions), periodically and before each scrape.

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::state::Service;

/// Brings the gauges up to date: outbox depth, CRL age and nextUpdate,
/// CA and TLS certificate expiry. Run periodically and before each scrape.
pub async fn refresh(svc: &Service) {
    let m = &svc.metrics;
    let now_ms = now_ms();
    let now = now_ms / 1000;
    if let Ok(depth) = svc.store.outbox_depth().await {
        m.outbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    for ca in svc.pki.ca_ids() {
        if let Ok(Some(crl)) = svc.store.latest_crl(&ca).await {
            Metrics::set(&m.crl_age, &ca, (now_ms - crl.this_update) as f64 / 1000.0);
            Metrics::set(
                &m.crl_next_update,
                &ca,
                (crl.next_update - now_ms) as f64 / 1000.0,
            );
        }
    }
    if let Ok(Some(der)) = svc.pki.root_crl() {
        if let Ok(crl) = govtrust_verifier::Crl::from_der(&der) {
            if let Some(next) = crl.next_update() {
                Metrics::set(&m.crl_next_update, "root", (next - now) as f64);
            }
        }
    }
    for (ca, not_after) in svc.pki.ca_expiries() {
        Metrics::set(&m.ca_expiry, &ca, (not_after - now) as f64);
    }
    if let Some(leaf) = svc.tls.get().and_then(|h| h.leaf()) {
        if let Ok(not_after) = crate::pki::not_after(&leaf) {
            m.tls_expiry.set((not_after - now) as f64);
        }
    }
}

/// The `/metrics` response: gauges refreshed, then rendered.
pub async fn scrape(svc: &Service) -> axum::response::Response {
    use axum::response::IntoResponse;
    refresh(svc).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        svc.metrics.render(),
    )
        .into_response()
}
