//! The matrix-rust-sdk adapter: [`RawX509Verifier`] has the shape of
//! matrix-rust-sdk's trait of the same name (`fn verify(&self, message:
//! &[u8], signature: &RawX509Signature) -> bool`, `Debug + Send + Sync`);
//! [`GovtrustRawX509Verifier`] implements it with the govtrust rules, so an
//! application embedding matrix-sdk can wrap it in a one-line
//! `impl matrix_sdk_crypto::x509::RawX509Verifier`.
//!
//! It exists apart from [`super::verify`] because the trait's shape
//! differs: no user, no key ID, no CRLs and no time are passed, so the
//! adapter derives the user from the message and holds CRLs and clock
//! itself.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls_pki_types::UnixTime;
use serde_json::{Map, Value};

use super::{CmsSignature, ElementX509Verifier, VerifiedSigner, X509SignatureScheme};
use crate::{CrlSet, Error, UserId};

/// matrix-rust-sdk's `RawX509Signature`: the simplified form its CMS parser
/// hands to a [`RawX509Verifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawX509Signature {
    /// The raw signature bytes.
    pub signature_bytes: Vec<u8>,
    /// The certificates as PEM, signer first, then intermediates
    /// (matrix-rust-sdk joins them with CRLF).
    pub certificate_chain: String,
    /// The signature scheme.
    pub signature_scheme: X509SignatureScheme,
}

impl RawX509Signature {
    /// The raw form of a CMS signature that passed [`super::parse_cms_pem`].
    pub fn from_cms(cms: &CmsSignature) -> Self {
        let certificate_chain = cms
            .chain
            .iter()
            .map(|c| {
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::CRLF, c)
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        RawX509Signature {
            signature_bytes: cms.signature.clone(),
            certificate_chain,
            signature_scheme: cms.scheme,
        }
    }
}

/// Something that can verify an X.509 signature: the shape of
/// matrix-rust-sdk's `x509::RawX509Verifier` trait (Element's
/// `io.element.x509`), so that an application embedding matrix-sdk can
/// forward its trait to [`GovtrustRawX509Verifier`] in one line.
pub trait RawX509Verifier: fmt::Debug + Send + Sync {
    /// Whether `signature` is a valid X.509 signature over `message` by a
    /// certificate issued through a trusted CA.
    fn verify(&self, message: &[u8], signature: &RawX509Signature) -> bool;
}

/// The govtrust [`RawX509Verifier`]: every rule of
/// [`ElementX509Verifier::verify_signer`], with the user taken from the
/// signed message itself.
///
/// matrix-rust-sdk passes only the message (the canonical JSON of the
/// master key) and the signature; it checks the SAN against the user
/// outside the trait and never checks the key ID. This adapter does not
/// rely on that: it parses `message` as the signed master key object and
/// binds the certificate's SAN to its `user_id` (a message that is not such
/// an object is refused), so the trait alone is as strict as
/// [`ElementX509Verifier::verify_master_key`] except for the key ID.
///
/// The trait has no CRL or time parameter: the adapter holds the CRLs
/// ([`GovtrustRawX509Verifier::set_crls`], replaced as the application
/// fetches fresh ones) and uses the system clock unless a fixed time is set
/// for tests. [`GovtrustRawX509Verifier::verify_detailed`] gives the typed
/// reason the `bool` hides.
#[derive(Debug)]
pub struct GovtrustRawX509Verifier {
    verifier: ElementX509Verifier,
    crls: RwLock<Arc<CrlSet>>,
    fixed_time: Option<UnixTime>,
}

impl GovtrustRawX509Verifier {
    /// An adapter over `verifier` with no CRLs yet (under
    /// [`crate::CrlPolicy::REQUIRE_FRESH`] it refuses everything until
    /// [`GovtrustRawX509Verifier::set_crls`] is called).
    pub fn new(verifier: ElementX509Verifier) -> Self {
        GovtrustRawX509Verifier {
            verifier,
            crls: RwLock::new(Arc::new(CrlSet::new())),
            fixed_time: None,
        }
    }

    /// Verifies at `time` instead of the system clock (tests, replays).
    pub fn at_time(mut self, time: UnixTime) -> Self {
        self.fixed_time = Some(time);
        self
    }

    /// Replaces the CRLs used from now on.
    pub fn set_crls(&self, crls: CrlSet) {
        let fresh = Arc::new(crls);
        match self.crls.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// [`RawX509Verifier::verify`] with the reason for a refusal.
    pub fn verify_detailed(
        &self,
        message: &[u8],
        signature: &RawX509Signature,
    ) -> Result<VerifiedSigner, Error> {
        let X509SignatureScheme::RsaPssSha512 = signature.signature_scheme;
        let object: Map<String, Value> = serde_json::from_slice(message).map_err(|e| {
            Error::MasterKeyInvalid(format!("the signed message is not a JSON object: {e}"))
        })?;
        let user = object
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::MasterKeyInvalid("the signed object has no user_id".into()))?;
        let user = UserId::parse(user)?;
        let chain = crate::pem::certificates(signature.certificate_chain.as_bytes())?;
        let crls = match self.crls.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let now = self.fixed_time.unwrap_or_else(UnixTime::now);
        self.verifier.verify_signer(
            &user,
            &chain,
            &signature.signature_bytes,
            message,
            &crls,
            now,
        )
    }
}

impl RawX509Verifier for GovtrustRawX509Verifier {
    fn verify(&self, message: &[u8], signature: &RawX509Signature) -> bool {
        self.verify_detailed(message, signature).is_ok()
    }
}
