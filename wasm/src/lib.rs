//! # govtrust-verifier-wasm
//!
//! The pure core of `govtrust-verifier` for web clients: built for
//! `wasm32-unknown-unknown` and packaged with wasm-bindgen (`--target web`)
//! as an ES module with TypeScript types. `scripts/web-test` builds it and
//! tests it in headless Chromium; `docs/web-client.md` is the guide.
//!
//! The client passes in everything the verifier needs — the pinned root
//! (PEM), the CRLs (DER), the event content, the user, device and key from
//! its own crypto store, and the validation time — and gets a plain typed
//! object back: `{ trusted: true, authority, badge, serial, notAfter, … }`
//! or `{ trusted: false, code, message }` with `code` the verifier's stable
//! `Error::code()`. Nothing here does I/O or reads the clock on its own
//! except `Date.now()` when no time is given.

pub mod core;

use govtrust_verifier::{
    AuthorityRecord, Error, Subject, UnixTime, VerifiedAttestation, VerifiedIdentitySignature,
};
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::core::{Policy, Session, Verdict};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** The authority record certified in the attestation's subject DN: what a
 * client shows as the verified badge (see docs/profile.md). */
export interface AuthorityRecord {
  /** Official authority identifier (DN serialNumber). */
  id: string;
  /** Official name (DN O). */
  name: string;
  /** Organisational unit (DN OU). */
  unit?: string;
  /** Street and number (DN street). */
  street?: string;
  /** Postal code (DN postalCode). */
  postalCode?: string;
  /** Town or city (DN L). */
  locality?: string;
  /** State or region (DN ST). */
  state?: string;
  /** ISO 3166-1 alpha-2 country code (DN C). */
  country?: string;
}

/** An attestation that passed every rule of the acceptance rule. */
export interface Trusted {
  trusted: true;
  /** What was attested: a device key or the user's cross-signing master key. */
  kind: "device" | "identity";
  /** The attested Matrix user. */
  userId: string;
  /** The attested device (device attestations only). */
  deviceId?: string;
  /** The attested Ed25519 key, unpadded base64 (equal to the key passed in). */
  key: string;
  /** The official authority record. */
  authority: AuthorityRecord;
  /** Badge text: name, unit, street, postal code and town. */
  badge: string;
  /** Leaf certificate serial number, lower-case hex. */
  serial: string;
  /** Leaf notAfter, seconds since the Unix epoch: verify again by then. */
  notAfter: number;
  /** Subject of the issuing CA (RFC 4514). */
  issuer: string;
  /** Subject of the pinned root the chain ends in (RFC 4514). */
  root: string;
}

/** The stable names of the rules an attestation can break
 * (govtrust_verifier::Error::code()). */
export type ErrorCode =
  | "invalid_input" | "malformed" | "event_too_large" | "unknown_issuer"
  | "bad_signature" | "unsupported_algorithm" | "expired" | "not_yet_valid"
  | "issuer_not_ca" | "path_len_exceeded" | "leaf_is_ca"
  | "unsupported_critical_extension" | "wrong_eku" | "issuer_eku_missing"
  | "wrong_key_usage" | "san_invalid" | "user_mismatch" | "device_mismatch"
  | "key_not_ed25519" | "key_mismatch" | "server_not_permitted"
  | "authority_record_invalid" | "revoked" | "issuer_revoked" | "crl_missing"
  | "crl_stale" | "crl_wrong_issuer" | "path_invalid"
  // io.element.x509 signatures
  | "master_key_invalid" | "identity_signature_missing" | "cms_malformed"
  | "cms_not_detached" | "cms_crls_present" | "cms_signer_count"
  | "cms_signed_attributes" | "cms_signer_id" | "cms_algorithm"
  | "key_id_mismatch" | "key_not_rsa" | "identity_signature_invalid"
  | (string & {});

/** Not trusted: `code` names the rule, `message` explains it in English. */
export interface Untrusted {
  trusted: false;
  code: ErrorCode;
  message: string;
}

export type VerifyResult = Trusted | Untrusted;

/** A master key whose `io.element.x509` signature passed every rule
 * (Element's X.509 identity verification). */
export interface TrustedElementX509 {
  trusted: true;
  kind: "element_x509";
  /** The user the identity-signing certificate names. */
  userId: string;
  /** The master key (its one ed25519 key) now vouched for, unpadded base64. */
  key: string;
  /** The official authority record of the signer certificate. */
  authority: AuthorityRecord;
  /** Badge text: name, unit, street, postal code and town. */
  badge: string;
  /** Signer certificate serial number, lower-case hex. */
  serial: string;
  /** Signer certificate notAfter, seconds since the Unix epoch. */
  notAfter: number;
  /** Subject of the issuing CA (RFC 4514). */
  issuer: string;
  /** Subject of the pinned root (RFC 4514). */
  root: string;
  /** The signature's key ID: `io.element.x509:` + the root's SKI. */
  keyId: string;
}

export type ElementX509Result = TrustedElementX509 | Untrusted;

/** A cross-signing master key object as `/keys/query` returns it under
 * `master_keys[userId]`: JSON text, its UTF-8 bytes, or the object. */
export type MasterKeyObject = string | Uint8Array | object;

/** `io.govtrust.attestation` event content: the JSON text, its UTF-8
 * bytes, or the parsed content object (it is serialised with
 * JSON.stringify; the 16 KiB size limit applies to that text). */
export type AttestationContent = string | Uint8Array | object;

/** Validation time: a Date, or seconds since the Unix epoch. Omitted or
 * null: now (Date.now()). */
export type ValidationTime = Date | number | null | undefined;

/** A CRL: DER bytes (or a PEM "X509 CRL" string). */
export type CrlInput = Uint8Array | ArrayBuffer | string;

export interface VerifierOptions {
  /** Reject when no fresh CRL from an issuer on the path was given.
   * Default true (CrlPolicy::REQUIRE_FRESH); false only for tools. */
  requireCrls?: boolean;
  /** Also reject CRLs whose thisUpdate is older than this many seconds. */
  crlMaxAgeSecs?: number;
}

/** Thrown by the Verifier constructor and setCrls for a bad root or CRL. */
export interface VerifierSetupError extends Error {
  code: ErrorCode;
}
"#;

/// Verifies govtrust attestations against a pinned root and a set of CRLs.
///
/// Build one per root and keep it: CRLs are decoded and their signatures
/// checked once, and an issuing CA validated once costs one signature
/// check on later calls.
#[wasm_bindgen(js_name = Verifier)]
pub struct WebVerifier {
    session: Session,
}

#[wasm_bindgen(js_class = Verifier)]
impl WebVerifier {
    /// Pins the root certificate(s) in `rootPem` and decodes `crls`.
    /// Throws a `VerifierSetupError` (an Error with `code`) if the root or
    /// a CRL cannot be decoded.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = rootPem)] root_pem: &str,
        #[wasm_bindgen(unchecked_param_type = "CrlInput[] | null")] crls: JsValue,
        #[wasm_bindgen(unchecked_param_type = "VerifierOptions | null")] options: JsValue,
    ) -> Result<WebVerifier, JsValue> {
        let crls = crl_bytes(&crls).map_err(setup_error)?;
        let policy = policy(&options).map_err(setup_error)?;
        Session::new(root_pem.as_bytes(), &crls, policy)
            .map(|session| WebVerifier { session })
            .map_err(setup_error)
    }

    /// Replaces the CRLs (e.g. after fetching newer ones); on error the
    /// old ones stay in force and a `VerifierSetupError` is thrown.
    #[wasm_bindgen(js_name = setCrls)]
    pub fn set_crls(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "CrlInput[]")] crls: JsValue,
    ) -> Result<(), JsValue> {
        let crls = crl_bytes(&crls).map_err(setup_error)?;
        self.session.set_crls(&crls).map_err(setup_error)
    }

    /// How many CRLs the verifier holds.
    #[wasm_bindgen(getter, js_name = crlCount)]
    pub fn crl_count(&self) -> usize {
        self.session.crl_count()
    }

    /// Verifies the content of an `io.govtrust.attestation` state event for
    /// a device: `userId`, `deviceId` and `deviceKey` (the device's
    /// `ed25519:<deviceId>` key, unpadded base64) must come from the
    /// client's own crypto store, never from the event.
    #[wasm_bindgen(js_name = verifyDevice, unchecked_return_type = "VerifyResult")]
    pub fn verify_device(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AttestationContent")] content: JsValue,
        #[wasm_bindgen(js_name = userId)] user_id: &str,
        #[wasm_bindgen(js_name = deviceId)] device_id: &str,
        #[wasm_bindgen(js_name = deviceKey)] device_key: &str,
        #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    ) -> JsValue {
        let verdict = content_bytes(&content).and_then(|json| {
            self.session.verify_device(
                &json,
                user_id,
                device_id,
                device_key,
                validation_time(&time),
            )
        });
        to_js(&verdict)
    }

    /// Verifies the content of an `io.govtrust.attestation` state event for
    /// a user's identity: `masterKey` is the user's cross-signing master
    /// key (unpadded base64) as the client's crypto store holds it.
    #[wasm_bindgen(js_name = verifyIdentity, unchecked_return_type = "VerifyResult")]
    pub fn verify_identity(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AttestationContent")] content: JsValue,
        #[wasm_bindgen(js_name = userId)] user_id: &str,
        #[wasm_bindgen(js_name = masterKey)] master_key: &str,
        #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    ) -> JsValue {
        let verdict = content_bytes(&content).and_then(|json| {
            self.session
                .verify_identity(&json, user_id, master_key, validation_time(&time))
        });
        to_js(&verdict)
    }

    /// Verifies the `io.element.x509` signature on `userId`'s cross-signing
    /// master key object (Element's X.509 identity verification, as
    /// `/keys/query` returns it under `master_keys[userId]`) against the
    /// same pinned root, CRLs and policy.
    #[wasm_bindgen(js_name = verifyElementX509, unchecked_return_type = "ElementX509Result")]
    pub fn verify_element_x509(
        &self,
        #[wasm_bindgen(js_name = masterKey, unchecked_param_type = "MasterKeyObject")]
        master_key: JsValue,
        #[wasm_bindgen(js_name = userId)] user_id: &str,
        #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    ) -> JsValue {
        let verdict = content_bytes(&master_key).and_then(|json| {
            self.session
                .verify_element_x509(&json, user_id, validation_time(&time))
        });
        match verdict {
            Ok(v) => element_js(&v).into(),
            Err(e) => untrusted_js(&e).into(),
        }
    }
}

/// One-shot device verification: builds a verifier for `rootPem` and
/// `crls`, verifies, and drops it. A bad root or CRL is an `Untrusted`
/// result (`malformed`), not an exception. Prefer a kept `Verifier` when
/// verifying more than one attestation.
#[wasm_bindgen(js_name = verifyDeviceAttestation, unchecked_return_type = "VerifyResult")]
#[allow(clippy::too_many_arguments)]
pub fn verify_device_attestation(
    #[wasm_bindgen(js_name = rootPem)] root_pem: &str,
    #[wasm_bindgen(unchecked_param_type = "CrlInput[] | null")] crls: JsValue,
    #[wasm_bindgen(unchecked_param_type = "AttestationContent")] content: JsValue,
    #[wasm_bindgen(js_name = userId)] user_id: &str,
    #[wasm_bindgen(js_name = deviceId)] device_id: &str,
    #[wasm_bindgen(js_name = deviceKey)] device_key: &str,
    #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    #[wasm_bindgen(unchecked_param_type = "VerifierOptions | null")] options: JsValue,
) -> JsValue {
    let verdict = one_shot(root_pem, &crls, &options).and_then(|session| {
        let json = content_bytes(&content)?;
        session.verify_device(
            &json,
            user_id,
            device_id,
            device_key,
            validation_time(&time),
        )
    });
    to_js(&verdict)
}

/// One-shot identity verification (see `verifyDeviceAttestation`).
#[wasm_bindgen(js_name = verifyIdentityAttestation, unchecked_return_type = "VerifyResult")]
pub fn verify_identity_attestation(
    #[wasm_bindgen(js_name = rootPem)] root_pem: &str,
    #[wasm_bindgen(unchecked_param_type = "CrlInput[] | null")] crls: JsValue,
    #[wasm_bindgen(unchecked_param_type = "AttestationContent")] content: JsValue,
    #[wasm_bindgen(js_name = userId)] user_id: &str,
    #[wasm_bindgen(js_name = masterKey)] master_key: &str,
    #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    #[wasm_bindgen(unchecked_param_type = "VerifierOptions | null")] options: JsValue,
) -> JsValue {
    let verdict = one_shot(root_pem, &crls, &options).and_then(|session| {
        let json = content_bytes(&content)?;
        session.verify_identity(&json, user_id, master_key, validation_time(&time))
    });
    to_js(&verdict)
}

/// One-shot `io.element.x509` verification of a master key object (see
/// `Verifier.verifyElementX509` and `verifyDeviceAttestation`).
#[wasm_bindgen(js_name = verifyElementX509Signature, unchecked_return_type = "ElementX509Result")]
pub fn verify_element_x509_signature(
    #[wasm_bindgen(js_name = rootPem)] root_pem: &str,
    #[wasm_bindgen(unchecked_param_type = "CrlInput[] | null")] crls: JsValue,
    #[wasm_bindgen(js_name = masterKey, unchecked_param_type = "MasterKeyObject")]
    master_key: JsValue,
    #[wasm_bindgen(js_name = userId)] user_id: &str,
    #[wasm_bindgen(unchecked_param_type = "ValidationTime")] time: JsValue,
    #[wasm_bindgen(unchecked_param_type = "VerifierOptions | null")] options: JsValue,
) -> JsValue {
    let verdict = one_shot(root_pem, &crls, &options).and_then(|session| {
        let json = content_bytes(&master_key)?;
        session.verify_element_x509(&json, user_id, validation_time(&time))
    });
    match verdict {
        Ok(v) => element_js(&v).into(),
        Err(e) => untrusted_js(&e).into(),
    }
}

fn one_shot(root_pem: &str, crls: &JsValue, options: &JsValue) -> Result<Session, Error> {
    Session::new(root_pem.as_bytes(), &crl_bytes(crls)?, policy(options)?)
}

fn invalid(why: &str) -> Error {
    Error::InvalidInput(why.to_owned())
}

/// The CRL list: null/undefined for none, else an iterable of
/// Uint8Array / ArrayBuffer (DER) or strings (PEM).
fn crl_bytes(crls: &JsValue) -> Result<Vec<Vec<u8>>, Error> {
    if crls.is_null() || crls.is_undefined() {
        return Ok(Vec::new());
    }
    let iter = js_sys::try_iter(crls)
        .ok()
        .flatten()
        .ok_or_else(|| invalid("crls must be an array of Uint8Array"))?;
    let mut out = Vec::new();
    for item in iter {
        let item = item.map_err(|_| invalid("crls could not be iterated"))?;
        if let Some(pem) = item.as_string() {
            out.push(pem.into_bytes());
        } else if item.is_instance_of::<Uint8Array>()
            || item.is_instance_of::<js_sys::ArrayBuffer>()
        {
            out.push(Uint8Array::new(&item).to_vec());
        } else {
            return Err(invalid(
                "each CRL must be a Uint8Array, an ArrayBuffer or a PEM string",
            ));
        }
    }
    Ok(out)
}

/// Event content or a master key object as JSON bytes.
fn content_bytes(content: &JsValue) -> Result<Vec<u8>, Error> {
    if let Some(text) = content.as_string() {
        return Ok(text.into_bytes());
    }
    if let Some(bytes) = content.dyn_ref::<Uint8Array>() {
        return Ok(bytes.to_vec());
    }
    if content.is_object() {
        return js_sys::JSON::stringify(content)
            .ok()
            .and_then(|s| s.as_string())
            .map(String::into_bytes)
            .ok_or_else(|| invalid("the object cannot be serialised as JSON"));
    }
    Err(invalid(
        "the content must be a JSON string, its UTF-8 bytes or an object",
    ))
}

/// A Date, seconds since the epoch, or now.
fn validation_time(time: &JsValue) -> UnixTime {
    let secs = if let Some(date) = time.dyn_ref::<js_sys::Date>() {
        date.get_time() / 1000.0
    } else if let Some(secs) = time.as_f64() {
        secs
    } else {
        js_sys::Date::now() / 1000.0
    };
    crate::core::unix_time(secs)
}

fn policy(options: &JsValue) -> Result<Policy, Error> {
    let mut policy = Policy::default();
    if options.is_null() || options.is_undefined() {
        return Ok(policy);
    }
    let get = |name: &str| Reflect::get(options, &JsValue::from_str(name)).unwrap_or_default();
    let require = get("requireCrls");
    if !require.is_undefined() {
        policy.require_crls = require
            .as_bool()
            .ok_or_else(|| invalid("requireCrls must be a boolean"))?;
    }
    let max_age = get("crlMaxAgeSecs");
    if !(max_age.is_undefined() || max_age.is_null()) {
        match max_age.as_f64() {
            Some(s) if s.is_finite() && s >= 0.0 => policy.crl_max_age_secs = Some(s as u64),
            _ => return Err(invalid("crlMaxAgeSecs must be a non-negative number")),
        }
    }
    Ok(policy)
}

fn setup_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&format!("govtrust verifier setup: {e}"));
    set(&err, "code", e.code());
    err.into()
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Reflect.set on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn set_opt(obj: &Object, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        set(obj, key, v.as_str());
    }
}

fn authority_js(a: &AuthorityRecord) -> Object {
    let obj = Object::new();
    set(&obj, "id", a.id.as_str());
    set(&obj, "name", a.name.as_str());
    set_opt(&obj, "unit", &a.unit);
    set_opt(&obj, "street", &a.street);
    set_opt(&obj, "postalCode", &a.postal_code);
    set_opt(&obj, "locality", &a.locality);
    set_opt(&obj, "state", &a.state);
    set_opt(&obj, "country", &a.country);
    obj
}

fn trusted_js(v: &VerifiedAttestation) -> Object {
    let obj = Object::new();
    set(&obj, "trusted", true);
    set(&obj, "kind", v.subject.kind());
    set(&obj, "userId", v.user_id.as_str());
    if let Subject::Device(d) = &v.subject {
        set(&obj, "deviceId", d.as_str());
    }
    set(&obj, "key", v.key.to_base64());
    set(&obj, "authority", authority_js(&v.authority));
    set(&obj, "badge", v.authority.to_string());
    set(&obj, "serial", v.serial.as_str());
    // Seconds since the epoch fit a JS number exactly.
    set(&obj, "notAfter", v.not_after as f64);
    set(&obj, "issuer", v.issuer.as_str());
    set(&obj, "root", v.root.as_str());
    obj
}

fn element_js(v: &VerifiedIdentitySignature) -> Object {
    let s = &v.signer;
    let obj = Object::new();
    set(&obj, "trusted", true);
    set(&obj, "kind", "element_x509");
    set(&obj, "userId", s.user_id.as_str());
    set(&obj, "key", v.master_key.to_base64());
    set(&obj, "authority", authority_js(&s.authority));
    set(&obj, "badge", s.authority.to_string());
    set(&obj, "serial", s.serial.as_str());
    set(&obj, "notAfter", s.not_after as f64);
    set(&obj, "issuer", s.issuer.as_str());
    set(&obj, "root", s.root.as_str());
    set(&obj, "keyId", s.key_id.as_str());
    obj
}

fn untrusted_js(e: &Error) -> Object {
    let obj = Object::new();
    set(&obj, "trusted", false);
    set(&obj, "code", e.code());
    set(&obj, "message", e.to_string());
    obj
}

fn to_js(verdict: &Verdict) -> JsValue {
    match verdict {
        Ok(v) => trusted_js(v).into(),
        Err(e) => untrusted_js(e).into(),
    }
}
