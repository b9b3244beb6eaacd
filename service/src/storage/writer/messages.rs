//! PostgreSQL messages kept small: the bulk statements (the audit append,
//! challenge inserts, issuances) take their rows as JSON arrays, and a
//! batch larger than [`MESSAGE_BYTES`] is sent as several such messages.

/// Largest message a bulk statement sends in one call (a soft limit: one
/// entry larger than this still goes alone). sqlx 0.9.0 leaves Nagle's
/// algorithm on (transact-rs/sqlx#4335), so a message the socket does not
/// take in one write has its tail wait for the server's delayed ACK: 40 ms,
/// with the chain head locked. govtrust-bench with 64 clients measured
/// batches of 24 entries on average and 44.8 ms at the 99th percentile
/// under the head lock, against 1.4 ms at the median.
pub(super) const MESSAGE_BYTES: usize = 8 * 1024;

/// `items` (JSON values) as JSON arrays of at most [`MESSAGE_BYTES`] each,
/// in order.
pub(super) fn json_arrays(items: Vec<String>) -> Vec<String> {
    json_chunks(items)
        .into_iter()
        .map(|(_, array)| array)
        .collect()
}

/// As [`json_arrays`], each array with the number of items it holds.
pub(super) fn json_chunks(items: Vec<String>) -> Vec<(usize, String)> {
    let mut arrays: Vec<(usize, String)> = Vec::new();
    let mut current = String::new();
    let mut count = 0;
    for item in items {
        if !current.is_empty() && current.len() + item.len() + 2 > MESSAGE_BYTES {
            current.push(']');
            arrays.push((std::mem::take(&mut count), std::mem::take(&mut current)));
        }
        current.push(if current.is_empty() { '[' } else { ',' });
        current.push_str(&item);
        count += 1;
    }
    if !current.is_empty() {
        current.push(']');
        arrays.push((count, current));
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::{json_arrays, json_chunks, MESSAGE_BYTES};

    #[test]
    fn json_arrays_keep_order_and_size() {
        let items: Vec<String> = (0..200)
            .map(|i| serde_json::json!({ "n": i, "pad": "x".repeat(i * 7) }).to_string())
            .collect();
        let arrays = json_chunks(items.clone());
        assert!(
            arrays.len() > 1,
            "200 entries of up to 1.4 KB need several messages"
        );
        let mut back = Vec::new();
        for (count, array) in &arrays {
            let parsed: Vec<serde_json::Value> = serde_json::from_str(array).expect("a JSON array");
            assert_eq!(*count, parsed.len(), "the count of {array}");
            assert!(
                array.len() <= MESSAGE_BYTES || parsed.len() == 1,
                "{} bytes with {} entries",
                array.len(),
                parsed.len()
            );
            back.extend(parsed.into_iter().map(|v| v.to_string()));
        }
        assert_eq!(back, items, "every entry once, in order");
        let big = "y".repeat(MESSAGE_BYTES * 2);
        assert_eq!(
            json_arrays(vec![format!("\"{big}\"")]).len(),
            1,
            "an oversized entry alone"
        );
        assert!(json_arrays(Vec::new()).is_empty());
    }
}
