//! Sealed documents, agency side (docs/profile.md §16): seal a document
//! with the agency's **sealing key**, validate it against the agency's
//! JSON Schemas, send it as `io.govtrust.sealed` into an (encrypted) room,
//! verify the citizens' receipts and export an archive that re-verifies
//! offline.
//!
//! # Why a sealing key and not the sending device's own key
//!
//! matrix-sdk 0.18 gives an application no way to sign bytes with its
//! device's Ed25519 key: `OlmMachine::sign` exists in matrix-sdk-crypto,
//! but the client's `OlmMachine` is reachable only through
//! `Client::olm_machine_for_testing` (feature `testing`) or the
//! crate-private `Client::base_client()`, and no public API exports or
//! signs with the account key. Rather than depend on a test feature or
//! export the key, the agency holds a **separate Ed25519 key** (PKCS#8,
//! mode 0600) that is registered as its own Matrix device of the agency
//! user ([`register_sealing_device`]: login + self-signed device keys) and
//! enrolled with the ordinary device attestation through the service's
//! `signature` proof ([`enroll_sealing_device`]). Seals name that device as
//! signer; the verifier requires the signer's user to be the event's
//! sender, so the matrix-sdk device of the same agency account sends them.
//!
//! One module per concept: `key` (the sealing key and what it seals),
//! `schema` (the agency's JSON Schemas), `send` (into a room), `device`
//! (registering and enrolling the sealing device), `archive` (a room's
//! sealed events with their receipts, for offline re-verification) and
//! `error`; everything public is re-exported here.

mod archive;
mod device;
mod error;
mod key;
mod schema;
mod send;

pub use archive::{archive_room, check_receipt, write_archive};
pub use device::{enroll_sealing_device, register_sealing_device};
pub use error::SealError;
pub use key::{generate_sealing_key, pkcs8_pem, public_key_b64, SealingKey};
pub use schema::SchemaStore;
pub use send::send_sealed;
