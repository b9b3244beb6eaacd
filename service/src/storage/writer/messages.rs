//! PostgreSQL messages kept small: the bulk statements (the audit append,
//! challenge inserts, issuances) take their rows as JSON arrays, and a
//! batch larger than [`MESSAGE_BYTES`] is sent as several such messages.

/// Largest message a bulk statement sends in one call (a soft limit: one
/// entry larger than this still goes alone). PostgreSQL reads a call's
/// whole JSON before it runs it, so this bounds what one call holds in the
/// server's memory; a batch of [`MAX_BATCH`](crate::storage::MAX_BATCH)
/// ordinary changes (a few KB each) fits in one message, which is the
/// point: the cost of a call is mostly per call, not per item.
///
/// It was 8 KiB while sqlx 0.9.0 left Nagle's algorithm on
/// (transact-rs/sqlx#4335): a message the socket did not take in one write
/// had its tail wait 40 ms for the server's delayed ACK, with the chain
/// head locked. sqlx 0.9.1 sets `TCP_NODELAY` again, and the workspace
/// requires it.
pub(super) const MESSAGE_BYTES: usize = 1024 * 1024;

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
            .map(|i| {
                serde_json::json!({ "n": i, "pad": "x".repeat(i * (MESSAGE_BYTES / 4096)) })
                    .to_string()
            })
            .collect();
        let arrays = json_chunks(items.clone());
        assert!(
            arrays.len() > 1,
            "200 entries of up to 50 KiB need several messages"
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
