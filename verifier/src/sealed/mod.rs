//! Sealed documents (`io.govtrust.sealed`) and their receipts
//! (`io.govtrust.receipt`), docs/profile.md §16.
//!
//! A sealed event carries a machine-readable document (a JSON decision, or
//! the SHA-256 of a file with its media URL), the seal metadata (authority
//! ID, reference number, `issued_at`), the room ID and sender it was sealed
//! for, the signer's device attestation chain, and an Ed25519 signature by
//! the attested key over the Matrix signing bytes (canonical JSON of the
//! content without `signatures` and `unsigned`).
//!
//! [`SealedVerifier::verify_sealed`] decides offline, from the content, the
//! pinned roots and CRLs alone:
//!
//! 1. the content parses and is within [`MAX_SEALED_CONTENT_BYTES`];
//! 2. it was sealed for this room and this sender, and the signer is the
//!    sender's user (a copy replayed elsewhere is refused);
//! 3. `document_sha256` is the SHA-256 of the canonical JSON of `document`
//!    (`sealed_document_tampered` otherwise);
//! 4. the signature under `ed25519:<signer device>` verifies with the
//!    signer key over the signing bytes;
//! 5. the chain attests exactly that key for that user and device, and
//!    validates to a pinned root **at `issued_at`** (`signer_not_attested`
//!    wraps the attestation rule's reason);
//! 6. revocation as of `issued_at`: a certificate on the path that a CRL
//!    lists with a revocation date at or before `issued_at` is refused
//!    (`revoked_before_signing`); one revoked after `issued_at` leaves the
//!    seal valid (the CRL that lists it was signed after the seal, so it
//!    also speaks for the signing time). The CRL policy (required, fresh)
//!    is applied at `issued_at`;
//! 7. the metadata's authority ID is the certificate's authority record.
//!
//! Receipts are checked by [`verify_receipt`] against the key the caller
//! holds for the citizen's device (from its own crypto store), exactly as
//! attestations are.
//!
//! This module never holds a private key: the builders return the bytes to
//! sign and take the signature back.
//!
//! # Layout
//!
//! The concepts live in submodules, all re-exported here: `content` (the
//! two event contents, their limits and builders), `signing` (canonical
//! JSON, the document hash and the Ed25519 signatures), `seal` (verifying
//! a sealed document, with revocation as of `issued_at`) and `receipt`
//! (verifying a receipt).

mod content;
mod receipt;
mod seal;
mod signing;

pub use content::{
    Document, ReceiptContent, SealMetadata, SealedContent, Signatures, SignerRef,
    MAX_RECEIPT_CONTENT_BYTES, MAX_SEALED_CONTENT_BYTES, RECEIPT_EVENT_TYPE, SEALED_EVENT_TYPE,
    SEALED_VERSION,
};
pub use receipt::{verify_receipt, ReceiptExpected, VerifiedReceipt};
pub use seal::{SealedContext, SealedVerifier, VerifiedSealed};
pub use signing::{canonical_json, document_sha256, sha256_hex};
