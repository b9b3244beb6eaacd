//! The issuing-CA memo of a [`Verifier`](crate::Verifier).
//!
//! Every attestation of an agency carries the same issuing-CA certificate,
//! and a full validation re-verifies the root's signature over it, re-parses
//! it and re-checks its profile properties each time. Once a chain through
//! an issuing CA has been fully validated, the verifier remembers what of
//! that validation depends only on the issuing CA's exact DER bytes, the
//! pinned roots and the required EKU:
//!
//! - the root's signature over it, its name chaining to that root, its
//!   basic constraints (cA, pathLen), key usage (keyCertSign, cRLSign), EKU
//!   list (which must allow the required EKU), critical extensions, and
//!   that it is well-formed for rustls-webpki and x509-parser;
//! - which pinned root it chains to (the only one path building could
//!   pick, see [`TrustAnchors::sole_issuer_of`]);
//! - its serial, issuer name, key, validity window, permitted servers
//!   (ARC.11) and subject, as read during that validation.
//!
//! A later chain `[leaf, same issuing CA]` then costs the leaf's signature
//! plus the per-call checks, all redone on every call: rustls-webpki
//! validates the leaf with the issuing CA as its only trust anchor (leaf
//! signature, validity, basic constraints, EKU, critical extensions, name
//! chaining); the leaf must not assert keyCertSign, nor repeat the CA's
//! subject and key (rustls-webpki's loop rule); the issuing CA must be
//! within its validity period and the root valid at the validation time;
//! the leaf's server must be one the CA may certify; and both certificates
//! are checked against the CRLs under the policy, exactly as
//! [`validate_path`](crate::path::validate_path) does.
//!
//! For such a chain, the full validation can only build the one path leaf,
//! issuing CA, root, so these checks plus the remembered ones are exactly
//! the full validation's. The memo never rejects: if any check fails, the
//! verifier runs the full validation, whose verdict and error are
//! returned; a memo hit only ever gives the acceptance the full validation
//! would give. Nothing is remembered (and the memo is not used) for chains
//! of another shape, for issuing CAs or roots with name constraints, when
//! several pinned roots carry the issuing CA's issuer name, or when a
//! pinned root carries the issuing CA's own name.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::X509Certificate;

use crate::crl::{CertUnderCheck, CrlPolicy, CrlSet};
use crate::path::{CaUsage, TrustAnchors, ValidatedPath};
use crate::profile::{self, Expected};
use crate::signature::PROFILE_ALGORITHMS;
use crate::PathPosition;

/// Most issuing CAs remembered; when full, one is forgotten for each new one.
pub const MAX_REMEMBERED_ISSUERS: usize = 256;

/// How a [`Verifier`](crate::Verifier)'s issuing-CA memo has been used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IssuerMemoStats {
    /// Issuing-CA certificates currently remembered.
    pub entries: usize,
    /// Verifications whose issuing CA was remembered (for the required
    /// EKU), so the short path was tried.
    pub hits: u64,
    /// Of those, how many the short path did not accept, so the full
    /// validation ran and gave the verdict.
    pub fallbacks: u64,
    /// Of the hits, how many read the leaf without x509-parser: leaves of
    /// govtrust's own shape that pass the leaf rules (see the verifier's
    /// `leaf` module).
    pub fast_leaf_reads: u64,
}

/// The memo: issuing-CA certificate DER to what its full validation
/// established. Bounded by [`MAX_REMEMBERED_ISSUERS`].
#[derive(Default)]
pub(crate) struct IssuerMemo {
    entries: RwLock<HashMap<Vec<u8>, Arc<Remembered>, BuildHasherDefault<TailHasher>>>,
    hits: AtomicU64,
    fallbacks: AtomicU64,
    fast_leaf_reads: AtomicU64,
}

/// Hashes an issuing-CA certificate by its length and its last 16 octets
/// (the end of its signature), not by SipHash over its ~700 octets on every
/// verification. The map still compares whole certificates for equality,
/// and its keys are only CAs that fully validated against the pinned roots
/// (at most [`MAX_REMEMBERED_ISSUERS`]), so keys that collide cost a few
/// comparisons, never a wrong answer.
#[derive(Default)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(29) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::fmt::Debug for IssuerMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stats = self.stats();
        f.debug_struct("IssuerMemo")
            .field("entries", &stats.entries)
            .field("hits", &stats.hits)
            .field("fallbacks", &stats.fallbacks)
            .finish()
    }
}

/// What is known of one fully validated issuing-CA certificate.
struct Remembered {
    /// The CA as a rustls-webpki trust anchor: its subject and key (it has
    /// no name constraints, or it would not be remembered).
    anchor: TrustAnchor<'static>,
    /// The anchor's SubjectPublicKeyInfo DER, for the loop rule (encoded
    /// once here rather than on every verification).
    anchor_spki: Vec<u8>,
    /// The required EKUs a full validation accepted this CA for.
    ekus: Vec<&'static [u8]>,
    /// Index of the pinned root it chains to.
    root: usize,
    /// Serial and issuer Name content octets, as rustls-webpki reads them
    /// (for the check against the root's CRL).
    serial: Vec<u8>,
    issuer_name: Vec<u8>,
    /// SubjectPublicKeyInfo DER and cRLSign permission (for the check of
    /// the leaf against the CA's CRL).
    spki: Vec<u8>,
    can_sign_crls: bool,
    /// notBefore and notAfter, seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
    /// ARC.11 permitted server names.
    permitted_servers: Vec<String>,
    /// RFC 4514 subjects of the CA and of its root, for the verdict.
    subject: String,
    root_subject: String,
}

/// A chain the memo accepted: what the verdict needs from the CAs.
pub(crate) struct MemoAccepted {
    pub issuer: String,
    pub root: String,
}

impl IssuerMemo {
    pub(crate) fn stats(&self) -> IssuerMemoStats {
        IssuerMemoStats {
            entries: self.entries.read().map_or(0, |m| m.len()),
            hits: self.hits.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            fast_leaf_reads: self.fast_leaf_reads.load(Ordering::Relaxed),
        }
    }

    /// Counts a hit whose leaf was read without x509-parser.
    pub(crate) fn count_fast_leaf_read(&self) {
        self.fast_leaf_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The short path for `leaf` under the issuing CA `ica`: `None` if the
    /// CA is not remembered for the expected EKU, `Some(None)` if it is but
    /// the short path does not accept (the caller then runs the full
    /// validation), `Some(Some(_))` if it accepts. `leaf_usage` is the
    /// leaf's basic constraints and key usage, read from the caller's
    /// parse of the same DER (a second x509-parser parse of the leaf cost
    /// as much as the rest of the short path besides the signature).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_verify(
        &self,
        anchors: &TrustAnchors,
        leaf: &CertificateDer<'_>,
        leaf_usage: CaUsage,
        ica: &[u8],
        expected: &Expected,
        crls: &CrlSet,
        policy: &CrlPolicy,
        time: UnixTime,
    ) -> Option<Option<MemoAccepted>> {
        let eku = expected.subject.eku();
        let known = {
            let entries = self.entries.read().ok()?;
            entries.get(ica).filter(|r| r.ekus.contains(&eku))?.clone()
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        let verdict = known.verify_leaf(anchors, leaf, leaf_usage, expected, crls, policy, time);
        if verdict.is_none() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        Some(verdict)
    }

    /// After a full validation of `[leaf, ica]` for `eku` at `time`
    /// accepted `path` (whose issuing CA parsed as `issuer` and passed the
    /// profile's issuer check, and whose root's subject is `root_subject`),
    /// remembers the issuing CA if the chain has the shape the short path
    /// covers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn remember(
        &self,
        anchors: &TrustAnchors,
        ica: &[u8],
        path: &ValidatedPath,
        issuer: &X509Certificate<'_>,
        eku: &'static [u8],
        root_subject: &str,
        time: UnixTime,
    ) {
        let Some(mut new) = Remembered::from_validated(anchors, ica, path, issuer, root_subject)
        else {
            return;
        };
        // rustls-webpki found the CA valid at `time`; the window read by
        // x509-parser, which the short path checks, must agree.
        if !new.valid_at(time) {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let mut ekus = entries
            .get(ica)
            .map(|old| old.ekus.clone())
            .unwrap_or_default();
        if !ekus.contains(&eku) {
            ekus.push(eku);
        }
        new.ekus = ekus;
        if entries.len() >= MAX_REMEMBERED_ISSUERS && !entries.contains_key(ica) {
            // Evict simply: any one entry. Only certificates that fully
            // validated against the pinned roots get here.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(ica.to_vec(), Arc::new(new));
    }
}

impl Remembered {
    fn from_validated(
        anchors: &TrustAnchors,
        ica: &[u8],
        path: &ValidatedPath,
        issuer: &X509Certificate<'_>,
        root_subject: &str,
    ) -> Option<Self> {
        // Exactly leaf, this issuing CA, root.
        match path.certificates.as_slice() {
            [_, ca] if ca.as_ref() == ica => {}
            _ => return None,
        }
        let der = CertificateDer::from(ica);
        let anchor = webpki::anchor_from_trusted_cert(&der).ok()?.to_owned();
        if anchor.name_constraints.is_some() {
            return None;
        }
        let cert = EndEntityCert::try_from(&der).ok()?;
        let root = anchors.sole_issuer_of(cert.subject(), cert.issuer())?;
        if anchors.root(root)?.der.as_ref() != path.root.as_ref() {
            return None;
        }
        let usage = CaUsage::of_der(ica).ok()?;
        if !usage.can_sign_certs {
            return None;
        }
        Some(Remembered {
            anchor_spki: webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
            ekus: Vec::new(),
            root,
            serial: cert.serial().to_vec(),
            issuer_name: cert.issuer().to_vec(),
            spki: cert.subject_public_key_info().as_ref().to_vec(),
            can_sign_crls: usage.can_sign_crls,
            not_before: issuer.validity().not_before.timestamp(),
            not_after: issuer.validity().not_after.timestamp(),
            permitted_servers: profile::permitted_servers(issuer).ok()?,
            subject: issuer.subject().to_string(),
            root_subject: root_subject.to_owned(),
            anchor,
        })
    }

    /// notBefore <= `time` <= notAfter (rustls-webpki's rule).
    fn valid_at(&self, time: UnixTime) -> bool {
        let now = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
        self.not_before <= now && now <= self.not_after
    }

    /// Every check of the full validation that depends on the leaf, the
    /// expectation, the CRLs or the time; `None` as soon as one fails.
    #[allow(clippy::too_many_arguments)]
    fn verify_leaf(
        &self,
        anchors: &TrustAnchors,
        leaf: &CertificateDer<'_>,
        leaf_usage: CaUsage,
        expected: &Expected,
        crls: &CrlSet,
        policy: &CrlPolicy,
        time: UnixTime,
    ) -> Option<MemoAccepted> {
        // The issuing CA may certify the user's server (ARC.11).
        let server = expected.user_id.server_name();
        if !self.permitted_servers.iter().any(|p| p == server) {
            return None;
        }
        // The issuing CA's validity period, as rustls-webpki checks it.
        if !self.valid_at(time) {
            return None;
        }
        // The root: a CA that may sign certificates, valid at `time`.
        let root = anchors.root(self.root)?;
        root.check(time).ok()?;

        // The leaf under the issuing CA as the only trust anchor.
        let end_entity = EndEntityCert::try_from(leaf).ok()?;
        let leaf_checks = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
            let ee = path.end_entity();
            // Path building would not take the CA as the issuer of a
            // certificate with its own subject and key (loop rule).
            if path.intermediate_certificates().next().is_some()
                || (ee.subject() == self.anchor.subject.as_ref()
                    && ee.subject_public_key_info().as_ref() == self.anchor_spki)
            {
                return Err(webpki::Error::UnknownIssuer);
            }
            leaf_usage.check_end_entity()
        };
        end_entity
            .verify_for_usage(
                PROFILE_ALGORITHMS,
                std::slice::from_ref(&self.anchor),
                &[],
                time,
                KeyUsage::required_if_present(expected.subject.eku()),
                None,
                Some(&leaf_checks),
            )
            .ok()?;

        // Revocation: the leaf against the issuing CA's CRLs, the issuing
        // CA against the root's, as `validate_path` checks them.
        crls.check(
            CertUnderCheck {
                position: PathPosition::Leaf,
                serial: end_entity.serial(),
                issuer_name: end_entity.issuer(),
                issuer_spki: &self.spki,
                issuer_can_sign_crls: self.can_sign_crls,
            },
            time,
            policy,
        )
        .ok()?;
        crls.check(
            CertUnderCheck {
                position: PathPosition::Issuer,
                serial: &self.serial,
                issuer_name: &self.issuer_name,
                issuer_spki: &root.spki,
                issuer_can_sign_crls: root.usage.can_sign_crls,
            },
            time,
            policy,
        )
        .ok()?;

        Some(MemoAccepted {
            issuer: self.subject.clone(),
            root: self.root_subject.clone(),
        })
    }
}
