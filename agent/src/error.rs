//! The agent's one error type.
//!
//! Why not the verifier's [`govtrust_verifier::Error`]: that type is a
//! *verdict* on an attestation — every variant names one failed rule of the
//! profile, and [`govtrust_verifier::Error::code`] feeds metrics and
//! user-visible reasons. What goes wrong in the agent is operational (the
//! Matrix client, the agent's own store, fetching a CRL) and says nothing
//! about any certificate. Verdicts still travel as
//! [`govtrust_verifier::Error`] inside [`crate::Verdict::Rejected`];
//! `AgentError` wraps one only where a configuration input (the pinned
//! roots) failed to parse.

/// Why the agent could not do something (as opposed to why an attestation
/// was rejected, which is a [`crate::Verdict`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is unusable.
    #[error("agent configuration: {0}")]
    Config(String),
    /// The Matrix client is not logged in, or has no end-to-end encryption
    /// (no crypto store to read device keys from).
    #[error("the Matrix client is not logged in or has no end-to-end encryption")]
    NotReady,
    /// A call into matrix-sdk failed.
    #[error("Matrix ({context}): {detail}")]
    Matrix {
        /// What the agent was doing.
        context: &'static str,
        /// The SDK's error message.
        detail: String,
    },
    /// The agent's own store (the record of what it set) could not be read
    /// or written.
    #[error("agent store {path}: {detail}")]
    Store {
        /// The store file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A CRL could not be fetched from its distribution point.
    #[error("fetching CRL {url}: {detail}")]
    CrlFetch {
        /// The distribution point URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A configuration input failed the verifier's parsing (e.g. the
    /// pinned roots).
    #[error(transparent)]
    Verifier(#[from] govtrust_verifier::Error),
}

impl AgentError {
    pub(crate) fn matrix(context: &'static str, err: impl std::fmt::Display) -> Self {
        AgentError::Matrix {
            context,
            detail: err.to_string(),
        }
    }

    pub(crate) fn crl(url: &str, detail: impl std::fmt::Display) -> Self {
        AgentError::CrlFetch {
            url: url.to_owned(),
            detail: detail.to_string(),
        }
    }
}
