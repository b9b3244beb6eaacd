//! Evaluating one user: the cross-signing identity first (signing it if so
//! configured), then each device, from what the attestations say to the
//! trust they call for; `apply` carries that out and `plan` holds the
//! rules for a device.

use std::collections::HashSet;
use std::time::SystemTime;

use govtrust_verifier::{DeviceId, Ed25519Key, Subject, UserId};
use matrix_sdk::encryption::identities::{Device, UserIdentity};
use matrix_sdk::encryption::LocalTrust;
use matrix_sdk::ruma::{OwnedDeviceId, UserId as RumaUserId};

use crate::check::Check;
use crate::clock::now_secs;
use crate::decision::{TrustAction, TrustDecision, SIGNATURE_WARNING};
use crate::error::AgentError;
use crate::plan::{plan, Desired, RecordOp};
use crate::state::{EvalState, Inner};
use crate::store::{DeviceRecord, IdentityRecord, Reason};

/// The identity side of one user's evaluation, as the devices need it.
pub(crate) struct IdentityOutcome {
    check: Check,
    /// The agent's signature on the current master key is in force.
    signed_by_us: bool,
}

impl Inner {
    /// Checks one user's identity and devices and applies the result.
    pub(crate) async fn evaluate_user(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
    ) -> Result<(), AgentError> {
        if user == self.own_user {
            return Ok(());
        }
        let Ok(vuser) = UserId::parse(user.as_str()) else {
            tracing::debug!(%user, "govtrust agent: user ID outside the profile, skipped");
            return Ok(());
        };
        let encryption = self.client.encryption();
        let identity = encryption
            .get_user_identity(user)
            .await
            .map_err(|e| AgentError::matrix("reading the identity", e))?;
        let outcome = self
            .evaluate_identity(state, user, &vuser, identity.as_ref())
            .await?;
        // Read after the identity step: a signature made there changes
        // the devices' cross-signing state.
        let devices = encryption
            .get_user_devices(user)
            .await
            .map_err(|e| AgentError::matrix("reading devices", e))?;
        let mut present = HashSet::new();
        for device in devices.devices() {
            if device.is_deleted() {
                continue;
            }
            present.insert(device.device_id().to_string());
            self.evaluate_device(state, user, &vuser, &device, &outcome)
                .await?;
        }
        // Devices that are gone: nothing left to undo.
        for device in state.store.devices_of(user.as_str()) {
            if !present.contains(&device) {
                state.store.remove_device(user.as_str(), &device);
                let id = OwnedDeviceId::from(device.as_str());
                state.expiries.remove(&(user.to_owned(), Some(id.clone())));
                if let Ok(mut last) = self.last.lock() {
                    last.remove(&(user.to_owned(), Some(id)));
                }
            }
        }
        Ok(())
    }

    /// Checks the user's cross-signing identity, signs it if it is attested
    /// and the configuration asks for it, and records and reports the
    /// outcome.
    async fn evaluate_identity(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        vuser: &UserId,
        identity: Option<&UserIdentity>,
    ) -> Result<IdentityOutcome, AgentError> {
        let record = state.store.identity(user.as_str()).cloned();
        let master = identity
            .and_then(|i| i.master_key().get_first_key())
            .map(|k| k.to_base64());
        let (Some(identity), Some(master_b64)) = (identity, master) else {
            // No cross-signing identity known: an unsigned record is moot;
            // a signed one is kept (the signature stays on the server).
            if record.as_ref().is_some_and(|r| !r.signed) {
                state.store.remove_identity(user.as_str());
            }
            return Ok(IdentityOutcome {
                check: Check::Absent,
                signed_by_us: false,
            });
        };
        // A record for another master key is moot: a signature of the old
        // key does not vouch for the new one.
        let record = match record {
            Some(r) if r.master_key != master_b64 => {
                state.store.remove_identity(user.as_str());
                None
            }
            other => other,
        };
        let check = match Ed25519Key::from_base64(&master_b64) {
            Ok(key) => {
                let cached = record.as_ref().and_then(|r| r.content.clone());
                self.check(state, vuser, &Subject::Identity, key, cached.as_deref())
                    .await
            }
            Err(error) => Check::Rejected {
                error,
                content: None,
            },
        };
        let check = self.with_element_x509(state, vuser, identity, check).await;
        let mut signed = record.as_ref().is_some_and(|r| r.signed);
        let mut changed = false;
        let mut warning = None;
        let action = match &check {
            Check::Verified { att, content } => {
                let action = if identity.is_verified() {
                    if signed {
                        TrustAction::SignedIdentity
                    } else {
                        TrustAction::LeftAlone {
                            local_trust: LocalTrust::Verified,
                        }
                    }
                } else if self.settings.sign_identities && self.can_sign().await {
                    let pending = IdentityRecord {
                        master_key: master_b64.clone(),
                        signed: true,
                        serial: Some(att.serial.clone()),
                        at: now_secs(),
                        content: Some(content.clone()),
                    };
                    if self
                        .sign_identity(state, user, identity, pending, signed)
                        .await?
                    {
                        signed = true;
                        changed = true;
                        TrustAction::SignedIdentity
                    } else {
                        TrustAction::NoChange
                    }
                } else {
                    TrustAction::NoChange
                };
                state.store.put_identity(
                    user.to_string(),
                    IdentityRecord {
                        master_key: master_b64.clone(),
                        signed,
                        serial: Some(att.serial.clone()),
                        at: record.as_ref().map_or_else(now_secs, |r| r.at),
                        content: Some(content.clone()),
                    },
                );
                action
            }
            Check::Rejected { .. } | Check::Absent => {
                if signed {
                    warning = Some(SIGNATURE_WARNING.to_owned());
                    TrustAction::Blocked
                } else {
                    state.store.remove_identity(user.as_str());
                    TrustAction::NoChange
                }
            }
        };
        // Only a signature that still makes the identity verified needs
        // standing in for by blocks.
        let signed_by_us = signed && (identity.is_verified() || changed);
        self.track_expiry(state, user, None, check.verified());
        self.emit(
            TrustDecision {
                user_id: user.to_owned(),
                device_id: None,
                verdict: check.verdict(),
                action,
                warning,
                at: SystemTime::now(),
            },
            changed,
        );
        Ok(IdentityOutcome {
            check,
            signed_by_us,
        })
    }

    /// Where no identity attestation holds (and none is revoked), an
    /// `io.element.x509` signature on the master key as the client's own
    /// crypto store holds it may stand in for one (docs/profile.md §15):
    /// a valid signature is a verified identity; a rejected one is the
    /// outcome if nothing else was found, or if it is revoked.
    async fn with_element_x509(
        &self,
        state: &mut EvalState,
        vuser: &UserId,
        identity: &UserIdentity,
        check: Check,
    ) -> Check {
        if check.verified().is_some() || check.is_revoked() {
            return check;
        }
        let Ok(json) = serde_json::to_string(identity.master_key().as_ref()) else {
            return check;
        };
        match self.check_element_x509(state, vuser, &json).await {
            Check::Absent => check,
            x509 @ Check::Verified { .. } => x509,
            x509 if x509.is_revoked() || matches!(check, Check::Absent) => x509,
            _ => check,
        }
    }

    /// Checks one device, decides the trust its attestation (or its
    /// identity's) calls for, has it applied, and records and reports the
    /// outcome.
    async fn evaluate_device(
        &self,
        state: &mut EvalState,
        user: &RumaUserId,
        vuser: &UserId,
        device: &Device,
        identity: &IdentityOutcome,
    ) -> Result<(), AgentError> {
        let device_id = device.device_id().to_owned();
        let (Some(key_b64), Ok(vdevice)) = (
            device.ed25519_key().map(|k| k.to_base64()),
            DeviceId::parse(device_id.as_str()),
        ) else {
            return Ok(());
        };
        let Ok(key) = Ed25519Key::from_base64(&key_b64) else {
            return Ok(());
        };
        let record = state
            .store
            .device(user.as_str(), device_id.as_str())
            .cloned();
        // Content cached for this very key only: after a key change the
        // old attestation is not evidence for anything.
        let cached = record
            .as_ref()
            .filter(|r| r.key == key_b64)
            .and_then(|r| r.content.clone());
        let check = self
            .check(
                state,
                vuser,
                &Subject::Device(vdevice),
                key,
                cached.as_deref(),
            )
            .await;

        let cross_signed = device.is_cross_signed_by_owner();
        let identity_ok = identity.check.verified().is_some();
        let identity_revoked = identity.check.is_revoked();
        // Verified through the agent's own identity signature: withdrawing
        // means blocking (the signature cannot be taken back).
        let signed = cross_signed && identity.signed_by_us;
        let desired = if check.is_revoked() {
            if signed {
                Desired::Block(Reason::Revoked)
            } else {
                Desired::Revoked
            }
        } else if cross_signed && identity_revoked {
            if signed {
                Desired::Block(Reason::SignatureNoLongerBacked)
            } else {
                Desired::Revoked
            }
        } else if check.verified().is_some() {
            Desired::Trust(Reason::DeviceAttestation)
        } else if signed && !identity_ok {
            Desired::Block(Reason::SignatureNoLongerBacked)
        } else if cross_signed && identity_ok && device.is_verified_with_cross_signing() {
            Desired::Covered
        } else if cross_signed && identity_ok {
            Desired::Trust(Reason::IdentityAttestation)
        } else {
            Desired::Lapsed
        };
        // The verdict shown is the one the decision rests on.
        let (verdict, basis) = match desired {
            Desired::Trust(Reason::IdentityAttestation) | Desired::Covered => {
                (identity.check.verdict(), &identity.check)
            }
            Desired::Revoked | Desired::Block(_) if !check.is_revoked() => {
                (identity.check.verdict(), &identity.check)
            }
            _ => (check.verdict(), &check),
        };

        let current = device.local_trust_state();
        let ours = record.as_ref().map(|r| (r.set, r.reason));
        let planned = plan(current, ours, desired, self.settings.on_revoked);
        let serial = basis.verified().map(|a| a.serial.clone());
        let content = check.content().map(str::to_owned);
        // The record as it stands after the plan: a new one for what the
        // agent sets, the old one brought up to date, or none.
        let next = match planned.record {
            RecordOp::Put(set, reason) => Some(DeviceRecord {
                key: key_b64,
                set,
                reason,
                serial: serial.or_else(|| record.as_ref().and_then(|r| r.serial.clone())),
                at: now_secs(),
                content: content.or(cached),
            }),
            RecordOp::Keep => record.map(|mut r| {
                if serial.is_some() {
                    r.serial = serial;
                }
                if content.is_some() {
                    r.content = content;
                }
                r
            }),
            RecordOp::Remove => None,
        };
        self.apply_device(state, user, device, &planned, desired, next)
            .await?;
        let warning = matches!(desired, Desired::Block(_)).then(|| SIGNATURE_WARNING.to_owned());
        self.track_expiry(state, user, Some(&device_id), basis.verified());
        self.emit(
            TrustDecision {
                user_id: user.to_owned(),
                device_id: Some(device_id),
                verdict,
                action: planned.action,
                warning,
                at: SystemTime::now(),
            },
            planned.set.is_some(),
        );
        Ok(())
    }
}
