//! Shared machinery of the conformance suites: the data folder, the
//! reviewed exceptions file, outcome bookkeeping and the summary line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use govtrust_verifier::{Error, UnixTime};

/// The copied conformance data (never `../shared`).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance")
}

/// Reads a file below [`data_dir`], panicking with the path on failure.
pub fn read(relative: &str) -> Vec<u8> {
    let path = data_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One reviewed known divergence: a case whose verdict differs from the
/// suite's expectation for a documented reason.
#[derive(Debug)]
pub struct Exception {
    pub reason: String,
}

/// The reviewed exceptions file: `<suite> <case-id> <reason>` per line,
/// `#` comments and blank lines ignored.
pub struct Exceptions {
    by_case: BTreeMap<(String, String), Exception>,
}

impl Exceptions {
    pub fn load() -> Self {
        let text = String::from_utf8(read("exceptions.txt")).expect("exceptions.txt is UTF-8");
        let mut by_case = BTreeMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, char::is_whitespace);
            let (Some(suite), Some(id), Some(reason)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!(
                    "exceptions.txt:{}: want `<suite> <case-id> <reason>`",
                    number + 1
                );
            };
            let reason = reason.trim();
            assert!(
                !reason.is_empty(),
                "exceptions.txt:{}: a divergence needs a reason",
                number + 1
            );
            let previous = by_case.insert(
                (suite.to_owned(), id.to_owned()),
                Exception {
                    reason: reason.to_owned(),
                },
            );
            assert!(
                previous.is_none(),
                "exceptions.txt:{}: {suite} {id} listed twice",
                number + 1
            );
        }
        Exceptions { by_case }
    }

    fn get(&self, suite: &str, id: &str) -> Option<&Exception> {
        self.by_case.get(&(suite.to_owned(), id.to_owned()))
    }

    /// The suite names the file uses.
    pub fn suites(&self) -> BTreeSet<&str> {
        self.by_case.keys().map(|(s, _)| s.as_str()).collect()
    }

    fn ids<'s>(&'s self, suite: &'s str) -> impl Iterator<Item = &'s str> {
        self.by_case
            .keys()
            .filter(move |(s, _)| s == suite)
            .map(|(_, id)| id.as_str())
    }
}

/// What the suite expects of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Accept,
    Reject,
}

/// Tallies the outcomes of one suite and prints its summary.
pub struct Tally<'a> {
    suite: &'static str,
    exceptions: &'a Exceptions,
    cases: usize,
    passed: usize,
    divergences: Vec<String>,
    skips: BTreeMap<&'static str, usize>,
    unexpected: Vec<String>,
    seen: BTreeSet<String>,
}

impl<'a> Tally<'a> {
    pub fn new(suite: &'static str, exceptions: &'a Exceptions) -> Self {
        Tally {
            suite,
            exceptions,
            cases: 0,
            passed: 0,
            divergences: Vec::new(),
            skips: BTreeMap::new(),
            unexpected: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    fn start(&mut self, id: &str) {
        self.cases += 1;
        assert!(
            self.seen.insert(id.to_owned()),
            "{}: duplicate case id {id}",
            self.suite
        );
    }

    /// Records a case that is not run, with the reason.
    pub fn skip(&mut self, id: &str, reason: &'static str) {
        self.start(id);
        *self.skips.entry(reason).or_default() += 1;
        if self.exceptions.get(self.suite, id).is_some() {
            self.unexpected.push(format!(
                "{id}: skipped ({reason}) but also listed in exceptions.txt; remove the entry"
            ));
        }
    }

    /// Records a case that was run. `verdict` is the verifier's answer;
    /// `wrong_reason` is `Some(why)` when the suite knows why the case must
    /// fail and the verifier rejected it for an unrelated rule.
    pub fn record(
        &mut self,
        id: &str,
        expect: Expect,
        verdict: &Result<(), Error>,
        wrong_reason: Option<String>,
    ) {
        self.start(id);
        let conforms = match (expect, verdict) {
            (Expect::Accept, Ok(())) | (Expect::Reject, Err(_)) => wrong_reason.is_none(),
            _ => false,
        };
        let got = match verdict {
            Ok(()) => "accepted".to_owned(),
            Err(e) => format!("rejected: {} ({e})", e.code()),
        };
        if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
            println!("  {} {id}: expected {expect:?}, {got}", self.suite);
        }
        match (conforms, self.exceptions.get(self.suite, id)) {
            (true, None) => self.passed += 1,
            (true, Some(_)) => self.unexpected.push(format!(
                "{id}: conforms now ({got}) but is listed in exceptions.txt; remove the entry"
            )),
            (false, Some(exception)) => self
                .divergences
                .push(format!("{id}: {got}; {}", exception.reason)),
            (false, None) => {
                let kind = match (expect, verdict) {
                    (Expect::Reject, Ok(())) => "FALSE ACCEPT",
                    (Expect::Accept, Err(_)) => "FALSE REJECT",
                    _ => "WRONG REASON",
                };
                let mut line = format!("{id}: {kind}: expected {expect:?}, {got}");
                if let Some(why) = wrong_reason {
                    let _ = write!(line, " [{why}]");
                }
                self.unexpected.push(line);
            }
        }
    }

    /// Prints the summary line (and details below it) and returns the
    /// number of unexpected outcomes, including stale exceptions.
    pub fn finish(mut self) -> usize {
        for id in self.exceptions.ids(self.suite) {
            if !self.seen.contains(id) {
                self.unexpected
                    .push(format!("{id}: listed in exceptions.txt but no such case"));
            }
        }
        let skipped: usize = self.skips.values().sum();
        let mut out = format!(
            "{}: {} cases, {} passed, {} skipped, {} known divergences, {} unexpected\n",
            self.suite,
            self.cases,
            self.passed,
            skipped,
            self.divergences.len(),
            self.unexpected.len()
        );
        for (reason, count) in &self.skips {
            let _ = writeln!(out, "    skipped {count:>3}: {reason}");
        }
        if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
            for line in &self.divergences {
                let _ = writeln!(out, "    divergence {line}");
            }
        }
        for line in &self.unexpected {
            let _ = writeln!(out, "    UNEXPECTED {line}");
        }
        print!("{out}");
        self.unexpected.len()
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `+00:00` (the forms the
/// suites use) into a [`UnixTime`].
pub fn parse_utc(text: &str) -> UnixTime {
    fn unsupported(text: &str) -> ! {
        panic!("unsupported time {text:?}")
    }
    let (stamp, zone) = text.split_at(19.min(text.len()));
    if !(zone == "Z" || zone == "+00:00") {
        unsupported(text);
    }
    let b = stamp.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        unsupported(text);
    }
    let num = |range: std::ops::Range<usize>| -> i64 {
        stamp[range].parse().unwrap_or_else(|_| unsupported(text))
    };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    // Days from civil (H. Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(secs).unwrap_or_else(|_| unsupported(text)),
    ))
}

#[test]
fn parse_utc_known_instants() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z").as_secs(), 0);
    assert_eq!(parse_utc("2022-03-23T12:49:43Z").as_secs(), 1_648_039_783);
    assert_eq!(
        parse_utc("2016-09-01T00:00:00+00:00").as_secs(),
        1_472_688_000
    );
}
