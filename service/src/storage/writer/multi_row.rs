//! Multi-row `INSERT` statements for bulk writes on SQLite (PostgreSQL's
//! take JSON arrays, see `messages`): rows are split into
//! power-of-two chunks so that only a handful of distinct statement texts
//! (each built once) reach the statement cache.

use std::sync::OnceLock;

/// Largest number of rows in one multi-row `INSERT`.
const MAX_ROWS: usize = 16;

/// Splits `items` into chunks of 16, 8, ..., 1 items: few statements, and
/// only a handful of distinct statement texts for the statement cache.
pub(super) fn pow2_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = MAX_ROWS;
        while n > rest.len() {
            n /= 2;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// `{head}($1, ..., $columns), (...), ...{tail}` for `rows` rows (a chunk
/// of [`pow2_chunks`]), built once per size into `cache`. `tail` gets the
/// number of parameters the rows use, for parameters of its own.
pub(super) fn multi_row_sql(
    cache: &'static OnceLock<Vec<String>>,
    head: &str,
    columns: usize,
    tail: impl Fn(usize) -> String,
    rows: usize,
) -> &'static str {
    let all = cache.get_or_init(|| {
        (0..=MAX_ROWS.trailing_zeros())
            .map(|k| {
                let tuples: Vec<String> = (0..1usize << k)
                    .map(|r| {
                        let params: Vec<String> = (1..=columns)
                            .map(|c| format!("${}", r * columns + c))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!("{head}{}{}", tuples.join(", "), tail(columns << k))
            })
            .collect()
    });
    let k = rows.trailing_zeros() as usize;
    all.get(k).map_or("", String::as_str)
}
