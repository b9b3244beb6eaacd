//! The agent's rules, as pure functions: from what the attestations say to
//! what the device's local trust should be, given what the agent itself set
//! earlier. Kept free of matrix-sdk calls so the rules are unit-tested.

use matrix_sdk::encryption::LocalTrust;

use super::store::{Reason, SetTrust};
use crate::config::RevocationAction;
use crate::decision::TrustAction;

/// What the attestations call for, for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Desired {
    /// Trust it (local trust Verified), for this reason.
    Trust(Reason),
    /// It is verified through cross-signing already (an identity signature
    /// whose attestation holds): the agent needs to set nothing, and lifts
    /// a block of its own.
    Covered,
    /// Its attestation (or its identity's) is revoked.
    Revoked,
    /// It is verified through an identity signature the agent made, and
    /// that no longer holds (for this reason): blocking is the only local
    /// way back.
    Block(Reason),
    /// Nothing (valid) vouches for it: trust lapses.
    Lapsed,
}

/// What to do to one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// New local trust to set, if any.
    pub set: Option<LocalTrust>,
    /// What to record.
    pub record: RecordOp,
    /// The state the device is left in, as reported.
    pub action: TrustAction,
}

/// Change to the agent's record of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordOp {
    /// Leave the record as it is (or absent).
    Keep,
    /// Record that the agent set this.
    Put(SetTrust, Reason),
    /// Forget the record: the agent no longer owns the device's trust.
    Remove,
}

impl SetTrust {
    pub(crate) fn local(self) -> LocalTrust {
        match self {
            SetTrust::Verified => LocalTrust::Verified,
            SetTrust::BlackListed => LocalTrust::BlackListed,
        }
    }
}

fn keep(action: TrustAction) -> Plan {
    Plan {
        set: None,
        record: RecordOp::Keep,
        action,
    }
}

fn change(to: LocalTrust, record: RecordOp, action: TrustAction) -> Plan {
    Plan {
        set: Some(to),
        record,
        action,
    }
}

/// Decides what to do to a device whose local trust is `current`, when the
/// agent's record says it set `ours` (if anything) and the attestations
/// call for `desired`.
///
/// The invariant: the agent changes a device's local trust only from
/// `Unset`, or from a state it set itself and that nobody changed since.
pub(crate) fn plan(
    current: LocalTrust,
    ours: Option<(SetTrust, Reason)>,
    desired: Desired,
    on_revoked: RevocationAction,
) -> Plan {
    let revoked_to = match on_revoked {
        RevocationAction::BlackList => LocalTrust::BlackListed,
        RevocationAction::Unset => LocalTrust::Unset,
    };
    match ours {
        // Somebody (the user, another client of this account) changed the
        // trust the agent set: theirs wins, the agent lets go.
        Some((set, _)) if current != set.local() => Plan {
            set: None,
            record: RecordOp::Remove,
            action: TrustAction::LeftAlone {
                local_trust: current,
            },
        },
        Some((set, reason)) => match desired {
            Desired::Trust(why) => match set {
                SetTrust::Verified if why == reason => keep(TrustAction::Trusted),
                SetTrust::Verified => Plan {
                    set: None,
                    record: RecordOp::Put(SetTrust::Verified, why),
                    action: TrustAction::Trusted,
                },
                SetTrust::BlackListed => change(
                    LocalTrust::Verified,
                    RecordOp::Put(SetTrust::Verified, why),
                    TrustAction::Trusted,
                ),
            },
            Desired::Covered => match (set, reason) {
                (SetTrust::Verified, _) => keep(TrustAction::Trusted),
                // A device revocation stays in force.
                (SetTrust::BlackListed, Reason::Revoked) => keep(TrustAction::Blocked),
                (SetTrust::BlackListed, _) => change(
                    LocalTrust::Unset,
                    RecordOp::Remove,
                    TrustAction::ViaSignedIdentity,
                ),
            },
            Desired::Revoked => match (set, revoked_to) {
                (SetTrust::BlackListed, _) => keep(TrustAction::Blocked),
                (SetTrust::Verified, LocalTrust::BlackListed) => change(
                    LocalTrust::BlackListed,
                    RecordOp::Put(SetTrust::BlackListed, Reason::Revoked),
                    TrustAction::Blocked,
                ),
                (SetTrust::Verified, _) => {
                    change(LocalTrust::Unset, RecordOp::Remove, TrustAction::Withdrawn)
                }
            },
            Desired::Block(why) => match set {
                SetTrust::BlackListed if why == reason => keep(TrustAction::Blocked),
                SetTrust::BlackListed => Plan {
                    set: None,
                    record: RecordOp::Put(SetTrust::BlackListed, why),
                    action: TrustAction::Blocked,
                },
                SetTrust::Verified => change(
                    LocalTrust::BlackListed,
                    RecordOp::Put(SetTrust::BlackListed, why),
                    TrustAction::Blocked,
                ),
            },
            Desired::Lapsed => match (set, reason) {
                (SetTrust::Verified, _) => {
                    change(LocalTrust::Unset, RecordOp::Remove, TrustAction::Withdrawn)
                }
                // A revocation stays in force when the attestation vanishes.
                (SetTrust::BlackListed, Reason::Revoked) => keep(TrustAction::Blocked),
                // The signature the block stood in for no longer matters
                // (the identity's master key changed): lift the block.
                (SetTrust::BlackListed, _) => {
                    change(LocalTrust::Unset, RecordOp::Remove, TrustAction::Withdrawn)
                }
            },
        },
        None => match (desired, current) {
            (Desired::Trust(why), LocalTrust::Unset) => change(
                LocalTrust::Verified,
                RecordOp::Put(SetTrust::Verified, why),
                TrustAction::Trusted,
            ),
            (Desired::Block(why), LocalTrust::Unset) => change(
                LocalTrust::BlackListed,
                RecordOp::Put(SetTrust::BlackListed, why),
                TrustAction::Blocked,
            ),
            (Desired::Covered, LocalTrust::Unset) => keep(TrustAction::ViaSignedIdentity),
            // Never trusted by the agent: nothing to withdraw.
            (Desired::Revoked | Desired::Lapsed, LocalTrust::Unset) => keep(TrustAction::NoChange),
            // The user's own choice (verified by hand, blocked, ignored).
            (_, other) => keep(TrustAction::LeftAlone { local_trust: other }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BL: RevocationAction = RevocationAction::BlackList;
    const DEV: Reason = Reason::DeviceAttestation;

    #[test]
    fn trusts_only_from_unset() {
        let p = plan(LocalTrust::Unset, None, Desired::Trust(DEV), BL);
        assert_eq!(p.set, Some(LocalTrust::Verified));
        assert_eq!(p.record, RecordOp::Put(SetTrust::Verified, DEV));
        for user_choice in [
            LocalTrust::Verified,
            LocalTrust::BlackListed,
            LocalTrust::Ignored,
        ] {
            let p = plan(user_choice, None, Desired::Trust(DEV), BL);
            assert_eq!(p.set, None, "{user_choice:?}");
            assert_eq!(p.record, RecordOp::Keep);
        }
    }

    #[test]
    fn never_touches_what_it_did_not_set() {
        for desired in [
            Desired::Revoked,
            Desired::Lapsed,
            Desired::Block(Reason::Revoked),
            Desired::Covered,
        ] {
            let p = plan(LocalTrust::Verified, None, desired, BL);
            assert_eq!(p.set, None, "{desired:?}");
            assert_eq!(p.record, RecordOp::Keep);
        }
    }

    #[test]
    fn user_change_releases_the_record() {
        let ours = Some((SetTrust::Verified, DEV));
        let p = plan(LocalTrust::BlackListed, ours, Desired::Trust(DEV), BL);
        assert_eq!(p.set, None);
        assert_eq!(p.record, RecordOp::Remove);
    }

    #[test]
    fn withdraws_and_blocks_what_it_set() {
        let ours = Some((SetTrust::Verified, DEV));
        let lapsed = plan(LocalTrust::Verified, ours, Desired::Lapsed, BL);
        assert_eq!(lapsed.set, Some(LocalTrust::Unset));
        assert_eq!(lapsed.record, RecordOp::Remove);
        let revoked = plan(LocalTrust::Verified, ours, Desired::Revoked, BL);
        assert_eq!(revoked.set, Some(LocalTrust::BlackListed));
        assert_eq!(
            revoked.record,
            RecordOp::Put(SetTrust::BlackListed, Reason::Revoked)
        );
        let unset = plan(
            LocalTrust::Verified,
            ours,
            Desired::Revoked,
            RevocationAction::Unset,
        );
        assert_eq!(unset.set, Some(LocalTrust::Unset));
        // A revocation block survives the attestation disappearing, but is
        // lifted by a valid attestation again.
        let blocked = Some((SetTrust::BlackListed, Reason::Revoked));
        assert_eq!(
            plan(LocalTrust::BlackListed, blocked, Desired::Lapsed, BL).set,
            None
        );
        assert_eq!(
            plan(LocalTrust::BlackListed, blocked, Desired::Trust(DEV), BL).set,
            Some(LocalTrust::Verified)
        );
        // A block standing in for an identity signature is lifted when the
        // signature is covered again or no longer matters.
        let sig = Some((SetTrust::BlackListed, Reason::SignatureNoLongerBacked));
        assert_eq!(
            plan(LocalTrust::BlackListed, sig, Desired::Covered, BL).set,
            Some(LocalTrust::Unset)
        );
        assert_eq!(
            plan(LocalTrust::BlackListed, sig, Desired::Lapsed, BL).set,
            Some(LocalTrust::Unset)
        );
        assert_eq!(
            plan(LocalTrust::BlackListed, blocked, Desired::Covered, BL).set,
            None
        );
    }

    #[test]
    fn blocks_devices_trusted_through_its_signature() {
        // Verified through cross-signing, nothing set locally: only a block
        // takes the trust back.
        let why = Reason::SignatureNoLongerBacked;
        let p = plan(LocalTrust::Unset, None, Desired::Block(why), BL);
        assert_eq!(p.set, Some(LocalTrust::BlackListed));
        assert_eq!(p.record, RecordOp::Put(SetTrust::BlackListed, why));
        assert_eq!(p.action, TrustAction::Blocked);
        // Even when the configured revocation action is only "unset".
        let p = plan(
            LocalTrust::Unset,
            None,
            Desired::Block(Reason::Revoked),
            RevocationAction::Unset,
        );
        assert_eq!(p.set, Some(LocalTrust::BlackListed));
    }

    #[test]
    fn steady_state_is_a_no_op() {
        let ours = Some((SetTrust::Verified, DEV));
        let p = plan(LocalTrust::Verified, ours, Desired::Trust(DEV), BL);
        assert_eq!(p.set, None);
        assert_eq!(p.record, RecordOp::Keep);
        assert_eq!(p.action, TrustAction::Trusted);
    }
}
