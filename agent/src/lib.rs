//! `govtrust-agent`: the auto-trust agent for matrix-sdk 0.18 clients. It
//! makes a citizen's client trust an agency's attested devices without
//! manual verification, shows who they are, and withdraws that trust on
//! revocation, expiry or a key change.
//!
//! The checks themselves live in the pure `govtrust-verifier` crate; this
//! crate is what runs them against a live matrix-sdk client: it finds the
//! attestations, fetches CRLs, sets and withdraws local trust and records
//! what it did.
//!
//! ```no_run
//! # async fn run(client: matrix_sdk::Client, root_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use govtrust_agent::{AgentConfig, AutoTrustAgent};
//! use govtrust_verifier::TrustAnchors;
//!
//! // `client` is logged in, with end-to-end encryption; the app syncs it.
//! let config = AgentConfig::new(TrustAnchors::from_pem(root_pem)?, "govtrust-agent.json");
//! let agent = AutoTrustAgent::start(client.clone(), config).await?;
//! let mut decisions = agent.subscribe();
//! tokio::spawn(async move {
//!     while let Ok(decision) = decisions.recv().await {
//!         println!("{decision}"); // e.g. show decision.badge() next to the sender
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! What it does, for every user whose devices the client's crypto store
//! knows (the users it shares encrypted rooms with, and users passed to
//! [`AutoTrustAgent::check_user`]):
//!
//! - finds the `io.govtrust.attestation` state events for each device
//!   (`device|<user>|<device>`) and for the user's cross-signing identity
//!   (`identity|<user>`) in the rooms the client is in and in the directory
//!   rooms (read without joining; they are world-readable);
//! - verifies each against the key the client's **own crypto store** holds
//!   for that device or identity, the pinned roots and fresh CRLs fetched
//!   from the certificates' distribution points;
//! - sets local trust `Verified` on attested devices, and — for an attested
//!   identity — either signs the master key with the citizen's
//!   user-signing key (opt-in, [`AgentConfig::sign_identities`]) or trusts
//!   locally each device that identity's self-signing key signed;
//! - on revocation, expiry, a missing attestation or a key change,
//!   withdraws exactly what it set (recorded in its own store), and never
//!   changes trust it did not set;
//! - broadcasts a [`TrustDecision`] whenever a verdict or what it did
//!   changes.
//!
//! It re-checks a user when the sync brings an attestation or membership
//! event or the crypto store reports new or changed devices or identities,
//! and everybody every [`AgentConfig::refresh_interval`], when an accepted
//! certificate expires, and when a cached CRL is due.
//!
//! # Modules
//!
//! The public API is re-exported here; the modules hold one concept each:
//!
//! - `config`: [`AgentConfig`] and its parts ([`DirectoryRoom`],
//!   [`RevocationAction`]);
//! - `decision`: what the agent reports ([`Verdict`], [`TrustAction`],
//!   [`TrustDecision`]);
//! - `agent`: the [`AutoTrustAgent`] handle an app holds;
//! - `worker`: what triggers a re-check, and the background task;
//! - `state`: what a running agent shares between its tasks;
//! - `evaluate`: one user's identity and devices, from attestations to the
//!   trust they call for;
//! - `check`: verifying the attestations of one device or identity;
//! - `directory`: finding attestation events in rooms;
//! - `apply`: setting and withdrawing trust, write-ahead;
//! - `plan`: the rules, as pure functions; `store`: the record of what the
//!   agent set; `crls`: fetching and caching CRLs; `error`: [`AgentError`];
//!   `clock`: Unix time.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod apply;
mod check;
mod clock;
mod config;
mod crls;
mod decision;
mod directory;
mod error;
mod evaluate;
mod plan;
pub mod sealed;
mod state;
mod store;
mod worker;

pub use crate::agent::AutoTrustAgent;
pub use crate::config::{
    AgentConfig, DirectoryRoom, RevocationAction, DEFAULT_DIRECTORY_ALIAS_LOCALPART,
};
pub use crate::crls::{
    distribution_points, CrlFetcher, HttpCrlFetcher, CRL_FETCH_TIMEOUT, MAX_CRL_BYTES,
};
pub use crate::decision::{TrustAction, TrustDecision, Verdict};
pub use crate::error::AgentError;
pub use crate::sealed::{send_receipt, ReceiptKey, SealedDecision, SealedInbox};
