//! Who is calling: agencies by enrollment-client certificate (mTLS), operators
//! by bearer token; plus the per-agency rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use govtrust_verifier::path::{validate_path, PathOptions, ValidatedPath};
use govtrust_verifier::signature::PROFILE_ALGORITHMS;
use govtrust_verifier::{oid, profile, CertificateDer, CrlPolicy, CrlSet, TrustAnchors, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::ApiError;

/// An authenticated agency client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyClient {
    /// The authority ID from the certificate's subject serialNumber.
    pub authority_id: String,
    /// Serial of the enrollment-client certificate (hex), for the audit log.
    pub certificate_serial: String,
}

/// Decides whether a TLS peer chain is an enrollment client of this PKI:
/// the chain validates to a pinned root for EKU ARC.3 (which the leaf must
/// list explicitly), and the subject carries an authority record. The
/// caller checks revocation and the authority's status.
pub fn authenticate_agency(
    peer: &[CertificateDer<'static>],
    anchors: &TrustAnchors,
    crls: &CrlSet,
    now: UnixTime,
) -> Result<AgencyClient, ApiError> {
    authenticate(peer, anchors, crls, now).map(|(client, _)| client)
}

/// A successful [`authenticate_agency`] without CRLs, with the span of time
/// in which the same chain authenticates the same way: the intersection of
/// the validity periods of every certificate on the validated path, root
/// included. Nothing else in that decision depends on the time, so the
/// result may be reused for the same chain (one TLS connection) within
/// the span; revocation and the authority's status are checked per request
/// by the caller as before.
#[derive(Clone, Debug)]
pub struct AuthenticatedChain {
    client: AgencyClient,
    /// Unix seconds, inclusive.
    not_before: i64,
    /// Unix seconds, inclusive.
    not_after: i64,
}

impl AuthenticatedChain {
    /// The agency, as authenticated at the time of validation.
    pub fn client(&self) -> &AgencyClient {
        &self.client
    }

    /// The agency, if `now` is within the span.
    pub fn at(&self, now: UnixTime) -> Option<&AgencyClient> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        (self.not_before <= now && now <= self.not_after).then_some(&self.client)
    }
}

/// [`authenticate_agency`] with no CRLs (revocation of enrollment clients
/// is checked against the database), keeping the span in which the result
/// holds.
pub fn authenticate_agency_chain(
    peer: &[CertificateDer<'static>],
    anchors: &TrustAnchors,
    now: UnixTime,
) -> Result<AuthenticatedChain, ApiError> {
    let (client, path) = authenticate(peer, anchors, &CrlSet::new(), now)?;
    let (mut not_before, mut not_after) = (i64::MIN, i64::MAX);
    for der in path.certificates.iter().chain(std::iter::once(&path.root)) {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| ApiError::client_cert_rejected(format!("client certificate: {e}")))?;
        not_before = not_before.max(cert.validity().not_before.timestamp());
        not_after = not_after.min(cert.validity().not_after.timestamp());
    }
    Ok(AuthenticatedChain {
        client,
        not_before,
        not_after,
    })
}

fn authenticate(
    peer: &[CertificateDer<'static>],
    anchors: &TrustAnchors,
    crls: &CrlSet,
    now: UnixTime,
) -> Result<(AgencyClient, ValidatedPath), ApiError> {
    let (leaf, intermediates) = peer.split_first().ok_or_else(|| {
        ApiError::no_client_cert("agency endpoints need an enrollment-client certificate (mTLS)")
    })?;
    let rejected = |why: String| ApiError::client_cert_rejected(why);
    let path = validate_path(
        anchors,
        leaf,
        intermediates,
        &PathOptions {
            algorithms: PROFILE_ALGORITHMS,
            eku: Some(oid::EKU_ENROLLMENT_CLIENT),
            time: now,
            crls,
            crl_policy: CrlPolicy::ALLOW_MISSING,
        },
    )
    .map_err(|e| rejected(format!("client certificate: {e} ({})", e.code())))?;
    let (_, cert) = X509Certificate::from_der(leaf)
        .map_err(|e| rejected(format!("client certificate: {e}")))?;
    let lists_arc3 = cert.extended_key_usage().ok().flatten().is_some_and(|eku| {
        eku.value
            .other
            .iter()
            .any(|o| o.as_bytes() == oid::EKU_ENROLLMENT_CLIENT)
    });
    if !lists_arc3 {
        return Err(rejected(
            "client certificate lacks the enrollment-client EKU (ARC.3) (wrong_eku)".into(),
        ));
    }
    let record = profile::authority_record(&cert)
        .map_err(|e| rejected(format!("client certificate subject: {e}")))?;
    Ok((
        AgencyClient {
            authority_id: record.id,
            certificate_serial: govtrust_pki::hex(cert.raw_serial()),
        },
        path,
    ))
}

/// SHA-256 of a bearer token, hex: only this is stored.
pub fn token_hash(token: &str) -> String {
    govtrust_pki::hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// A fresh operator bearer token (256 random bits, URL-safe base64).
pub fn new_token() -> anyhow::Result<String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("system randomness unavailable"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Token buckets per agency: `rate` requests per second sustained, `burst`
/// at once. In-process; with several replicas each enforces its share.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `rate` per second with bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long to wait.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_enforces_burst_then_rate() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok(), "buckets are per agency");
    }

    /// The per-connection memo must stop answering once any certificate of
    /// the path is outside its validity (here the one-hour client
    /// certificate), and before the path's start.
    #[test]
    fn a_remembered_chain_holds_only_within_every_validity() {
        use govtrust_pki::der::DistinguishedName;
        use govtrust_pki::signer::{FileSigner, KeyAlgorithm, Signer};
        use govtrust_pki::{IssuingCa, RootCa, Validity};

        let day = Duration::from_secs(86_400);
        let root = RootCa::create(
            &DistinguishedName::ca("Memo Root", None).expect("dn"),
            FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key"),
            Validity::from_now(day * 365),
        )
        .expect("root");
        let ica_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let ica_cert = root
            .issue_issuing_ca(
                &DistinguishedName::ca("Memo Issuing CA", None).expect("dn"),
                ica_key.spki_der().to_vec(),
                &["localhost".to_owned()],
                Validity::from_now(day * 100),
                None,
            )
            .expect("issuing CA");
        let ica = IssuingCa::load(ica_cert, root.certificate().der().clone(), ica_key, None)
            .expect("load");
        let record = govtrust_verifier::AuthorityRecord {
            id: "DE-MEMO-1".into(),
            name: "Memo Office".into(),
            ..Default::default()
        };
        let client_key = FileSigner::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let issued = ica
            .issue_enrollment_client(
                &record,
                client_key.spki_der().to_vec(),
                Validity::from_now(Duration::from_secs(3600)),
            )
            .expect("client certificate");
        let anchors = TrustAnchors::from_der([root.certificate().der().clone()]).expect("anchors");
        let now = UnixTime::now();
        let chain = authenticate_agency_chain(&issued.chain, &anchors, now).expect("valid chain");
        let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        assert_eq!(
            chain.at(now).map(|c| c.authority_id.as_str()),
            Some("DE-MEMO-1")
        );
        assert!(
            chain.at(at(now.as_secs() + 2 * 3600)).is_none(),
            "client certificate expired"
        );
        assert!(
            chain.at(at(now.as_secs() - 86_400)).is_none(),
            "before every notBefore"
        );
    }

    #[test]
    fn token_hash_is_stable_hex() {
        assert_eq!(token_hash("x").len(), 64);
        assert_eq!(token_hash("x"), token_hash("x"));
        assert_ne!(token_hash("x"), token_hash("y"));
    }
}
