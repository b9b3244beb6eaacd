//! Changes in the form the writer stores them: JSON columns are
//! serialised before a change is queued, so a value that cannot be stored
//! fails its own caller at once rather than a statement in a shared batch.

use crate::storage::audit::AuditEntry;
use crate::storage::model::{Authority, NewOutboxItem};
use crate::storage::{StoreError, StoreResult};

/// An audit entry with its details already serialised to the stored text.
pub(in crate::storage) struct PreparedAudit {
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub details: String,
}

impl PreparedAudit {
    /// The entry as `govtrust_audit_append` (PostgreSQL migration 0008)
    /// reads it, at time `at`.
    pub(super) fn json(&self, at: i64) -> serde_json::Value {
        serde_json::json!({
            "at": at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
        })
    }
}

/// An outbox item with its content already serialised.
pub(in crate::storage) struct PreparedOutbox {
    pub kind: String,
    pub state_key: String,
    pub content: String,
}

/// An authority with its list columns already serialised.
pub(in crate::storage) struct PreparedAuthority {
    pub authority: Authority,
    pub servers: String,
    pub user_patterns: String,
}

/// Serialises an audit entry's details.
pub(super) fn prepare_audit(entry: AuditEntry) -> StoreResult<PreparedAudit> {
    let details = serde_json::to_string(&entry.details)
        .map_err(|e| StoreError::InvalidInput(format!("audit details: {e}")))?;
    Ok(PreparedAudit {
        actor: entry.actor,
        action: entry.action,
        subject: entry.subject,
        details,
    })
}

/// Serialises an outbox item's content.
pub(in crate::storage) fn prepare_outbox(item: NewOutboxItem) -> StoreResult<PreparedOutbox> {
    let content = serde_json::to_string(&item.content)
        .map_err(|e| StoreError::InvalidInput(format!("outbox content: {e}")))?;
    Ok(PreparedOutbox {
        kind: item.kind,
        state_key: item.state_key,
        content,
    })
}

/// Serialises an authority's list columns.
pub(in crate::storage) fn prepare_authority(
    authority: Authority,
) -> StoreResult<Box<PreparedAuthority>> {
    let json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| StoreError::InvalidInput(e.to_string()))
    };
    Ok(Box::new(PreparedAuthority {
        servers: json(&authority.servers)?,
        user_patterns: json(&authority.user_patterns)?,
        authority,
    }))
}
