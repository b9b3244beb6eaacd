//! What a running agent shares between its tasks: the settings it runs
//! with, the evaluation state behind one lock, and the latest decisions
//! with the broadcast that announces them.
//!
//! The work itself is spread over `impl Inner` blocks by concept: the
//! worker (`worker`), evaluating a user (`evaluate`), checking
//! attestations (`check`), reading rooms (`directory`) and applying trust
//! (`apply`). This module holds the bookkeeping they all share.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use govtrust_verifier::{VerifiedAttestation, Verifier};
use matrix_sdk::ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, UserId as RumaUserId};
use matrix_sdk::Client;
use tokio::sync::{broadcast, Mutex};

use crate::config::{DirectoryRoom, RevocationAction};
use crate::crls::CrlCache;
use crate::decision::{TrustAction, TrustDecision, Verdict};
use crate::store::Store;

/// A device (`Some`) or identity (`None`) of a user: what decisions and
/// expiries are kept per.
pub(crate) type SubjectKey = (OwnedUserId, Option<OwnedDeviceId>);

/// The parts of [`crate::AgentConfig`] the agent consults while running.
pub(crate) struct Settings {
    pub directory_rooms: Vec<DirectoryRoom>,
    pub scan_joined_rooms: bool,
    pub publishers: Vec<OwnedUserId>,
    pub sign_identities: bool,
    pub refresh_interval: Duration,
    pub on_revoked: RevocationAction,
}

/// The agent's core, shared by the handle and its background tasks.
pub(crate) struct Inner {
    pub client: Client,
    pub own_user: OwnedUserId,
    pub strict: Verifier,
    /// Same roots, CRLs not required: the first pass that proves a chain
    /// genuine before its distribution points are contacted.
    pub lenient: Verifier,
    pub settings: Settings,
    /// One evaluation at a time: the store and caches change together.
    pub state: Mutex<EvalState>,
    /// The latest decision per subject, for [`crate::AutoTrustAgent::decisions`].
    pub last: StdMutex<HashMap<SubjectKey, TrustDecision>>,
    pub decisions: broadcast::Sender<TrustDecision>,
}

/// What an evaluation reads and changes, behind [`Inner::state`].
pub(crate) struct EvalState {
    pub store: Store,
    pub crls: CrlCache,
    /// Directory rooms resolved to IDs (`None`: the alias does not exist),
    /// with the time of resolution (see `directory::DIRECTORY_TTL`).
    pub directories: HashMap<DirectoryRoom, (Option<OwnedRoomId>, i64)>,
    /// notAfter of each accepted attestation, to re-check at expiry.
    pub expiries: HashMap<SubjectKey, i64>,
}

impl Inner {
    /// Remembers when the attestation a subject's decision rests on
    /// expires, so the worker wakes to re-check it then.
    pub(crate) fn track_expiry(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        device: Option<&OwnedDeviceId>,
        verified: Option<&VerifiedAttestation>,
    ) {
        let key = (user.to_owned(), device.cloned());
        match verified {
            Some(att) => {
                state.expiries.insert(key, att.not_after);
            }
            None => {
                state.expiries.remove(&key);
            }
        }
    }

    /// Records the decision and broadcasts it if it says something new:
    /// trust was changed, or the verdict or the resulting state differs
    /// from the last one sent for the subject. "No attestation, nothing
    /// done" is not news for a device nobody attested.
    pub(crate) fn emit(&self, decision: TrustDecision, changed: bool) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let key = decision.key();
        let previous = last.get(&key);
        let quiet = matches!(decision.verdict, Verdict::NotAttested)
            && decision.action == TrustAction::NoChange;
        let news = changed
            || match previous {
                Some(p) => {
                    p.verdict.summary() != decision.verdict.summary() || p.action != decision.action
                }
                None => !quiet,
            };
        if quiet && previous.is_none() {
            return;
        }
        if news {
            tracing::info!("govtrust agent: {decision}");
            let _ = self.decisions.send(decision.clone());
        }
        last.insert(key, decision);
    }
}
