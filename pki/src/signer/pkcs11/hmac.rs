//! HMAC-SHA-256 with a secret key inside a PKCS#11 token: a
//! `CKK_GENERIC_SECRET` key, `CKM_SHA256_HMAC` sign. Found, like signing
//! keys, by token label and `CKA_LABEL`; it shares the module context and
//! login bookkeeping of [`super`].

use std::fmt;
use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};

use super::{
    context, creating_objects, find_one, lock, open_session, pkcs11_error, retry_on_session_lost,
    session_for_new_key, using_objects, Connection, Pkcs11Config,
};
use crate::signer::mac::{MacKey, MAC_KEY_LEN};
use crate::Error;

/// An HMAC-SHA-256 key that stays inside a PKCS#11 token.
pub struct Pkcs11MacKey {
    context: Pkcs11,
    config: Pkcs11Config,
    connection: Mutex<Connection>,
}

impl fmt::Debug for Pkcs11MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11MacKey")
            .field("module", &self.config.module)
            .field("token_label", &self.config.token_label)
            .field("key_label", &self.config.key_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11MacKey {
    /// Opens an existing secret key labelled `config.key_label`: it must be
    /// a `CKO_SECRET_KEY` of type `CKK_GENERIC_SECRET` allowed to sign, and
    /// a probe HMAC must succeed.
    pub fn open(config: &Pkcs11Config) -> Result<Self, Error> {
        let context = context(&config.module)?;
        let using = using_objects();
        let connection = connect_mac(&context, config)?;
        drop(using);
        let key = Pkcs11MacKey {
            context,
            config: config.clone(),
            connection: Mutex::new(connection),
        };
        key.hmac_sha256(b"govtrust PKCS#11 MAC key check")?;
        Ok(key)
    }

    /// Generates a new token-resident 32-byte generic secret (sensitive,
    /// non-extractable, sign/verify only) and opens it. Refuses if any
    /// object with the label exists.
    pub fn generate(config: &Pkcs11Config) -> Result<Self, Error> {
        create(config, None)?;
        Self::open(config)
    }

    /// Imports a 32-byte secret as a token-resident, sensitive,
    /// non-extractable key (e.g. to move a development file key into an
    /// HSM without changing any pseudonym) and opens it.
    pub fn import(config: &Pkcs11Config, secret: &[u8]) -> Result<Self, Error> {
        if secret.len() != MAC_KEY_LEN {
            return Err(Error::Key(format!(
                "a MAC key must be {MAC_KEY_LEN} bytes, not {}",
                secret.len()
            )));
        }
        create(config, Some(secret))?;
        Self::open(config)
    }

    /// The configuration (its `Debug` hides the PIN).
    pub fn config(&self) -> &Pkcs11Config {
        &self.config
    }
}

impl MacKey for Pkcs11MacKey {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], Error> {
        let _using = using_objects();
        let mut connection = lock(&self.connection);
        let raw = retry_on_session_lost(
            &mut connection,
            || connect_mac(&self.context, &self.config),
            |c| c.session.sign(&Mechanism::Sha256Hmac, c.key, message),
            "HMAC failed",
        )?;
        raw.as_slice().try_into().map_err(|_| {
            Error::Signer(format!(
                "the token returned a {}-byte HMAC-SHA-256, expected 32",
                raw.len()
            ))
        })
    }
}

fn connect_mac(context: &Pkcs11, config: &Pkcs11Config) -> Result<Connection, Error> {
    let session = open_session(context, config)?;
    let key = find_one(
        &session,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(config.key_label.as_bytes().to_vec()),
        ],
        &format!(
            "secret key labelled {:?} on token {:?}",
            config.key_label, config.token_label
        ),
    )?;
    for attribute in session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::Sign])
        .map_err(pkcs11_error("cannot read the secret key's attributes"))?
    {
        match attribute {
            Attribute::KeyType(t) if t != KeyType::GENERIC_SECRET => {
                return Err(Error::Key(format!(
                    "the secret key labelled {:?} has type {t}, expected CKK_GENERIC_SECRET",
                    config.key_label
                )))
            }
            Attribute::Sign(false) => {
                return Err(Error::Key(format!(
                    "the secret key labelled {:?} may not sign (CKA_SIGN is false)",
                    config.key_label
                )))
            }
            _ => {}
        }
    }
    Ok(Connection { session, key })
}

fn create(config: &Pkcs11Config, secret: Option<&[u8]>) -> Result<(), Error> {
    let _creating = creating_objects();
    let context = context(&config.module)?;
    let (session, label) = session_for_new_key(&context, config, "create")?;
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        label,
    ];
    let created: Result<_, CkError> = match secret {
        None => {
            template.push(Attribute::ValueLen((MAC_KEY_LEN as u64).into()));
            // CKA_CLASS is implied by the mechanism for key generation.
            template.remove(0);
            session.generate_key(&Mechanism::GenericSecretKeyGen, &template)
        }
        Some(value) => {
            template.push(Attribute::Value(value.to_vec()));
            session.create_object(&template)
        }
    };
    created.map_err(pkcs11_error(&format!(
        "cannot create the MAC key on token {:?}",
        config.token_label
    )))?;
    Ok(())
}
