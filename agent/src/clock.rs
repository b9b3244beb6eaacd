//! The agent's clock, in Unix seconds: the unit of certificate validity,
//! CRL nextUpdate and the store's timestamps.

use std::time::SystemTime;

/// Now, in Unix seconds. A clock before 1970 reads 0 and one past `i64`
/// saturates, so a broken system clock never panics the agent (the
/// verdicts it then reaches are the verifier's to judge).
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
