//! The agency's sealing key: generating it, reading it (PKCS#8 DER or
//! PEM) with the attestation chain that certifies it, and sealing documents
//! with it.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use govtrust_verifier::sealed::{
    document_sha256, Document, SealMetadata, SealedContent, SignerRef, SEALED_VERSION,
};
use govtrust_verifier::{profile, DeviceId, Ed25519Key, Expected, Subject, UserId};
use ring::signature::{Ed25519KeyPair, KeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::{io, SealError};

/// The agency's sealing key with the attestation chain that certifies it.
pub struct SealingKey {
    keypair: Ed25519KeyPair,
    user_id: String,
    device_id: String,
    chain: Vec<String>,
    authority_id: String,
    authority_name: String,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("authority_id", &self.authority_id)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 key, PKCS#8 v2 DER, for a sealing device.
pub fn generate_sealing_key() -> Result<Vec<u8>, SealError> {
    Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| SealError::Key("key generation failed".into()))
}

/// The Ed25519 key pair of a PKCS#8 key.
pub(super) fn keypair(pkcs8: &[u8]) -> Result<Ed25519KeyPair, SealError> {
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|e| SealError::Key(format!("not an Ed25519 PKCS#8 key: {e}")))
}

/// The unpadded base64 public key of a PKCS#8 Ed25519 key.
pub fn public_key_b64(pkcs8: &[u8]) -> Result<String, SealError> {
    Ok(STANDARD_NO_PAD.encode(keypair(pkcs8)?.public_key().as_ref()))
}

impl SealingKey {
    /// The key (PKCS#8 DER, or PEM `PRIVATE KEY`) and its attestation chain
    /// (PEM, leaf first) for `user_id`: the chain's leaf must attest
    /// exactly this key for this user and a device.
    pub fn new(key: &[u8], chain_pem: &[u8], user_id: &str) -> Result<Self, SealError> {
        let keypair = keypair(&pkcs8_der(key)?)?;
        let chain = govtrust_verifier::pem::certificates(chain_pem)
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let leaf_der = chain
            .first()
            .ok_or_else(|| SealError::Certificate("empty chain".into()))?;
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| SealError::Certificate(e.to_string()))?;
        let cert_err = |e: govtrust_verifier::Error| SealError::Certificate(e.to_string());
        let device_id = profile::device_id(&leaf)
            .map_err(cert_err)?
            .ok_or_else(|| SealError::Certificate("not a device attestation".into()))?;
        let key_bytes: [u8; 32] = keypair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| SealError::Key("public key is not 32 bytes".into()))?;
        let authority = profile::check_leaf(
            &leaf,
            &Expected {
                user_id: UserId::parse(user_id).map_err(cert_err)?,
                subject: Subject::Device(DeviceId::parse(&device_id).map_err(cert_err)?),
                key: Ed25519Key::from_bytes(key_bytes),
            },
        )
        .map_err(cert_err)?;
        Ok(SealingKey {
            keypair,
            user_id: user_id.to_owned(),
            device_id,
            chain: chain.iter().map(|c| STANDARD.encode(c)).collect(),
            authority_id: authority.id.clone(),
            authority_name: authority.to_string(),
        })
    }

    /// [`SealingKey::new`] from files.
    pub fn load(key: &Path, chain: &Path, user_id: &str) -> Result<Self, SealError> {
        let key_bytes = std::fs::read(key).map_err(io(key))?;
        let chain_pem = std::fs::read(chain).map_err(io(chain))?;
        Self::new(&key_bytes, &chain_pem, user_id)
    }

    /// The sealing device's ID.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The authority the certificate names (display form).
    pub fn authority(&self) -> &str {
        &self.authority_name
    }

    /// Seals `document` for `room_id` at `issued_at_ms` under `reference`.
    pub fn seal(
        &self,
        room_id: &str,
        document: Document,
        reference: &str,
        issued_at_ms: u64,
    ) -> Result<SealedContent, SealError> {
        let mut content = SealedContent {
            version: SEALED_VERSION,
            room_id: room_id.to_owned(),
            sender: self.user_id.clone(),
            signer: SignerRef {
                user_id: self.user_id.clone(),
                device_id: self.device_id.clone(),
                key: STANDARD_NO_PAD.encode(self.keypair.public_key().as_ref()),
            },
            metadata: SealMetadata {
                authority_id: self.authority_id.clone(),
                reference: reference.to_owned(),
                issued_at: issued_at_ms,
            },
            document_sha256: document_sha256(&document)
                .map_err(|e| SealError::Document(e.to_string()))?,
            document,
            chain: self.chain.clone(),
            signatures: Default::default(),
        };
        let bytes = content
            .signing_bytes()
            .map_err(|e| SealError::Document(e.to_string()))?;
        content.add_signature(self.keypair.sign(&bytes).as_ref());
        Ok(content)
    }
}

/// PKCS#8 DER of a key given as DER or PEM (`PRIVATE KEY`).
pub(super) fn pkcs8_der(key: &[u8]) -> Result<Vec<u8>, SealError> {
    let text = match std::str::from_utf8(key) {
        Ok(text) if text.contains("-----BEGIN") => text,
        _ => return Ok(key.to_vec()),
    };
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD
        .decode(body.trim())
        .map_err(|e| SealError::Key(format!("PEM: {e}")))
}

/// PEM (`PRIVATE KEY`) of a PKCS#8 DER key.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_pem_round_trips() {
        let der = generate_sealing_key().expect("key");
        let pem = pkcs8_pem(&der);
        assert_eq!(pkcs8_der(pem.as_bytes()).expect("der"), der);
        assert_eq!(
            public_key_b64(&der).expect("pk"),
            public_key_b64(&pkcs8_der(pem.as_bytes()).expect("der")).expect("pk")
        );
    }
}
