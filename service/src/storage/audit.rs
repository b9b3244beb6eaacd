//! The hash-chained audit log: entry types, the hash, and chain checking.
//!
//! Each entry's `hash` is SHA-256 over the previous entry's hash and an
//! unambiguous encoding of the entry (see [`audit_hash`]); the first entry's
//! `prev_hash` is [`GENESIS_HASH`]. Changing, removing or reordering any
//! stored entry therefore breaks the chain at (or right after) that entry.
//!
//! The chain is tamper-*evident* against edits by someone who cannot
//! recompute hashes afterwards; an attacker with write access to the
//! database can rewrite the whole tail consistently. Anchoring the head hash
//! somewhere else (a signed, published checkpoint) closes that gap and can
//! build on [`AuditReport::head_hash`].
//!
//! The functions here are pure so that `govtrust audit verify`, the store and
//! the tests all use the same code.

use ring::digest;
use serde::Serialize;

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation tag that starts every hashed message (version 1).
const DOMAIN: &[u8] = b"govtrust-audit-v1\0";

/// What to log about a change; the store adds `seq`, `at` and the hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Who did it: `agency:<authority id>`, `operator:<name>` or `system`.
    pub actor: String,
    /// What happened, dotted (`certificate.issued`, `authority.created`, ...).
    pub action: String,
    /// What it happened to (a serial, an authority id, ...), if anything.
    pub subject: Option<String>,
    /// Structured details; stored as JSON text and hashed exactly as stored.
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// Shorthand for the common case with a subject.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            subject: Some(subject.into()),
            details,
        }
    }
}

/// A stored audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, starting at 1, without gaps.
    pub seq: u64,
    /// Time of the logged change (unix ms) as given by the caller. The order
    /// of the log is `seq`; `at` may be slightly out of order across
    /// replicas with skewed clocks.
    pub at: i64,
    /// Who did it.
    pub actor: String,
    /// What happened.
    pub action: String,
    /// What it happened to.
    pub subject: Option<String>,
    /// JSON text, exactly as hashed.
    pub details: String,
    /// Hash of the previous entry (hex), [`GENESIS_HASH`] for seq 1.
    pub prev_hash: String,
    /// This entry's hash (lower-case hex).
    pub hash: String,
}

impl AuditRecord {
    /// Recomputes this entry's hash from its fields and `prev_hash`.
    pub fn compute_hash(&self) -> String {
        audit_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            self.subject.as_deref(),
            &self.details,
        )
    }
}

/// The hash of an audit entry, as lower-case hex.
///
/// `SHA-256( "govtrust-audit-v1\0" || str(prev_hash) || u64be(seq) ||
/// i64be(at) || str(actor) || str(action) || opt(subject) || str(details) )`
/// where `str(s) = u64be(byte length) || UTF-8 bytes` and
/// `opt(None) = 0x00`, `opt(Some(s)) = 0x01 || str(s)`. Every field is
/// length-prefixed or fixed-size, so no two different entries share an
/// encoding.
pub fn audit_hash(
    prev_hash: &str,
    seq: u64,
    at: i64,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    details: &str,
) -> String {
    fn field(ctx: &mut digest::Context, s: &str) {
        ctx.update(&(s.len() as u64).to_be_bytes());
        ctx.update(s.as_bytes());
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(DOMAIN);
    field(&mut ctx, prev_hash);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&at.to_be_bytes());
    field(&mut ctx, actor);
    field(&mut ctx, action);
    match subject {
        None => ctx.update(&[0]),
        Some(s) => {
            ctx.update(&[1]);
            field(&mut ctx, s);
        }
    }
    field(&mut ctx, details);
    hex(ctx.finish().as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Lower-case hex SHA-256 of `data` (used for operator token hashes).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// Result of checking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// The first entry (by seq) that does not verify, if any.
    pub first_broken: Option<u64>,
    /// Why it does not verify.
    pub reason: Option<String>,
    /// The chain head the check ran against (seq, 0 for an empty log).
    pub head_seq: u64,
    /// Hash of the head entry ([`GENESIS_HASH`] for an empty log).
    pub head_hash: String,
}

impl AuditReport {
    /// True if the whole chain verified.
    pub fn is_ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Incremental chain checker: feed entries in seq order with
/// [`ChainVerifier::push`], then call [`ChainVerifier::finish`] with the
/// recorded head. Keeps O(1) state, so it works for any log size.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    entries: u64,
    last_seq: u64,
    last_hash: String,
    broken: Option<(u64, String)>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A checker expecting the chain to start at seq 1 from [`GENESIS_HASH`].
    pub fn new() -> Self {
        Self {
            entries: 0,
            last_seq: 0,
            last_hash: GENESIS_HASH.to_owned(),
            broken: None,
        }
    }

    /// True once a broken entry was found; further pushes are ignored.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Checks the next entry. Returns false once the chain is broken.
    pub fn push(&mut self, rec: &AuditRecord) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let expected = self.last_seq + 1;
        if rec.seq != expected {
            // A gap: the missing entry is the first broken one.
            let reason = if rec.seq > expected {
                format!(
                    "entry {expected} is missing (next stored entry is {})",
                    rec.seq
                )
            } else {
                format!("entry {} is out of order after {}", rec.seq, self.last_seq)
            };
            self.broken = Some((expected, reason));
            return false;
        }
        self.entries += 1;
        if rec.prev_hash != self.last_hash {
            self.broken = Some((
                rec.seq,
                format!(
                    "prev_hash {} does not match the hash of entry {} ({})",
                    rec.prev_hash, self.last_seq, self.last_hash
                ),
            ));
            return false;
        }
        let computed = rec.compute_hash();
        if computed != rec.hash {
            self.broken = Some((
                rec.seq,
                format!(
                    "stored hash {} does not match its content (computed {computed})",
                    rec.hash
                ),
            ));
            return false;
        }
        self.last_seq = rec.seq;
        self.last_hash = computed;
        true
    }

    /// Compares the end of the chain with the recorded head and returns the
    /// report. Entries after the head are not examined by the store (they
    /// were appended after the check began).
    pub fn finish(self, head_seq: u64, head_hash: &str) -> AuditReport {
        let mut broken = self.broken;
        if broken.is_none() {
            if self.last_seq < head_seq {
                broken = Some((
                    self.last_seq + 1,
                    format!(
                        "entry {} is missing: the log ends at {} but its head is {head_seq}",
                        self.last_seq + 1,
                        self.last_seq
                    ),
                ));
            } else if self.last_seq > head_seq {
                broken = Some((
                    head_seq + 1,
                    format!(
                        "entry {} lies beyond the recorded head {head_seq}",
                        head_seq + 1
                    ),
                ));
            } else if self.last_hash != head_hash {
                broken = Some((
                    self.last_seq,
                    format!(
                        "hash of entry {} ({}) differs from the recorded head hash {head_hash}",
                        self.last_seq, self.last_hash
                    ),
                ));
            }
        }
        let (first_broken, reason) = match broken {
            Some((seq, reason)) => (Some(seq), Some(reason)),
            None => (None, None),
        };
        AuditReport {
            entries: self.entries,
            first_broken,
            reason,
            head_seq,
            head_hash: head_hash.to_owned(),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRecord {
                    seq,
                    at: 1000 + seq as i64,
                    actor: "system".into(),
                    action: "test".into(),
                    subject: Some(format!("s{seq}")),
                    details: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = r.compute_hash();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn run(recs: &[AuditRecord], head: u64, head_hash: &str) -> AuditReport {
        let mut v = ChainVerifier::new();
        for r in recs {
            v.push(r);
        }
        v.finish(head, head_hash)
    }

    #[test]
    fn encoding_is_unambiguous() {
        let a = audit_hash(GENESIS_HASH, 1, 0, "ab", "c", None, "{}");
        let b = audit_hash(GENESIS_HASH, 1, 0, "a", "bc", None, "{}");
        let c = audit_hash(GENESIS_HASH, 1, 0, "ab", "c", Some(""), "{}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn detects_edits_gaps_and_truncation() {
        let recs = chain(5);
        let head = recs[4].hash.clone();
        assert!(run(&recs, 5, &head).is_ok());
        assert!(run(&[], 0, GENESIS_HASH).is_ok());

        let mut edited = recs.clone();
        edited[2].details = r#"{"x":1}"#.into();
        assert_eq!(run(&edited, 5, &head).first_broken, Some(3));

        let mut gap = recs.clone();
        gap.remove(1);
        assert_eq!(run(&gap, 5, &head).first_broken, Some(2));

        assert_eq!(run(&recs[..4], 5, &head).first_broken, Some(5));
        let mut rehashed = recs.clone();
        rehashed[4].details = "[]".into();
        rehashed[4].hash = rehashed[4].compute_hash();
        assert_eq!(run(&rehashed, 5, &head).first_broken, Some(5));
    }
}
