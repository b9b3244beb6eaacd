//! The enrollment flow (DESIGN.md "Enrollment flow"), agency side of the API:
//! challenge → proof of possession → checks → issue, store, publish.
//!
//! Checks, in order, each with its own errcode. Challenge: the authority
//! exists and is active; the user is within its record (server and
//! localpart pattern) and on a server the issuing CA may certify; the
//! homeserver serves the device with a valid self-signature (and, for
//! identities, the device ← self-signing key ← master key chain).
//! Enrollment: the same authority and user checks; the challenge exists
//! and is of the requested kind; the proof is valid; then, decided by the
//! store when it consumes the challenge, the challenge is bound to this
//! authority, user and device, unused, unexpired, and bound to the
//! reported key.
//!
//! `identity_signing` (an identity-signing certificate for the agency's RSA
//! key, docs/profile.md §5.7) is proven exactly like `identity`: the device
//! and the user's master key, bound at challenge time. The enrollment adds
//! the RSA key (checked by `EnrollRequest::validate`: RSA, 2048 to 8192
//! bits), which the certificate certifies and the store records; nothing
//! is published (the agency signs the master key itself, `govtrust agency
//! sign-identity`), so the answer has no state key and no event ID.
//!
//! `citizen` (a citizen attestation, EKU ARC.6, docs/profile.md §5.8) runs
//! the same flow for another caller: not an agency over mTLS but a
//! pseudonymous citizen ([`Citizen`], built by `crate::api::pseudonyms`
//! from a fresh identity-provider assertion). Instead of the authority's
//! user policy, the user must be exactly the citizen's pseudonym for the
//! authority (`@<pseudonym>:<server>`) on a server the issuing CA may
//! certify; the proof of possession and the `/keys/query` cross-check are
//! those of `device`. The certificate carries the assertion's level of
//! assurance, is stored under the authority the pseudonym belongs to, is
//! audited with the pseudonym, the authority and the level (never the
//! stable citizen ID, which never reaches this module) and is published
//! nowhere: the citizen shows it to the agency on request.
//!
//! The keys are bound when the challenge is made — the moment the service
//! encrypts to the device — so the enrollment call itself needs no
//! homeserver: an outage between the two steps loses nothing.
//!
//! The challenge is consumed in the transaction that stores the
//! certificate (`Store::enroll_certificate`): a challenge is used up
//! exactly when a certificate is stored for it, and of concurrent uses of
//! one challenge only one gets a certificate (the others' certificates are
//! signed but never stored nor returned). A refused attempt (wrong proof,
//! wrong key, wrong device) leaves the challenge usable for its device.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use govtrust_api::enrollment::{
    signing_payload, ChallengeRequest, ChallengeResponse, EnrollRequest, EnrollResponse, Kind,
    Proof,
};
use govtrust_api::policy::{check_user, PolicyDenial};
use govtrust_pki::profile::CitizenAttestationRequest;
use govtrust_pki::{AttestationRequest, IdentitySigningRequest, IssuedCertificate};
use govtrust_verifier::event::state_key;
use govtrust_verifier::profile::AssuranceLevel;
use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};

use crate::auth::AgencyClient;
use crate::caller::Agency;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::Service;
use crate::storage::{
    AuditEntry, Authority, AuthorityStatus, CertificateKind, Challenge, ChallengeClaim,
    ChallengeOutcome, NewCertificate, NewOutboxItem,
};

/// The kind of certificate an enrollment of `kind` stores.
fn certificate_kind(kind: Kind) -> CertificateKind {
    match kind {
        Kind::Device => CertificateKind::Device,
        Kind::Identity => CertificateKind::Identity,
        Kind::IdentitySigning => CertificateKind::IdentitySigning,
        Kind::Citizen => CertificateKind::Citizen,
    }
}

/// A pseudonymous citizen identified by a fresh identity-provider
/// assertion, for one authority. It holds the pseudonymous user, never
/// the stable citizen ID (`crate::pseudonym` derives the one from the
/// other and drops the ID).
#[derive(Clone, Debug)]
pub struct Citizen {
    /// The authority the pseudonym belongs to (looked up, not yet judged).
    pub authority: Authority,
    /// The citizen's pseudonymous user for that authority,
    /// `@<pseudonym>:<server>`.
    pub pseudonym: UserId,
    /// The level of assurance of the assertion.
    pub level: AssuranceLevel,
}

/// Who enrolls: an agency (mTLS enrollment client) or a pseudonymous
/// citizen (identity-provider assertion). The flow is the same; who may
/// enroll which user and which kind differs.
#[derive(Clone, Copy)]
pub enum Enrollee<'a> {
    /// An agency, for its authority's users (kinds other than `citizen`).
    Agency(&'a Agency),
    /// A citizen, for its own pseudonym (kind `citizen` only).
    Citizen(&'a Citizen),
}

impl Enrollee<'_> {
    /// The authority, which must exist and be active; then whether this
    /// caller may enroll `kind` for `user`.
    fn permit(&self, svc: &Service, kind: Kind, user: &UserId) -> Result<&Authority, ApiError> {
        match self {
            Enrollee::Agency(agency) => {
                if kind == Kind::Citizen {
                    return Err(ApiError::invalid_param(
                        "kind citizen is requested by the citizen at /v1/pseudonyms/enrollment/challenge, not by an agency",
                    ));
                }
                let authority = active_authority(agency)?;
                permit(svc, authority, user)?;
                Ok(authority)
            }
            Enrollee::Citizen(citizen) => {
                if kind != Kind::Citizen {
                    return Err(ApiError::invalid_param(
                        "a citizen enrolls only kind citizen",
                    ));
                }
                let authority = &citizen.authority;
                if authority.status != AuthorityStatus::Active {
                    return Err(ApiError::authority_suspended(format!(
                        "authority {} is suspended",
                        authority.record.id
                    )));
                }
                if *user != citizen.pseudonym {
                    return Err(ApiError::user_not_permitted(format!(
                        "{user} is not this citizen's pseudonym for authority {}",
                        authority.record.id
                    )));
                }
                permitted_server(svc, user)?;
                Ok(authority)
            }
        }
    }

    /// The audit log's actor.
    fn actor(&self) -> String {
        match self {
            Enrollee::Agency(agency) => format!("agency:{}", agency.client.authority_id),
            Enrollee::Citizen(_) => "citizen".to_owned(),
        }
    }
}

fn param(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_param(e.to_string())
}

/// The authority behind an agency client, which must exist and be active.
pub fn active_authority(agency: &Agency) -> Result<&Authority, ApiError> {
    let id = &agency.client.authority_id;
    let authority = agency.authority.as_ref().ok_or_else(|| {
        ApiError::unknown_authority(format!(
            "authority {id} is not registered with this service"
        ))
    })?;
    if authority.status != AuthorityStatus::Active {
        return Err(ApiError::authority_suspended(format!(
            "authority {id} is suspended"
        )));
    }
    Ok(authority)
}

/// The user must be within the authority's record and the issuing CA's scope.
fn permit(svc: &Service, authority: &Authority, user: &UserId) -> Result<(), ApiError> {
    check_user(user, &authority.servers, &authority.user_patterns).map_err(|d| match d {
        PolicyDenial::Server(s) => ApiError::user_not_permitted(format!(
            "authority {} may not enroll users on {s}",
            authority.record.id
        )),
        PolicyDenial::User(u) => ApiError::user_not_permitted(format!(
            "{u} matches none of authority {}'s user patterns",
            authority.record.id
        )),
    })?;
    permitted_server(svc, user)
}

/// The user's server must be one the issuing CA may certify.
fn permitted_server(svc: &Service, user: &UserId) -> Result<(), ApiError> {
    if !svc
        .pki
        .permitted_servers()
        .iter()
        .any(|s| s == user.server_name())
    {
        return Err(ApiError::server_not_permitted(format!(
            "the issuing CA may not certify users on {}",
            user.server_name()
        )));
    }
    Ok(())
}

fn secret() -> Result<String, ApiError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::internal("system randomness unavailable"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Challenges are stored under the SHA-256 of their secret, so a database
/// reader cannot answer one.
fn challenge_id(secret: &str) -> String {
    govtrust_pki::hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Step 1 for an agency: checks the request, binds the keys the
/// homeserver serves now, and delivers (or returns) the challenge.
pub async fn challenge(
    svc: &Service,
    agency: &Agency,
    request: ChallengeRequest,
) -> Result<ChallengeResponse, ApiError> {
    challenge_for(svc, Enrollee::Agency(agency), request).await
}

/// Step 1 for `caller` (an agency, or a citizen for its pseudonym's
/// device).
pub async fn challenge_for(
    svc: &Service,
    caller: Enrollee<'_>,
    request: ChallengeRequest,
) -> Result<ChallengeResponse, ApiError> {
    let user = UserId::parse(&request.user_id).map_err(param)?;
    let device = DeviceId::parse(&request.device_id).map_err(param)?;
    let authority = caller.permit(svc, request.kind, &user)?;

    let answer = svc.keys.lookup(&user, &device).await?;
    let queried = answer.device.ok_or_else(|| {
        ApiError::device_unknown(format!(
            "the homeserver serves no device {device} for {user}"
        ))
    })?;
    if !queried.self_signed {
        return Err(ApiError::bad_device_signature(format!(
            "device {device} of {user} is not signed by its own key"
        )));
    }
    let attested = match request.kind {
        Kind::Device | Kind::Citizen => queried.ed25519,
        Kind::Identity | Kind::IdentitySigning => {
            let identity = answer.identity.ok_or_else(|| {
                ApiError::identity_unverified(format!("{user} has no cross-signing identity"))
            })?;
            if !identity.vouches_for(&queried) {
                return Err(ApiError::identity_unverified(format!(
                    "device {device} is not signed by {user}'s self-signing key, or that key not by the master key"
                )));
            }
            identity.master
        }
    };

    let secret = secret()?;
    let now = now_ms();
    let expires_at =
        now + i64::try_from(svc.config.limits.challenge_ttl_secs * 1000).unwrap_or(i64::MAX);
    let id = challenge_id(&secret);
    // Stored before the secret leaves the service: an agency may answer as
    // soon as its device has decrypted the message, possibly before this
    // request returns.
    svc.store
        .insert_challenge(&Challenge {
            id: id.clone(),
            authority_id: authority.record.id.clone(),
            user_id: user.to_string(),
            device_id: device.to_string(),
            kind: certificate_kind(request.kind),
            proof: request.proof.as_str().to_owned(),
            key: attested.to_base64(),
            device_key: queried.ed25519.to_base64(),
            created_at: now,
            expires_at,
            used_at: None,
        })
        .await?;
    if request.proof == Proof::ToDevice {
        // The key the Olm message was encrypted for is the key whose holder
        // can answer: it must be the key /keys/query served. If it is not
        // (or the delivery's outcome is unknown), the challenge is burned so
        // that whoever may have received it cannot use it.
        let delivered = svc.keys.deliver(&user, &device, &secret).await;
        if !matches!(&delivered, Ok(olm_key) if *olm_key == queried.ed25519) {
            svc.store
                .consume_challenge(ChallengeClaim {
                    id,
                    authority_id: authority.record.id.clone(),
                    user_id: user.to_string(),
                    device_id: device.to_string(),
                    key: attested.to_base64(),
                    now: now_ms(),
                })
                .await?;
            delivered?;
            return Err(ApiError::key_mismatch(
                "the device key of the Olm session differs from the key /keys/query served",
            ));
        }
    }
    Ok(ChallengeResponse {
        proof: request.proof,
        expires_at,
        signing_payload: (request.proof == Proof::Signature).then(|| {
            signing_payload(
                &svc.config.public_base(),
                &secret,
                user.as_str(),
                device.as_str(),
            )
        }),
    })
}

/// Step 2 for an agency: checks the proof and the key, issues, stores and
/// queues the event.
pub async fn enroll(
    svc: &Service,
    client: AgencyClient,
    request: EnrollRequest,
) -> Result<EnrollResponse, ApiError> {
    let started = Instant::now();
    let parsed = Parsed::new(&request)?;
    let (agency, stored) = Agency::resolve(svc, client, Some(&parsed.id)).await?;
    finish(
        svc,
        Enrollee::Agency(&agency),
        parsed,
        stored,
        request,
        started,
    )
    .await
}

/// Step 2 for a citizen: the same checks for its pseudonym's device;
/// issues the citizen attestation at the assertion's level and stores it
/// (nothing is published).
pub async fn enroll_citizen(
    svc: &Service,
    citizen: &Citizen,
    request: EnrollRequest,
) -> Result<EnrollResponse, ApiError> {
    let started = Instant::now();
    let parsed = Parsed::new(&request)?;
    let stored = svc.store.get_challenge(&parsed.id).await?;
    finish(
        svc,
        Enrollee::Citizen(citizen),
        parsed,
        stored,
        request,
        started,
    )
    .await
}

/// An enrollment request's fields, parsed before anything is looked up.
struct Parsed {
    user: UserId,
    device: DeviceId,
    key: Ed25519Key,
    rsa_key: Option<govtrust_api::enrollment::RsaSpki>,
    /// The ID the challenge is stored under.
    id: String,
}

impl Parsed {
    fn new(request: &EnrollRequest) -> Result<Parsed, ApiError> {
        let user = UserId::parse(&request.user_id).map_err(param)?;
        let device = DeviceId::parse(&request.device_id).map_err(param)?;
        let key = Ed25519Key::from_base64(&request.key).map_err(param)?;
        let rsa_key = request.validate().map_err(param)?;
        if request.challenge.is_empty() || request.challenge.len() > 256 {
            return Err(ApiError::invalid_param(
                "challenge must be 1 to 256 characters",
            ));
        }
        Ok(Parsed {
            user,
            device,
            key,
            rsa_key,
            id: challenge_id(&request.challenge),
        })
    }
}

/// Step 2 after the caller and its stored challenge are known.
async fn finish(
    svc: &Service,
    caller: Enrollee<'_>,
    parsed: Parsed,
    stored: Option<Challenge>,
    request: EnrollRequest,
    started: Instant,
) -> Result<EnrollResponse, ApiError> {
    let Parsed {
        user,
        device,
        key,
        rsa_key,
        id,
    } = parsed;
    let authority = caller.permit(svc, request.kind, &user)?;

    let claim = ChallengeClaim {
        id,
        authority_id: authority.record.id.clone(),
        user_id: user.to_string(),
        device_id: device.to_string(),
        key: key.to_base64(),
        now: now_ms(),
    };
    let stored = stored.ok_or_else(|| {
        ApiError::proof_failed("no challenge with that secret was sent: proof of possession failed")
    })?;
    if stored.kind != certificate_kind(request.kind) {
        return Err(ApiError::challenge_mismatch(
            "the challenge was made for another kind of attestation",
        ));
    }
    if stored.proof == Proof::Signature.as_str() {
        verify_signature(svc, &stored, &request)?;
    }

    let Issuance {
        issued,
        state_key,
        content,
        certified_key,
    } = match (request.kind, rsa_key) {
        (Kind::IdentitySigning, Some(rsa)) => {
            let issued = svc.pki.issue_identity_signing(&IdentitySigningRequest {
                user_id: user.clone(),
                authority: authority.record.clone(),
                spki: rsa.der.clone(),
            })?;
            Issuance {
                issued,
                state_key: String::new(),
                content: None,
                certified_key: STANDARD.encode(&rsa.der),
            }
        }
        (Kind::IdentitySigning, None) => {
            return Err(ApiError::invalid_param(
                "identity_signing enrollment needs \"rsa_public_key\"",
            ))
        }
        (Kind::Citizen, _) => {
            let Enrollee::Citizen(citizen) = caller else {
                return Err(ApiError::invalid_param(
                    "kind citizen is requested by the citizen, not by an agency",
                ));
            };
            let issued = svc.pki.issue_citizen(&CitizenAttestationRequest {
                user_id: user.clone(),
                device_id: device.clone(),
                key,
                level: citizen.level,
            })?;
            Issuance {
                issued,
                state_key: String::new(),
                content: None,
                certified_key: key.to_base64(),
            }
        }
        (kind, _) => {
            let subject = match kind {
                Kind::Device => Subject::Device(device.clone()),
                _ => Subject::Identity,
            };
            let attestation = AttestationRequest {
                user_id: user.clone(),
                subject: subject.clone(),
                key,
                authority: authority.record.clone(),
            };
            let issued = svc.pki.issue(&attestation)?;
            let content = issued.attestation_content(&attestation);
            Issuance {
                issued,
                state_key: state_key(&user, &subject),
                content: Some(serde_json::to_value(&content).unwrap_or_default()),
                certified_key: key.to_base64(),
            }
        }
    };
    let attested_device = request.kind.attests_device().then(|| device.to_string());
    let serial = issued.serial_hex();
    let outbox = content
        .filter(|_| svc.publishing())
        .map(|content| NewOutboxItem {
            kind: "attestation".into(),
            state_key: state_key.clone(),
            content,
        });
    let mut details = serde_json::json!({
        "kind": request.kind,
        "user_id": user.as_str(),
        "device_id": device.as_str(),
        "key": key.to_base64(),
    });
    match caller {
        Enrollee::Agency(agency) => {
            details["client_certificate"] =
                serde_json::Value::String(agency.client.certificate_serial.clone());
        }
        // The pseudonym (user_id above), the authority and the level:
        // nothing that names the person.
        Enrollee::Citizen(citizen) => {
            details["authority_id"] = serde_json::Value::String(authority.record.id.clone());
            details["assurance_level"] = serde_json::json!(citizen.level);
        }
    }
    if request.kind == Kind::IdentitySigning {
        details["rsa_public_key"] = serde_json::Value::String(certified_key.clone());
    }
    let outbox_queued = outbox.is_some();
    let consumed = svc
        .store
        .enroll_certificate(
            claim,
            NewCertificate {
                serial: serial.clone(),
                issuing_ca: svc.pki.issuing_id().to_owned(),
                kind: certificate_kind(request.kind),
                user_id: Some(user.to_string()),
                device_id: attested_device,
                key: certified_key,
                authority_id: authority.record.id.clone(),
                not_before: issued.not_before.unix_timestamp() * 1000,
                not_after: issued.not_after.unix_timestamp() * 1000,
                der: issued.certificate().to_vec(),
                // The store supersedes the binding's live certificate.
                renewed_from: None,
                created_at: now_ms(),
            },
            outbox,
            AuditEntry::new(
                caller.actor(),
                "certificate.issued",
                serial.clone(),
                details,
            ),
        )
        .await?;
    challenge_usable(consumed.err().unwrap_or(ChallengeOutcome::Ok))?;
    svc.metrics
        .issuance_latency
        .observe(started.elapsed().as_secs_f64());
    svc.metrics
        .enrollments
        .get_or_create(&crate::metrics::KindLabel {
            kind: request.kind.as_str().to_owned(),
        })
        .inc();

    let event_id = if outbox_queued {
        svc.outbox_wakeup.notify_one();
        let wait = Duration::from_millis(request.wait_for_event_ms.unwrap_or(3000).min(10_000));
        svc.wait_for_publication(&state_key, wait).await
    } else {
        None
    };
    Ok(EnrollResponse {
        chain: issued.chain.iter().map(|c| STANDARD.encode(c)).collect(),
        chain_pem: crate::pemfile::chain_pem(&issued.chain),
        not_after: govtrust_pki::rfc3339(issued.not_after),
        state_key,
        event_id,
        serial,
    })
}

/// What an enrollment issued, by kind.
struct Issuance {
    issued: IssuedCertificate,
    /// The attestation's state key; empty for identity signing and
    /// citizen attestations.
    state_key: String,
    /// The attestation event content to publish; `None` for identity
    /// signing and citizen attestations.
    content: Option<serde_json::Value>,
    /// The key the certificate certifies, as stored: the Ed25519 key
    /// (base64) or the RSA SubjectPublicKeyInfo (standard base64 DER).
    certified_key: String,
}

/// The API error for a challenge that cannot be consumed.
fn challenge_usable(outcome: ChallengeOutcome) -> Result<(), ApiError> {
    match outcome {
        ChallengeOutcome::Ok => Ok(()),
        ChallengeOutcome::Unknown => Err(ApiError::challenge_unknown("no such challenge")),
        ChallengeOutcome::Expired => Err(ApiError::challenge_expired("the challenge has expired")),
        ChallengeOutcome::AlreadyUsed => {
            Err(ApiError::challenge_used("the challenge was already used"))
        }
        ChallengeOutcome::WrongBinding => Err(ApiError::challenge_mismatch(
            "the challenge was issued for another authority, user or device",
        )),
        ChallengeOutcome::KeyMismatch => Err(ApiError::key_mismatch(
            "the reported key is not the key the homeserver served for this device when the challenge was made",
        )),
    }
}

/// Checks a `signature` proof: an Ed25519 signature by the device key bound
/// at challenge time over the canonical JSON of the signing payload.
fn verify_signature(
    svc: &Service,
    stored: &Challenge,
    request: &EnrollRequest,
) -> Result<(), ApiError> {
    let signature = request
        .signature
        .as_deref()
        .ok_or_else(|| ApiError::invalid_param("signature proof needs \"signature\""))?;
    let signature = STANDARD_NO_PAD
        .decode(signature.trim_end_matches('='))
        .map_err(|_| ApiError::invalid_param("signature is not base64"))?;
    let payload = signing_payload(
        &svc.config.public_base(),
        &request.challenge,
        &request.user_id,
        &request.device_id,
    );
    let bytes = govtrust_api::keys::signing_bytes(
        payload
            .as_object()
            .ok_or_else(|| ApiError::internal("payload"))?,
    )
    .ok_or_else(|| ApiError::internal("canonical JSON"))?;
    let key = Ed25519Key::from_base64(&stored.device_key)
        .map_err(|e| ApiError::from_internal(&anyhow::anyhow!("{e}")))?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
        .verify(&bytes, &signature)
        .map_err(|_| {
            ApiError::proof_failed(
                "the signature over the challenge does not verify with the device key",
            )
        })
}
