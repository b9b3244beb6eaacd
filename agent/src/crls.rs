//! Revocation information for the agent: fetching CRLs from the
//! certificates' distribution points, and caching them until nextUpdate.
//!
//! A CRL is fetched only for a distribution point named by a certificate
//! whose chain already validated to a pinned root (checked without the CRL
//! first), so an attacker-made certificate cannot make the client contact
//! arbitrary URLs. The CRL's own signature is checked at use, against the
//! issuer on the validated path; the transport adds nothing to its
//! integrity, so a CRL server that is down or lies can only withhold
//! revocation information — which [`govtrust_verifier::CrlPolicy::REQUIRE_FRESH`] turns
//! into a rejection once the cached CRL passes its nextUpdate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::now_secs;
use crate::error::AgentError;
use govtrust_verifier::{Crl, CrlPolicy, CrlSet};

/// Largest CRL the agent downloads. The service's CRLs list only revoked,
/// unexpired short-lived certificates; 32 MiB is far above any real one
/// and bounds memory if a distribution point misbehaves.
pub const MAX_CRL_BYTES: usize = 32 * 1024 * 1024;
/// Timeout of one CRL download.
pub const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before a failed distribution point is tried again.
const RETRY_AFTER_FAILURE: i64 = 30;

/// Where CRL bytes come from. The agent uses [`HttpCrlFetcher`]; tests and
/// applications with their own HTTP stack can supply another.
pub trait CrlFetcher: Send + Sync + 'static {
    /// Fetches the CRL (DER or PEM) published at `url`.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>>;
}

/// Fetches CRLs over HTTPS with reqwest.
///
/// Plain `http://` distribution points are refused unless allowed: the CRL
/// is signed, but HTTPS keeps what the citizen's client looks up private.
#[derive(Clone, Debug)]
pub struct HttpCrlFetcher {
    client: reqwest::Client,
    allow_http: bool,
}

impl HttpCrlFetcher {
    /// Uses the application's reqwest client (its TLS roots, proxy and
    /// timeouts).
    pub fn new(client: reqwest::Client) -> Self {
        HttpCrlFetcher {
            client,
            allow_http: false,
        }
    }

    /// A client whose TLS server authentication trusts exactly `roots`:
    /// typically the pinned government roots (the service's TLS
    /// certificate is issued under them) plus whatever CA the CRL host's
    /// certificate comes from.
    pub fn with_tls_roots<'a>(
        roots: impl IntoIterator<Item = &'a CertificateDer<'static>>,
    ) -> Result<Self, AgentError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .timeout(CRL_FETCH_TIMEOUT)
            .connect_timeout(Duration::from_secs(10));
        for root in roots {
            let cert = reqwest::Certificate::from_der(root.as_ref())
                .map_err(|e| AgentError::Config(format!("TLS root for CRL fetching: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| AgentError::Config(format!("CRL HTTP client: {e}")))?;
        Ok(HttpCrlFetcher::new(client))
    }

    /// Also accepts `http://` distribution points (development only).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }
}

impl CrlFetcher for HttpCrlFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>> {
        Box::pin(async move {
            let parsed = reqwest::Url::parse(url).map_err(|e| AgentError::crl(url, e))?;
            match parsed.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                other => {
                    return Err(AgentError::crl(
                        url,
                        format!("scheme {other:?} not allowed (https only)"),
                    ))
                }
            }
            let mut response = self
                .client
                .get(parsed)
                .timeout(CRL_FETCH_TIMEOUT)
                .send()
                .await
                .map_err(|e| AgentError::crl(url, e))?;
            if !response.status().is_success() {
                return Err(AgentError::crl(url, format!("HTTP {}", response.status())));
            }
            if response
                .content_length()
                .is_some_and(|len| len > MAX_CRL_BYTES as u64)
            {
                return Err(AgentError::crl(url, "larger than the CRL size limit"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| AgentError::crl(url, e))?
            {
                if body.len() + chunk.len() > MAX_CRL_BYTES {
                    return Err(AgentError::crl(url, "larger than the CRL size limit"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        })
    }
}

/// The CRL distribution point URIs of a certificate (empty if it names
/// none, or cannot be decoded — the verifier reports the latter).
pub fn distribution_points(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert_der) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::URI(uri) = name {
                            urls.push((*uri).to_owned());
                        }
                    }
                }
            }
        }
    }
    urls
}

/// The subject of a certificate in RFC 4514 form, as
/// [`govtrust_verifier::VerifiedAttestation::issuer`] gives it.
pub fn subject_string(cert_der: &[u8]) -> Option<String> {
    X509Certificate::from_der(cert_der)
        .ok()
        .map(|(_, c)| c.subject().to_string())
}

/// When an entry should be fetched again: at nextUpdate, at the end of the
/// refresh interval, or when the policy's maximum age is reached, whichever
/// comes first.
fn due_time(e: &Entry, refresh_after: i64, policy: CrlPolicy) -> i64 {
    let mut due = e.fetched_at.saturating_add(refresh_after);
    let (this_update, next_update) = e
        .crl
        .as_ref()
        .map_or((0, None), |crl| (crl.this_update(), crl.next_update()));
    if let Some(next) = next_update {
        due = due.min(next);
    }
    if let Some(max) = policy.max_age {
        let max = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
        due = due.min(this_update.saturating_add(max));
    }
    due
}

#[derive(Debug)]
struct Entry {
    /// The CRL last fetched, decoded once and shared with every set built
    /// while it is held.
    crl: Option<Arc<Crl>>,
    fetched_at: i64,
    /// Not before this time may the URL be tried again: set after a failed
    /// fetch, or one that brought a CRL already due (a server publishing
    /// stale CRLs), so that neither is retried in a tight loop.
    retry_at: i64,
}

/// CRLs by distribution point, and the [`CrlSet`] built from all of them.
pub(crate) struct CrlCache {
    fetcher: Arc<dyn CrlFetcher>,
    /// Re-fetch at the latest this long after the last fetch, even before
    /// nextUpdate.
    refresh_after: i64,
    policy: CrlPolicy,
    entries: HashMap<String, Entry>,
    set: Arc<CrlSet>,
}

impl CrlCache {
    pub fn new(fetcher: Arc<dyn CrlFetcher>, refresh_after: Duration, policy: CrlPolicy) -> Self {
        CrlCache {
            fetcher,
            refresh_after: i64::try_from(refresh_after.as_secs()).unwrap_or(i64::MAX),
            policy,
            entries: HashMap::new(),
            set: Arc::new(CrlSet::new()),
        }
    }

    /// All CRLs held, for verification.
    /// The CRL policy the agent verifies under.
    pub fn policy(&self) -> CrlPolicy {
        self.policy
    }

    pub fn set(&self) -> Arc<CrlSet> {
        self.set.clone()
    }

    /// Whether the CRL from `url` is held and needs no refresh yet.
    pub fn is_fresh(&self, url: &str, now: i64) -> bool {
        self.entries
            .get(url)
            .is_some_and(|e| e.crl.is_some() && self.due_at(e) > now)
    }

    /// When the entry should be fetched again.
    fn due_at(&self, e: &Entry) -> i64 {
        due_time(e, self.refresh_after, self.policy)
    }

    /// The earliest time any held CRL is due for a refresh.
    pub fn next_due(&self) -> Option<i64> {
        self.entries
            .values()
            .filter(|e| e.crl.is_some())
            .map(|e| self.due_at(e).max(e.retry_at))
            .min()
    }

    /// Fetches `urls` that are missing or due (`force`: all of them,
    /// regardless of age). Returns whether any CRL changed. Fetch failures
    /// are logged and leave the previous CRL in place; a distribution point
    /// that just failed is not retried for a short while.
    pub async fn ensure(&mut self, urls: &[String], force: bool) -> bool {
        let now = now_secs();
        let mut changed = false;
        for url in urls {
            let skip = !force
                && match self.entries.get(url) {
                    // Held and not due yet, or just tried in vain.
                    Some(e) => (e.crl.is_some() && self.due_at(e) > now) || now < e.retry_at,
                    None => false,
                };
            if skip {
                continue;
            }
            changed |= self.fetch_one(url, now).await;
        }
        if changed {
            self.rebuild();
        }
        changed
    }

    /// Refreshes every held CRL that is due; returns whether any changed.
    pub async fn refresh_due(&mut self, force: bool) -> bool {
        let now = now_secs();
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| force || e.crl.is_none() || self.due_at(e) <= now)
            .map(|(url, _)| url.clone())
            .collect();
        self.ensure(&due, force).await
    }

    async fn fetch_one(&mut self, url: &str, now: i64) -> bool {
        let result = self
            .fetcher
            .fetch(url)
            .await
            .and_then(|bytes| Crl::from_pem_or_der(bytes).map_err(|e| AgentError::crl(url, e)));
        let entry = self.entries.entry(url.to_owned()).or_insert(Entry {
            crl: None,
            fetched_at: 0,
            retry_at: 0,
        });
        entry.retry_at = now.saturating_add(RETRY_AFTER_FAILURE);
        match result {
            Ok(crl) => {
                // Never go back to an older CRL than the one held (a replay
                // by a man in the middle of the CRL transport).
                if entry
                    .crl
                    .as_ref()
                    .is_some_and(|held| crl.this_update() < held.this_update())
                {
                    tracing::warn!(url, "ignoring a CRL older than the one held");
                    return false;
                }
                let changed = entry.crl.as_ref().map(|held| held.der()) != Some(crl.der());
                entry.crl = Some(Arc::new(crl));
                entry.fetched_at = now;
                if due_time(entry, self.refresh_after, self.policy) > now {
                    entry.retry_at = 0;
                }
                tracing::debug!(url, changed, "fetched CRL");
                changed
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "CRL fetch failed");
                false
            }
        }
    }

    fn rebuild(&mut self) {
        let set: CrlSet = self
            .entries
            .values()
            .filter_map(|e| e.crl.clone())
            .collect();
        self.set = Arc::new(set);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// NIST PKITS (public test data, see tests/data/conformance): valid
    /// until 2030.
    const CRL: &[u8] = include_bytes!(
        "../../verifier/tests/data/conformance/pkits-2048/crls/TrustAnchorRootCRL.crl"
    );
    const URL: &str = "https://ca.example/root.crl";

    struct Fake {
        calls: AtomicUsize,
        fail: bool,
    }

    impl CrlFetcher for Fake {
        fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if self.fail {
                    Err(AgentError::crl(url, "down"))
                } else {
                    Ok(CRL.to_vec())
                }
            })
        }
    }

    fn cache(fail: bool) -> (CrlCache, Arc<Fake>) {
        let fake = Arc::new(Fake {
            calls: AtomicUsize::new(0),
            fail,
        });
        let cache = CrlCache::new(
            fake.clone(),
            Duration::from_secs(60),
            CrlPolicy::REQUIRE_FRESH,
        );
        (cache, fake)
    }

    #[tokio::test]
    async fn cached_until_due_then_refreshed() {
        let (mut cache, fake) = cache(false);
        let urls = [URL.to_owned()];
        assert!(cache.ensure(&urls, false).await);
        assert_eq!(cache.set().iter().count(), 1);
        assert!(cache.is_fresh(URL, now_secs()));
        // Fresh: not fetched again.
        assert!(!cache.ensure(&urls, false).await);
        assert!(!cache.refresh_due(false).await);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        // Past the refresh interval: fetched again in the background
        // (a successful fetch must not hold the URL back).
        if let Some(e) = cache.entries.get_mut(URL) {
            e.fetched_at -= 120;
        }
        assert!(!cache.is_fresh(URL, now_secs()));
        cache.refresh_due(false).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        assert!(cache.is_fresh(URL, now_secs()));
        // Forced: fetched whatever its age.
        cache.refresh_due(true).await;
        assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn failures_back_off() {
        let (mut cache, fake) = cache(true);
        let urls = [URL.to_owned()];
        assert!(!cache.ensure(&urls, false).await);
        assert!(!cache.ensure(&urls, false).await);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        assert!(!cache.is_fresh(URL, now_secs()));
        assert_eq!(cache.set().iter().count(), 0);
    }

    /// Serves `first`, then `later` on every further fetch.
    struct Sequence {
        first: &'static [u8],
        later: &'static [u8],
        calls: AtomicUsize,
    }

    impl CrlFetcher for Sequence {
        fn fetch<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<u8>, AgentError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let der = if n == 0 { self.first } else { self.later };
            Box::pin(async move { Ok(der.to_vec()) })
        }
    }

    /// A CRL older than the one held (a replay in the CRL transport) is
    /// not taken, so a revocation it predates cannot be undone.
    #[tokio::test]
    async fn an_older_crl_does_not_replace_the_one_held() {
        const OLDER: &[u8] = include_bytes!(
            "../../verifier/tests/data/conformance/pkits-2048/crls/pre2000CRLnextUpdateCACRL.crl"
        );
        let fetcher = Arc::new(Sequence {
            first: CRL,
            later: OLDER,
            calls: AtomicUsize::new(0),
        });
        let mut cache = CrlCache::new(
            fetcher.clone(),
            Duration::from_secs(60),
            CrlPolicy::ALLOW_MISSING,
        );
        let urls = [URL.to_owned()];
        assert!(cache.ensure(&urls, false).await);
        assert!(
            !cache.ensure(&urls, true).await,
            "the older CRL changed nothing"
        );
        assert_eq!(fetcher.calls.load(Ordering::SeqCst), 2);
        let held: Vec<&[u8]> = cache.set.iter().map(Crl::der).collect();
        assert_eq!(held, [CRL]);
    }

    #[test]
    fn distribution_points_of_a_certificate() {
        // A PKITS certificate without a URI distribution point, and garbage.
        let cert = include_bytes!(
            "../../verifier/tests/data/conformance/pkits-2048/certs/AllCertificatesNoPoliciesTest2EE.crt"
        );
        assert!(distribution_points(cert).is_empty());
        assert!(distribution_points(b"not a certificate").is_empty());
    }
}
