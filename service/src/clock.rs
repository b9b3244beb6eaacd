//! The service's one clock: milliseconds since the epoch, the unit every
//! stored time (challenges, certificates, audit entries, tokens) uses.

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}
