//! PKCS#11 signer: the CA private key lives in a hardware security module
//! (or SoftHSM in development and tests) and never leaves it.
//!
//! Production issuing CAs and the root sign through this backend. The token
//! is found by its label and the key by its `CKA_LABEL`, because slot
//! numbers and object handles are not stable across HSM restarts or token
//! re-insertion, while labels are what operators configure.
//!
//! Three properties of PKCS#11 shape this module:
//!
//! * A module (`C_Initialize`) is initialised once per process, not once per
//!   key. Contexts are therefore cached per module path and never finalised,
//!   so that dropping one signer cannot pull the library out from under
//!   another.
//! * The login state belongs to the application and the token, not to the
//!   session: once one session is logged in, a second `C_Login` fails with
//!   `CKR_USER_ALREADY_LOGGED_IN` *without checking the PIN*. To keep a
//!   wrong PIN an error regardless of which signer happened to open first,
//!   this module remembers (as a SHA-256 digest) the PIN each token was
//!   logged in with and compares it.
//! * Sessions are not `Sync`. Each signer owns one read-only session behind a
//!   mutex; signatures on one key are serialised, which matches what a single
//!   HSM session can do anyway. A service that needs more throughput opens
//!   several signers.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{
    Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature as sig;
use zeroize::Zeroizing;

use super::{ecdsa_raw_to_der, KeyAlgorithm, Signer};
use crate::Error;

mod hmac;
pub use hmac::Pkcs11MacKey;

/// `CKA_EC_PARAMS` for P-256: the namedCurve OID prime256v1.
const EC_PARAMS_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `CKA_EC_PARAMS` for P-384: the namedCurve OID secp384r1.
const EC_PARAMS_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
/// `CKA_EC_PARAMS` for Ed25519 as PKCS#11 3.0 recommends: the OID id-Ed25519.
const EC_PARAMS_ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// `CKA_EC_PARAMS` for Ed25519 in the older form some tokens (SoftHSM
/// among them) produce: PrintableString "edwards25519".
const EC_PARAMS_ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Signed and verified once when a key is opened, so that a public-key
/// object that does not belong to the private key (or a token that cannot
/// actually sign with it) is caught at start-up rather than at the first
/// certificate.
const PROBE_MESSAGE: &[u8] = b"govtrust PKCS#11 key check";

/// Where to find a key in a PKCS#11 token, and how to unlock it.
///
/// `Debug` never prints the PIN, so the configuration can be logged.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (shared library) of the HSM vendor, e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`. Loading it runs its code in this
    /// process, so it must come from trusted configuration.
    pub module: PathBuf,
    /// Label of the token (`CKA_LABEL` of the token info). Must match
    /// exactly one initialised token of the module.
    pub token_label: String,
    /// `CKA_LABEL` of the private key (and of its public key).
    pub key_label: String,
    /// The user PIN. Zeroised when the configuration is dropped.
    pub pin: Zeroizing<String>,
}

impl Pkcs11Config {
    /// Builds a configuration; the PIN is moved into zeroising storage.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        key_label: impl Into<String>,
        pin: impl Into<String>,
    ) -> Self {
        Pkcs11Config {
            module: module.into(),
            token_label: token_label.into(),
            key_label: key_label.into(),
            pin: Zeroizing::new(pin.into()),
        }
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// The per-signer session state; only ever touched under the mutex.
struct Connection {
    session: Session,
    key: ObjectHandle,
}

/// A signer whose key stays inside a PKCS#11 token.
///
/// It is `Send + Sync`: signatures are serialised over one logged-in
/// session. If the session is lost (HSM restart, token re-inserted, someone
/// logged the token out), the next signature reconnects once, re-finds the
/// key by label and checks that it is still the same public key before
/// signing with it.
pub struct Pkcs11Signer {
    context: Pkcs11,
    config: Pkcs11Config,
    algorithm: KeyAlgorithm,
    raw_public_key: Vec<u8>,
    spki: Vec<u8>,
    connection: Mutex<Connection>,
}

// The service shares signers between threads; fail the build, not the
// deployment, if a field ever stops being thread-safe.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pkcs11Signer>();
};

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .field("key_label", &self.config.key_label)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Opens an existing key: loads and initialises the module (once per
    /// process), finds the token by label, logs in as the user and finds
    /// the private key and its public key by label.
    ///
    /// Fails if the token or key is missing or ambiguous, the PIN is wrong,
    /// the key is not ECDSA P-256/P-384 or Ed25519, or a probe signature
    /// does not verify against the public key object.
    pub fn open(config: &Pkcs11Config) -> Result<Self, Error> {
        let context = context(&config.module)?;
        let using = using_objects();
        let (connection, found) = connect(&context, config)?;
        drop(using);
        let signer = Pkcs11Signer {
            context,
            config: config.clone(),
            algorithm: found.algorithm,
            spki: found.algorithm.spki_der(&found.raw_public_key),
            raw_public_key: found.raw_public_key,
            connection: Mutex::new(connection),
        };
        let probe = signer.sign(PROBE_MESSAGE)?;
        verify(
            signer.algorithm,
            &signer.raw_public_key,
            PROBE_MESSAGE,
            &probe,
        )
        .map_err(|_| {
            Error::Key(format!(
                "the public key labelled {:?} on token {:?} does not match its private key",
                config.key_label, config.token_label
            ))
        })?;
        Ok(signer)
    }

    /// Generates a new token-resident key pair labelled
    /// `config.key_label` and opens it.
    ///
    /// The private key is created sensitive, non-extractable and usable
    /// for signing only, so the HSM never releases it. Refuses if any
    /// object with that label already exists on the token: a CA key is
    /// never silently duplicated or shadowed.
    pub fn generate(config: &Pkcs11Config, algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let creating = creating_objects();

        let context = context(&config.module)?;
        {
            let (session, label) = session_for_new_key(&context, config, "generate")?;

            let mut id = [0u8; 16];
            SystemRandom::new()
                .fill(&mut id)
                .map_err(|_| Error::Key("no randomness for the key ID".into()))?;

            let (mechanism, key_type, ec_params) = match algorithm {
                KeyAlgorithm::EcdsaP256 => (Mechanism::EccKeyPairGen, KeyType::EC, EC_PARAMS_P256),
                KeyAlgorithm::EcdsaP384 => (Mechanism::EccKeyPairGen, KeyType::EC, EC_PARAMS_P384),
                KeyAlgorithm::Ed25519 => (
                    Mechanism::EccEdwardsKeyPairGen,
                    KeyType::EC_EDWARDS,
                    EC_PARAMS_ED25519_OID,
                ),
            };
            let private_template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Derive(false),
                Attribute::KeyType(key_type),
                label.clone(),
                Attribute::Id(id.to_vec()),
            ];
            let public_template = |params: &[u8]| {
                [
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Verify(true),
                    Attribute::KeyType(key_type),
                    Attribute::EcParams(params.to_vec()),
                    label.clone(),
                    Attribute::Id(id.to_vec()),
                ]
            };
            let generated = session.generate_key_pair(
                &mechanism,
                &public_template(ec_params),
                &private_template,
            );
            let generated = match generated {
                // Tokens predating PKCS#11 3.0 (SoftHSM 2.6) name the
                // Edwards curve instead of giving its OID.
                Err(CkError::Pkcs11(
                    RvError::CurveNotSupported | RvError::AttributeValueInvalid,
                    _,
                )) if algorithm == KeyAlgorithm::Ed25519 => session.generate_key_pair(
                    &mechanism,
                    &public_template(EC_PARAMS_ED25519_NAME),
                    &private_template,
                ),
                other => other,
            };
            generated.map_err(pkcs11_error(&format!(
                "cannot generate a {algorithm:?} key pair on token {:?}",
                config.token_label
            )))?;
        }
        drop(creating);
        Pkcs11Signer::open(config)
    }

    /// The configuration this signer was opened with (for logs: its
    /// `Debug` hides the PIN).
    pub fn config(&self) -> &Pkcs11Config {
        &self.config
    }

    /// Re-establishes the session after it was lost and checks that the
    /// key found under the label is still the one this signer certified
    /// its SPKI for.
    fn reconnect(&self) -> Result<Connection, Error> {
        let (connection, found) = connect(&self.context, &self.config)?;
        if found.algorithm != self.algorithm || found.raw_public_key != self.raw_public_key {
            return Err(Error::Key(format!(
                "the key labelled {:?} on token {:?} changed while the signer was running",
                self.config.key_label, self.config.token_label
            )));
        }
        Ok(connection)
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let using = using_objects();
        let mut connection = lock(&self.connection);
        let raw = retry_on_session_lost(
            &mut connection,
            || self.reconnect(),
            |c| token_sign(c, self.algorithm, message),
            "signing failed",
        )?;
        drop(connection);
        drop(using);

        let (expected_len, is_ecdsa) = match self.algorithm {
            KeyAlgorithm::EcdsaP256 => (64, true),
            KeyAlgorithm::EcdsaP384 => (96, true),
            KeyAlgorithm::Ed25519 => (64, false),
        };
        if raw.len() != expected_len {
            return Err(Error::Signer(format!(
                "the token returned a {}-byte signature, expected {expected_len}",
                raw.len()
            )));
        }
        if is_ecdsa {
            ecdsa_raw_to_der(&raw)
        } else {
            Ok(raw)
        }
    }
}

/// What [`connect`] learnt about the key.
struct FoundKey {
    algorithm: KeyAlgorithm,
    raw_public_key: Vec<u8>,
}

/// Orders this process's use of PKCS#11 tokens: creating an object (a
/// signing key pair here, a MAC key in `hmac`) holds it exclusively, from
/// the label check to the creation; finding and using keys share it.
/// Creating keys is rare (a key ceremony, a test), so this costs nothing
/// where it matters, and it buys two things. "Refuse a label that exists,
/// then create" is atomic within this process across every kind of key
/// (another process could still race; HSM ACLs are the answer to that).
/// And SoftHSM 2.6.1's file object store, the one Debian ships, fails a
/// creation that runs while the same token is used in another thread with
/// `CKR_GENERAL_ERROR` (softhsm/SoftHSMv2#573): the PKCS#11 tests did in
/// 7 of 30 runs under load until creations took this lock exclusively.
static TOKEN_OBJECTS: RwLock<()> = RwLock::new(());

/// Exclusive use of the tokens, to create an object (see [`TOKEN_OBJECTS`]).
fn creating_objects() -> RwLockWriteGuard<'static, ()> {
    TOKEN_OBJECTS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Shared use of the tokens, to find or use keys (see [`TOKEN_OBJECTS`]).
fn using_objects() -> RwLockReadGuard<'static, ()> {
    TOKEN_OBJECTS.read().unwrap_or_else(PoisonError::into_inner)
}

/// Locks a mutex, ignoring poisoning: every critical section here is a
/// single PKCS#11 call or a map update, which a panic elsewhere cannot
/// leave half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Identifies a loaded module independently of how its path was spelled.
fn module_key(module: &Path) -> PathBuf {
    std::fs::canonicalize(module).unwrap_or_else(|_| module.to_path_buf())
}

/// Returns the process-wide, initialised context of a module.
fn context(module: &Path) -> Result<Pkcs11, Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let key = module_key(module);
    let mut contexts = lock(CONTEXTS.get_or_init(Default::default));
    if let Some(context) = contexts.get(&key) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(&key).map_err(|e| {
        Error::Pkcs11(format!(
            "cannot load PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Other code in the process may have initialised the module first.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::Pkcs11(format!(
                "cannot initialise PKCS#11 module {}: {e}",
                module.display()
            )))
        }
    }
    contexts.insert(key, context.clone());
    Ok(context)
}

/// Finds the one initialised token with the configured label.
fn find_slot(context: &Pkcs11, config: &Pkcs11Config) -> Result<Slot, Error> {
    let slots = context
        .get_slots_with_initialized_token()
        .map_err(pkcs11_error("cannot list slots"))?;
    let mut labels = Vec::new();
    let mut matching = Vec::new();
    for slot in slots {
        // A token that cannot describe itself (e.g. being removed) is not
        // the one we are looking for; don't let it block the others.
        let Ok(info) = context.get_token_info(slot) else {
            continue;
        };
        if info.label() == config.token_label {
            matching.push(slot);
        }
        labels.push(info.label().to_owned());
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Error::Pkcs11(format!(
            "no token labelled {:?} in module {} (tokens present: {labels:?})",
            config.token_label,
            config.module.display()
        ))),
        _ => Err(Error::Pkcs11(format!(
            "{} tokens are labelled {:?} in module {}; labels must be unique",
            matching.len(),
            config.token_label,
            config.module.display()
        ))),
    }
}

/// Logs the user in, keeping a wrong PIN an error even when the token is
/// already logged in by another signer of this process (see the module
/// documentation).
fn login(module: &Path, slot: Slot, session: &Session, config: &Pkcs11Config) -> Result<(), Error> {
    static LOGINS: OnceLock<Mutex<HashMap<(PathBuf, u64), digest::Digest>>> = OnceLock::new();
    let key = (module_key(module), slot.id());
    let pin_digest = digest::digest(&digest::SHA256, config.pin.as_bytes());
    // Held across C_Login so that the check and the record stay consistent.
    let mut logins = lock(LOGINS.get_or_init(Default::default));
    let pin = AuthPin::new(config.pin.as_str().into());
    let wrong_pin = || Error::Pkcs11(format!("wrong PIN for token {:?}", config.token_label));
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => {
            logins.insert(key, pin_digest);
            Ok(())
        }
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => match logins.get(&key) {
            Some(recorded) if equal(recorded.as_ref(), pin_digest.as_ref()) => Ok(()),
            Some(_) => Err(wrong_pin()),
            None => Err(Error::Pkcs11(format!(
                "token {:?} is already logged in by code outside govtrust in this process; \
                 the PIN cannot be checked",
                config.token_label
            ))),
        },
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(wrong_pin()),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::Pkcs11(format!(
            "the user PIN of token {:?} is locked",
            config.token_label
        ))),
        Err(e) => Err(Error::Pkcs11(format!(
            "login to token {:?} failed: {e}",
            config.token_label
        ))),
    }
}

/// Compares two digests without an early exit.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Opens a logged-in read-only session on the configured token.
fn open_session(context: &Pkcs11, config: &Pkcs11Config) -> Result<Session, Error> {
    let slot = find_slot(context, config)?;
    let session = context
        .open_ro_session(slot)
        .map_err(pkcs11_error("cannot open a session"))?;
    login(&config.module, slot, &session, config)?;
    Ok(session)
}

/// Opens a logged-in read-write session for creating a key labelled
/// `config.key_label`, with that label attribute; refuses if any object
/// with the label already exists on the token, so a key is never silently
/// duplicated or shadowed. `verb` names the refused act in the error.
fn session_for_new_key(
    context: &Pkcs11,
    config: &Pkcs11Config,
    verb: &str,
) -> Result<(Session, Attribute), Error> {
    let slot = find_slot(context, config)?;
    let session = context
        .open_rw_session(slot)
        .map_err(pkcs11_error("cannot open a read-write session"))?;
    login(&config.module, slot, &session, config)?;
    let label = Attribute::Label(config.key_label.as_bytes().to_vec());
    let existing = session
        .find_objects(std::slice::from_ref(&label))
        .map_err(pkcs11_error("cannot search the token"))?;
    if !existing.is_empty() {
        return Err(Error::Key(format!(
            "token {:?} already holds an object labelled {:?}; refusing to {verb} another key with that label",
            config.token_label, config.key_label
        )));
    }
    Ok((session, label))
}

/// Runs `op` on the connection; if the token reports the session lost,
/// replaces the connection with `reconnect()` and runs `op` once more.
/// Errors from the token are wrapped with `what`.
fn retry_on_session_lost<T>(
    connection: &mut Connection,
    reconnect: impl FnOnce() -> Result<Connection, Error>,
    op: impl Fn(&Connection) -> Result<T, CkError>,
    what: &str,
) -> Result<T, Error> {
    match op(connection) {
        Err(e) if session_lost(&e) => {
            *connection = reconnect()?;
            op(connection)
        }
        other => other,
    }
    .map_err(pkcs11_error(what))
}

/// Opens a logged-in read-only session and finds the configured key.
fn connect(context: &Pkcs11, config: &Pkcs11Config) -> Result<(Connection, FoundKey), Error> {
    let session = open_session(context, config)?;
    let (key, found) = find_key(&session, config)?;
    Ok((Connection { session, key }, found))
}

/// Finds exactly one object matching `template`.
fn find_one(session: &Session, template: &[Attribute], what: &str) -> Result<ObjectHandle, Error> {
    let found = session
        .find_objects(template)
        .map_err(pkcs11_error("cannot search the token"))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Key(format!("no {what} found"))),
        many => Err(Error::Key(format!(
            "{} objects match the {what}; labels must be unique",
            many.len()
        ))),
    }
}

/// Finds the private key by label, checks it can sign, and reads the
/// curve and public point from its public-key object.
fn find_key(session: &Session, config: &Pkcs11Config) -> Result<(ObjectHandle, FoundKey), Error> {
    let label = Attribute::Label(config.key_label.as_bytes().to_vec());
    let private = find_one(
        session,
        &[Attribute::Class(ObjectClass::PRIVATE_KEY), label.clone()],
        &format!(
            "private key labelled {:?} on token {:?}",
            config.key_label, config.token_label
        ),
    )?;

    let mut key_type = None;
    let mut id = Vec::new();
    let mut private_params = None;
    for attribute in session
        .get_attributes(
            private,
            &[
                AttributeType::KeyType,
                AttributeType::Id,
                AttributeType::EcParams,
                AttributeType::Sign,
                AttributeType::AlwaysAuthenticate,
            ],
        )
        .map_err(pkcs11_error("cannot read the private key's attributes"))?
    {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Id(v) => id = v,
            Attribute::EcParams(p) => private_params = Some(p),
            Attribute::Sign(false) => {
                return Err(Error::Key(format!(
                    "the key labelled {:?} is not allowed to sign (CKA_SIGN is false)",
                    config.key_label
                )))
            }
            Attribute::AlwaysAuthenticate(true) => {
                return Err(Error::Key(format!(
                    "the key labelled {:?} needs a PIN for every signature \
                     (CKA_ALWAYS_AUTHENTICATE), which an online CA cannot provide",
                    config.key_label
                )))
            }
            _ => {}
        }
    }
    let key_type = match key_type {
        Some(t) if t == KeyType::EC || t == KeyType::EC_EDWARDS => t,
        Some(t) => {
            return Err(Error::Key(format!(
                "the key labelled {:?} has type {t}; govtrust supports EC (P-256, P-384) and Ed25519 keys",
                config.key_label
            )))
        }
        None => {
            return Err(Error::Key(format!(
                "the token does not report the type of the key labelled {:?}",
                config.key_label
            )))
        }
    };

    // The public key belongs to the private key by label and, where the
    // private key has one, by CKA_ID (the usual pairing in HSM tooling).
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY), label];
    if !id.is_empty() {
        template.push(Attribute::Id(id));
    }
    let public = find_one(
        session,
        &template,
        &format!(
            "public key labelled {:?} (with the private key's CKA_ID) on token {:?}",
            config.key_label, config.token_label
        ),
    )?;
    let mut params = None;
    let mut point = None;
    for attribute in session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(pkcs11_error("cannot read the public key's attributes"))?
    {
        match attribute {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else {
        return Err(Error::Key(format!(
            "the public key labelled {:?} lacks CKA_EC_PARAMS or CKA_EC_POINT",
            config.key_label
        )));
    };
    let algorithm = algorithm_from_params(key_type, &params)?;
    // Compared by meaning: tokens may spell the same Edwards curve as an
    // OID on one object and by name on the other.
    if let Some(private_params) = private_params {
        if algorithm_from_params(key_type, &private_params).ok() != Some(algorithm) {
            return Err(Error::Key(format!(
                "the private and public keys labelled {:?} are on different curves \
                 (CKA_EC_PARAMS {} and {})",
                config.key_label,
                hex(&private_params),
                hex(&params)
            )));
        }
    }
    let raw_public_key = raw_public_key(algorithm, &point)?;
    Ok((
        private,
        FoundKey {
            algorithm,
            raw_public_key,
        },
    ))
}

/// Maps a key type and `CKA_EC_PARAMS` to a supported algorithm.
fn algorithm_from_params(key_type: KeyType, params: &[u8]) -> Result<KeyAlgorithm, Error> {
    match params {
        p if key_type == KeyType::EC && p == EC_PARAMS_P256 => Ok(KeyAlgorithm::EcdsaP256),
        p if key_type == KeyType::EC && p == EC_PARAMS_P384 => Ok(KeyAlgorithm::EcdsaP384),
        p if key_type == KeyType::EC_EDWARDS
            && (p == EC_PARAMS_ED25519_OID || p == EC_PARAMS_ED25519_NAME) =>
        {
            Ok(KeyAlgorithm::Ed25519)
        }
        _ => Err(Error::Key(format!(
            "unsupported curve (CKA_EC_PARAMS {}); govtrust supports P-256, P-384 and Ed25519",
            hex(params)
        ))),
    }
}

/// Extracts the raw public key from `CKA_EC_POINT`, which tokens return
/// either raw or (SoftHSM, most HSMs) wrapped in a DER OCTET STRING.
fn raw_public_key(algorithm: KeyAlgorithm, point: &[u8]) -> Result<Vec<u8>, Error> {
    let (len, uncompressed_ec) = match algorithm {
        KeyAlgorithm::EcdsaP256 => (65, true),
        KeyAlgorithm::EcdsaP384 => (97, true),
        KeyAlgorithm::Ed25519 => (32, false),
    };
    // Raw and wrapped forms differ in length, so this is unambiguous.
    let raw = if point.len() == len {
        point.to_vec()
    } else {
        yasna::parse_der(point, |r| r.read_bytes()).map_err(|_| {
            Error::Key("CKA_EC_POINT is neither a raw point nor an OCTET STRING".into())
        })?
    };
    if raw.len() != len || (uncompressed_ec && raw.first() != Some(&0x04)) {
        return Err(Error::Key(format!(
            "CKA_EC_POINT is not an uncompressed {algorithm:?} public key ({} bytes)",
            raw.len()
        )));
    }
    Ok(raw)
}

/// Asks the token to sign: ECDSA over a digest computed here (CKM_ECDSA
/// signs what it is given, and hashing locally keeps large TBS data off
/// the HSM link), Ed25519 over the message itself.
fn token_sign(
    connection: &Connection,
    algorithm: KeyAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>, CkError> {
    let Connection { session, key } = connection;
    match algorithm {
        KeyAlgorithm::EcdsaP256 => session.sign(
            &Mechanism::Ecdsa,
            *key,
            digest::digest(&digest::SHA256, message).as_ref(),
        ),
        KeyAlgorithm::EcdsaP384 => session.sign(
            &Mechanism::Ecdsa,
            *key,
            digest::digest(&digest::SHA384, message).as_ref(),
        ),
        KeyAlgorithm::Ed25519 => session.sign(
            &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            *key,
            message,
        ),
    }
}

/// Errors after which a fresh session may succeed.
fn session_lost(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

/// Verifies an X.509-form signature against a raw public key.
fn verify(
    algorithm: KeyAlgorithm,
    raw_public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), ring::error::Unspecified> {
    let verification: &dyn sig::VerificationAlgorithm = match algorithm {
        KeyAlgorithm::EcdsaP256 => &sig::ECDSA_P256_SHA256_ASN1,
        KeyAlgorithm::EcdsaP384 => &sig::ECDSA_P384_SHA384_ASN1,
        KeyAlgorithm::Ed25519 => &sig::ED25519,
    };
    sig::UnparsedPublicKey::new(verification, raw_public_key).verify(message, signature)
}

/// Wraps a cryptoki error with what was being attempted.
fn pkcs11_error(what: &str) -> impl FnOnce(CkError) -> Error + '_ {
    move |e| Error::Pkcs11(format!("{what}: {e}"))
}

/// Lower-case hex, for error messages.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_wrapped_and_raw() {
        let mut raw = vec![0x04];
        raw.extend([7u8; 64]);
        let wrapped = yasna::construct_der(|w| w.write_bytes(&raw));
        assert_eq!(
            raw_public_key(KeyAlgorithm::EcdsaP256, &raw).ok(),
            Some(raw.clone())
        );
        assert_eq!(
            raw_public_key(KeyAlgorithm::EcdsaP256, &wrapped).ok(),
            Some(raw.clone())
        );
        assert!(raw_public_key(KeyAlgorithm::EcdsaP384, &wrapped).is_err());
        let ed = [9u8; 32];
        let ed_wrapped = yasna::construct_der(|w| w.write_bytes(&ed));
        assert_eq!(
            raw_public_key(KeyAlgorithm::Ed25519, &ed_wrapped).ok(),
            Some(ed.to_vec())
        );
        assert_eq!(
            raw_public_key(KeyAlgorithm::Ed25519, &ed).ok(),
            Some(ed.to_vec())
        );
        // Compressed points are refused.
        let mut compressed = vec![0x02];
        compressed.extend([7u8; 32]);
        let compressed = yasna::construct_der(|w| w.write_bytes(&compressed));
        assert!(raw_public_key(KeyAlgorithm::EcdsaP256, &compressed).is_err());
    }

    #[test]
    fn curves_from_params() {
        let alg = |t, p| algorithm_from_params(t, p).ok();
        assert_eq!(
            alg(KeyType::EC, EC_PARAMS_P256),
            Some(KeyAlgorithm::EcdsaP256)
        );
        assert_eq!(
            alg(KeyType::EC, EC_PARAMS_P384),
            Some(KeyAlgorithm::EcdsaP384)
        );
        assert_eq!(
            alg(KeyType::EC_EDWARDS, EC_PARAMS_ED25519_OID),
            Some(KeyAlgorithm::Ed25519)
        );
        assert_eq!(
            alg(KeyType::EC_EDWARDS, EC_PARAMS_ED25519_NAME),
            Some(KeyAlgorithm::Ed25519)
        );
        assert_eq!(alg(KeyType::EC, EC_PARAMS_ED25519_OID), None);
        assert_eq!(alg(KeyType::EC_EDWARDS, EC_PARAMS_P256), None);
    }

    #[test]
    fn config_debug_hides_pin() {
        let config = Pkcs11Config::new("/m.so", "tok", "key", "s3cret-pin");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-pin"), "{shown}");
        assert!(shown.contains("tok") && shown.contains("key"));
    }
}
