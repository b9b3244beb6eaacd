//! Plain-text tables and times for human output.

/// Renders rows under a header, columns padded to their widest cell
/// (counted in characters). An empty table says so.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)".to_owned();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    let pad = widths[i].saturating_sub(c.chars().count());
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Milliseconds since the epoch as RFC 3339 (UTC, seconds).
pub fn time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// An optional time, `-` when absent.
pub fn opt_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "-".to_owned())
}

/// Parses a time for the command line: RFC 3339
/// (`2026-05-01T00:00:00Z`), milliseconds since the epoch, or relative to
/// now (`now`, `now+30d`, `now-12h`, units s, m, h, d).
pub fn parse_time(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(rest) = text.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now_ms);
        }
        let (sign, amount) = match rest.split_at(1) {
            ("+", a) => (1, a),
            ("-", a) => (-1, a),
            _ => {
                anyhow::bail!("time {text:?}: after `now` comes +N or -N with a unit s, m, h or d")
            }
        };
        let (number, unit) = amount.split_at(amount.len().saturating_sub(1));
        let n: i64 = number
            .parse()
            .map_err(|_| anyhow::anyhow!("time {text:?}: {number:?} is not a number"))?;
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => anyhow::bail!("time {text:?}: the unit must be s, m, h or d"),
        };
        return n
            .checked_mul(unit_ms)
            .and_then(|d| now_ms.checked_add(sign * d))
            .ok_or_else(|| anyhow::anyhow!("time {text:?} is out of range"));
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            anyhow::anyhow!("time {text:?}: not RFC 3339, milliseconds, or now±N[smhd] ({e})")
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| anyhow::anyhow!("time {text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_all_three_forms() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_time("now", now).ok(), Some(now));
        assert_eq!(parse_time("now+2d", now).ok(), Some(now + 2 * 86_400_000));
        assert_eq!(parse_time("now-90m", now).ok(), Some(now - 90 * 60_000));
        assert_eq!(parse_time("1234", now).ok(), Some(1234));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now).ok(),
            Some(1_700_000_000_000)
        );
        for bad in ["now+", "now+3w", "now*3d", "tomorrow", "now+xd"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_pad_columns() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1");
        assert_eq!(table(&["A"], &[]), "(none)");
    }
}
