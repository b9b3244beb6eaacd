//! Certificate authorities: a CA certificate with the signer holding its
//! key. Every certificate and CRL they produce is checked before it is
//! returned — by the same verifier clients run, for attestations.

use std::time::Duration;

use govtrust_verifier::path::{validate_path, PathOptions};
use govtrust_verifier::signature::PROFILE_ALGORITHMS;
use govtrust_verifier::{
    oid, profile, AuthorityRecord, CertificateDer, Crl, CrlPolicy, CrlSet, Ed25519Key,
    ElementX509Verifier, Expected, Subject, TrustAnchors, UnixTime, UserId, Verifier,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{CrlTemplate, RevokedCertificate};
use crate::der::{key_identifier, DistinguishedName};
use crate::profile::{
    self as certprofile, AttestationRequest, IdentitySigningRequest, IssuerInfo, Validity,
};
use crate::signer::{FileSigner, KeyAlgorithm, Signer};
use crate::template::CertificateTemplate;
use crate::Error;

/// A CA certificate with the fields issuance copies from it.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
    info: IssuerInfo,
    spki: Vec<u8>,
    permitted_servers: Vec<String>,
}

impl CaCertificate {
    /// Reads a CA certificate.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, Error> {
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| Error::InvalidRequest(format!("CA certificate: {e}")))?;
        if !cert.is_ca() {
            return Err(Error::InvalidRequest("not a CA certificate".into()));
        }
        let spki = cert.public_key().raw.to_vec();
        let info = IssuerInfo {
            subject: cert.subject().as_raw().to_vec(),
            key_id: key_identifier(&spki)?,
            not_after: OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                .map_err(|e| Error::InvalidRequest(format!("CA validity: {e}")))?,
        };
        let permitted_servers = profile::permitted_servers(&cert)?;
        Ok(CaCertificate {
            der,
            info,
            spki,
            permitted_servers,
        })
    }

    /// The certificate.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The Matrix server names the CA may certify (ARC.11; empty for roots).
    pub fn permitted_servers(&self) -> &[String] {
        &self.permitted_servers
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.info.not_after
    }

    /// Subject `Name` DER.
    pub fn subject_der(&self) -> &[u8] {
        &self.info.subject
    }

    /// Subject in RFC 4514 form, for display.
    pub fn subject(&self) -> String {
        X509Certificate::from_der(&self.der)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default()
    }

    fn check_signer(&self, signer: &dyn Signer) -> Result<(), Error> {
        if signer.spki_der() == self.spki.as_slice() {
            Ok(())
        } else {
            Err(Error::Key(
                "the signer's key does not match the CA certificate".into(),
            ))
        }
    }

    fn sign_crl(
        &self,
        signer: &dyn Signer,
        revoked: &[RevokedCertificate],
        number: u64,
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Crl, Error> {
        let der = CrlTemplate {
            issuer: &self.info.subject,
            issuer_key_id: &self.info.key_id,
            number,
            this_update,
            next_update: this_update + lifetime,
            revoked,
        }
        .sign(signer)?;
        let crl = Crl::from_der(der)?;
        crl.verify_signed_by(&self.spki)?;
        if crl.len() != revoked.len() {
            return Err(Error::SelfCheck(govtrust_verifier::Error::Malformed {
                what: "issued CRL",
                detail: "entry count differs from the request".into(),
            }));
        }
        Ok(crl)
    }
}

/// A certificate just issued, with the chain a relying party needs.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The certificate first, then its issuing CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// Serial number, big-endian.
    pub serial: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl IssuedCertificate {
    /// The issued certificate itself.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Serial number in lower-case hex.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }
}

/// Lower-case hex of bytes (serial numbers, key IDs).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A root CA: offline in production, used to create issuing CAs and to sign
/// the root CRL that revokes them.
pub struct RootCa<S> {
    cert: CaCertificate,
    signer: S,
}

impl<S: Signer> RootCa<S> {
    /// Creates a self-signed root for the signer's key.
    pub fn create(name: &DistinguishedName, signer: S, validity: Validity) -> Result<Self, Error> {
        let template = certprofile::root(name, signer.spki_der().to_vec(), validity)?;
        let der = template.sign(&signer)?;
        // Self-check: the signature verifies under its own key and the
        // verifier can pin it.
        let (_, parsed) = X509Certificate::from_der(&der)
            .map_err(|e| Error::InvalidRequest(format!("issued root: {e}")))?;
        parsed
            .verify_signature(None)
            .map_err(|_| Error::SelfCheck(govtrust_verifier::Error::BadSignature))?;
        TrustAnchors::from_der([der.clone()])?;
        RootCa::load(der, signer)
    }

    /// A root from its certificate and the signer holding its key.
    pub fn load(der: CertificateDer<'static>, signer: S) -> Result<Self, Error> {
        let cert = CaCertificate::from_der(der)?;
        cert.check_signer(&signer)?;
        Ok(RootCa { cert, signer })
    }

    /// The root certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.cert
    }

    /// Issues an issuing CA certificate for `spki`, limited to
    /// `permitted_servers`. Its whole chain is proven when it is loaded as an
    /// [`IssuingCa`] (which issues and verifies a probe attestation).
    pub fn issue_issuing_ca(
        &self,
        name: &DistinguishedName,
        spki: Vec<u8>,
        permitted_servers: &[String],
        validity: Validity,
        crl_url: Option<&str>,
    ) -> Result<CertificateDer<'static>, Error> {
        let template = certprofile::issuing_ca(
            name,
            spki,
            permitted_servers,
            &self.cert.info,
            validity,
            crl_url,
        )?;
        let der = template.sign(&self.signer)?;
        let (_, parsed) = X509Certificate::from_der(&der)
            .map_err(|e| Error::InvalidRequest(format!("issued CA: {e}")))?;
        let root_spki = X509Certificate::from_der(&self.cert.der)
            .map_err(|e| Error::InvalidRequest(format!("root: {e}")))?
            .1;
        parsed
            .verify_signature(Some(root_spki.public_key()))
            .map_err(|_| Error::SelfCheck(govtrust_verifier::Error::BadSignature))?;
        if profile::permitted_servers(&parsed)? != permitted_servers {
            return Err(Error::SelfCheck(govtrust_verifier::Error::Malformed {
                what: "issued CA",
                detail: "permitted servers differ from the request".into(),
            }));
        }
        Ok(der)
    }

    /// Signs the root's CRL (revoking issuing CAs).
    pub fn crl(
        &self,
        revoked: &[RevokedCertificate],
        number: u64,
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Vec<u8>, Error> {
        self.cert
            .sign_crl(&self.signer, revoked, number, this_update, lifetime)
            .map(Crl::into_der)
    }
}

/// An online issuing CA: issues attestations, enrollment-client and TLS
/// certificates, and signs its CRL.
pub struct IssuingCa<S> {
    cert: CaCertificate,
    root: CertificateDer<'static>,
    signer: S,
    verifier: Verifier,
    crl_url: Option<String>,
}

impl<S: Signer> IssuingCa<S> {
    /// Loads an issuing CA and proves its chain: a probe attestation for a
    /// throw-away key on the CA's first permitted server is issued and must
    /// pass the verifier against `root`.
    pub fn load(
        cert: CertificateDer<'static>,
        root: CertificateDer<'static>,
        signer: S,
        crl_url: Option<String>,
    ) -> Result<Self, Error> {
        let cert = CaCertificate::from_der(cert)?;
        cert.check_signer(&signer)?;
        let verifier = Verifier::new(
            TrustAnchors::from_der([root.clone()])?,
            CrlPolicy::ALLOW_MISSING,
        );
        let ca = IssuingCa {
            cert,
            root,
            signer,
            verifier,
            crl_url,
        };
        ca.probe()?;
        Ok(ca)
    }

    fn probe(&self) -> Result<(), Error> {
        let server = self.cert.permitted_servers.first().ok_or_else(|| {
            Error::InvalidRequest("the issuing CA permits no Matrix server (ARC.11)".into())
        })?;
        let probe_key = FileSigner::generate(KeyAlgorithm::Ed25519)?;
        let raw: [u8; 32] = probe_key.spki_der()[12..]
            .try_into()
            .map_err(|_| Error::Key("probe key".into()))?;
        let request = AttestationRequest {
            user_id: UserId::parse(&format!("@govtrust-probe:{server}"))?,
            subject: Subject::Identity,
            key: Ed25519Key::from_bytes(raw),
            authority: AuthorityRecord {
                id: "PROBE".into(),
                name: "govtrust issuing CA self-test".into(),
                ..Default::default()
            },
        };
        self.issue_attestation(&request, Validity::from_now(Duration::from_secs(300)))
            .map(|_| ())
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CaCertificate {
        &self.cert
    }

    /// The root this CA chains to.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The CRL distribution point URL written into issued certificates.
    pub fn crl_url(&self) -> Option<&str> {
        self.crl_url.as_deref()
    }

    /// Signs the template `make` builds for a certificate naming `user_id`,
    /// after rejecting a user on a Matrix server this CA's ARC.11 list does
    /// not permit (before any template is built).
    fn sign_for_user(
        &self,
        user_id: &UserId,
        make: impl FnOnce() -> Result<CertificateTemplate, Error>,
    ) -> Result<IssuedCertificate, Error> {
        let server = user_id.server_name();
        if !self.cert.permitted_servers.iter().any(|s| s == server) {
            return Err(Error::InvalidRequest(format!(
                "this issuing CA may not certify users on {server}"
            )));
        }
        self.sign_end_entity(&make()?)
    }

    fn sign_end_entity(&self, template: &CertificateTemplate) -> Result<IssuedCertificate, Error> {
        let der = template.sign(&self.signer)?;
        Ok(IssuedCertificate {
            chain: vec![der, self.cert.der.clone()],
            serial: template.serial.clone(),
            not_before: template.not_before,
            not_after: template.not_after,
        })
    }

    /// The instant a fresh certificate is checked at: now, clamped into
    /// its validity (it may start in the future or be backdated).
    fn check_time(issued: &IssuedCertificate) -> UnixTime {
        let at = OffsetDateTime::now_utc()
            .clamp(issued.not_before + Duration::from_secs(1), issued.not_after);
        UnixTime::since_unix_epoch(Duration::from_secs(
            u64::try_from(at.unix_timestamp()).unwrap_or(0),
        ))
    }

    /// Issues a device or identity attestation; the result has passed the
    /// verifier for exactly the request.
    pub fn issue_attestation(
        &self,
        request: &AttestationRequest,
        validity: Validity,
    ) -> Result<IssuedCertificate, Error> {
        let issued = self.sign_for_user(&request.user_id, || {
            certprofile::attestation(request, &self.cert.info, validity, self.crl_url())
        })?;
        let expected = Expected {
            user_id: request.user_id.clone(),
            subject: request.subject.clone(),
            key: request.key,
        };
        let verified = self.verifier.verify(
            &expected,
            &issued.chain,
            &CrlSet::new(),
            Self::check_time(&issued),
        )?;
        authority_reads_back(&verified.authority, &request.authority)?;
        Ok(issued)
    }

    /// Issues an agency enrollment-client certificate (EKU ARC.3) for
    /// `spki`; checked by path validation for ARC.3 and by reading the
    /// authority record back.
    pub fn issue_enrollment_client(
        &self,
        authority: &AuthorityRecord,
        spki: Vec<u8>,
        validity: Validity,
    ) -> Result<IssuedCertificate, Error> {
        let template = certprofile::enrollment_client(
            authority,
            spki,
            &self.cert.info,
            validity,
            self.crl_url(),
        )?;
        let issued = self.sign_end_entity(&template)?;
        self.check_path(&issued, Some(oid::EKU_ENROLLMENT_CLIENT))?;
        let (_, parsed) = X509Certificate::from_der(issued.certificate())
            .map_err(|e| Error::InvalidRequest(format!("issued certificate: {e}")))?;
        authority_reads_back(&profile::authority_record(&parsed)?, authority)?;
        Ok(issued)
    }

    /// Issues an identity-signing certificate (EKU ARC.5) for an agency's
    /// RSA key, with which [`crate::element_x509::sign_master_key`] signs
    /// the user's master key for Element's `io.element.x509`; the result has
    /// passed the verifier's signer-chain rules for exactly the request.
    pub fn issue_identity_signing(
        &self,
        request: &IdentitySigningRequest,
        validity: Validity,
    ) -> Result<IssuedCertificate, Error> {
        let issued = self.sign_for_user(&request.user_id, || {
            certprofile::identity_signing(request, &self.cert.info, validity, self.crl_url())
        })?;
        let verifier = ElementX509Verifier::new(
            TrustAnchors::from_der([self.root.clone()])?,
            CrlPolicy::ALLOW_MISSING,
        );
        let (verified, _) = verifier.check_signer_certificate(
            &request.user_id,
            &issued.chain,
            &CrlSet::new(),
            Self::check_time(&issued),
        )?;
        authority_reads_back(&verified.authority, &request.authority)?;
        Ok(issued)
    }

    /// Issues a citizen attestation (EKU ARC.6) for a pseudonymous
    /// citizen's device; the result has passed the verifier's citizen rule
    /// for exactly the request (key, user, device, pseudonym, level).
    pub fn issue_citizen_attestation(
        &self,
        request: &certprofile::CitizenAttestationRequest,
        validity: Validity,
    ) -> Result<IssuedCertificate, Error> {
        let issued = self.sign_for_user(&request.user_id, || {
            certprofile::citizen_attestation(request, &self.cert.info, validity, self.crl_url())
        })?;
        let expected = profile::CitizenExpected {
            user_id: request.user_id.clone(),
            device_id: request.device_id.clone(),
            key: request.key,
            minimum_level: Some(request.level),
        };
        let verified = self.verifier.verify_citizen(
            &expected,
            &issued.chain,
            &CrlSet::new(),
            Self::check_time(&issued),
        )?;
        if verified.level != request.level {
            return Err(Error::SelfCheck(
                govtrust_verifier::Error::AssuranceLevelInvalid(
                    "the issued level does not read back as the request".into(),
                ),
            ));
        }
        Ok(issued)
    }

    /// Issues a TLS server certificate for the service's own endpoint.
    pub fn issue_tls_server(
        &self,
        common_name: &str,
        dns_names: &[&str],
        ips: &[std::net::IpAddr],
        spki: Vec<u8>,
        validity: Validity,
    ) -> Result<IssuedCertificate, Error> {
        let template =
            certprofile::tls_server(common_name, dns_names, ips, spki, &self.cert.info, validity)?;
        let issued = self.sign_end_entity(&template)?;
        const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
        self.check_path(&issued, Some(SERVER_AUTH))?;
        Ok(issued)
    }

    fn check_path(
        &self,
        issued: &IssuedCertificate,
        eku: Option<&'static [u8]>,
    ) -> Result<(), Error> {
        validate_path(
            self.verifier.anchors(),
            issued.certificate(),
            &issued.chain[1..],
            &PathOptions {
                algorithms: PROFILE_ALGORITHMS,
                eku,
                time: Self::check_time(issued),
                crls: &CrlSet::new(),
                crl_policy: CrlPolicy::ALLOW_MISSING,
            },
        )?;
        Ok(())
    }

    /// Signs this CA's CRL; the result is decoded and its signature checked
    /// before it is returned.
    pub fn crl(
        &self,
        revoked: &[RevokedCertificate],
        number: u64,
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Vec<u8>, Error> {
        self.crl_checked(revoked, number, this_update, lifetime)
            .map(Crl::into_der)
    }

    /// As [`IssuingCa::crl`], returning the CRL as that check decoded it,
    /// for a caller that needs its fields as well as its DER (`into_der`)
    /// without decoding a large CRL a second time.
    pub fn crl_checked(
        &self,
        revoked: &[RevokedCertificate],
        number: u64,
        this_update: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Crl, Error> {
        self.cert
            .sign_crl(&self.signer, revoked, number, this_update, lifetime)
    }
}

impl IssuedCertificate {
    /// The `io.govtrust.attestation` event content publishing this
    /// attestation (state key: [`govtrust_verifier::event::state_key`]).
    pub fn attestation_content(
        &self,
        request: &AttestationRequest,
    ) -> govtrust_verifier::event::AttestationContent {
        use base64::Engine;
        use govtrust_verifier::event::{AttestationContent, AttestationKind};
        let (kind, device_id) = match &request.subject {
            Subject::Device(d) => (AttestationKind::Device, Some(d.to_string())),
            Subject::Identity => (AttestationKind::Identity, None),
        };
        AttestationContent {
            version: 1,
            kind,
            user_id: request.user_id.to_string(),
            device_id,
            key: request.key.to_base64(),
            chain: self
                .chain
                .iter()
                .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
                .collect(),
            expires_at: u64::try_from(self.not_after.unix_timestamp() * 1000).ok(),
            revoked: None,
        }
    }
}

/// The self-check that an issued certificate's authority record reads
/// back as the request's.
fn authority_reads_back(
    issued: &AuthorityRecord,
    requested: &AuthorityRecord,
) -> Result<(), Error> {
    if issued != requested {
        return Err(Error::SelfCheck(
            govtrust_verifier::Error::AuthorityRecordInvalid(
                "the issued subject does not read back as the request".into(),
            ),
        ));
    }
    Ok(())
}
