//! Applying what an evaluation decided: setting and withdrawing a device's
//! local trust, and signing an identity — each write-ahead, so that the
//! agent's store always knows about trust the agent set.
//!
//! What the agent is about to set is on disk before it is set, and a
//! record is dropped only after the trust is undone, so a crash in between
//! never leaves trust the agent set but does not know about (it would then
//! never withdraw it).

use matrix_sdk::encryption::identities::{Device, UserIdentity};
use matrix_sdk::ruma::UserId as RumaUserId;

use crate::error::AgentError;
use crate::plan::{Desired, Plan, RecordOp};
use crate::state::{EvalState, Inner};
use crate::store::{DeviceRecord, IdentityRecord};

impl Inner {
    /// Whether the citizen can sign other users' identities (has a
    /// user-signing key on this device).
    pub(crate) async fn can_sign(&self) -> bool {
        self.client
            .encryption()
            .cross_signing_status()
            .await
            .is_some_and(|s| s.has_master && s.has_user_signing)
    }

    /// Signs `identity`'s master key with the citizen's user-signing key,
    /// recording `pending` (which says `signed`) first. Returns whether it
    /// signed; if not, the record goes back to `was_signed`.
    pub(crate) async fn sign_identity(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        identity: &UserIdentity,
        mut pending: IdentityRecord,
        was_signed: bool,
    ) -> Result<bool, AgentError> {
        // Write-ahead, as for devices: a signature the agent made must
        // never go unrecorded.
        state.store.put_identity(user.to_string(), pending.clone());
        state.store.save()?;
        match identity.verify().await {
            Ok(()) => {
                // The store learns of the new signature from the next key
                // query.
                if let Err(e) = self.client.encryption().request_user_identity(user).await {
                    tracing::debug!(%user, error = %e, "key query after signing failed");
                }
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(%user, error = %e, "govtrust agent: signing the identity failed");
                pending.signed = was_signed;
                state.store.put_identity(user.to_string(), pending);
                Ok(false)
            }
        }
    }

    /// Carries out `planned` on `device`: writes `record` (the device's
    /// record as it stands after the plan; `None` to drop it) around
    /// setting the local trust, in write-ahead order. `desired` is what
    /// the plan was made for, for the log.
    pub(crate) async fn apply_device(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        device: &Device,
        planned: &Plan,
        desired: Desired,
        record: Option<DeviceRecord>,
    ) -> Result<(), AgentError> {
        let device_id = device.device_id();
        match (planned.record, record) {
            (RecordOp::Put(..), Some(record)) => {
                state
                    .store
                    .put_device(user.as_str(), device_id.as_str(), record);
                state.store.save()?;
            }
            (RecordOp::Keep, Some(record)) => {
                state
                    .store
                    .put_device(user.as_str(), device_id.as_str(), record);
            }
            _ => {}
        }
        if let Some(to) = planned.set {
            device
                .set_local_trust(to)
                .await
                .map_err(|e| AgentError::matrix("setting local trust", e))?;
            tracing::info!(%user, device = %device_id, ?to, ?desired, "govtrust agent set local trust");
        }
        if planned.record == RecordOp::Remove {
            state.store.remove_device(user.as_str(), device_id.as_str());
            state.store.save()?;
        }
        Ok(())
    }
}
