//! CPU accounting from /proc: ticks per thread of this process (by runtime
//! name), of Synapse, of the PostgreSQL server and of the whole machine, so
//! that the report can say what each party of an enrollment costs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Clock ticks of /proc's utime and stime (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Which processes besides this one take part in an enrollment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuProbe {
    /// Synapse, when the bench started it.
    pub(crate) synapse_pid: Option<u32>,
    /// Count the PostgreSQL server processes (every `postgres` process on
    /// the host: other users of the server are counted too).
    pub(crate) postgres: bool,
}

/// CPU ticks per thread of this process (by name), of Synapse, of the
/// PostgreSQL server, and of the whole machine.
pub(crate) struct CpuSnapshot {
    threads: HashMap<String, (String, u64)>,
    synapse: Option<u64>,
    postgres: Option<u64>,
    /// Busy (not idle, not iowait) ticks of all CPUs, and steal ticks.
    machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    pub(crate) fn take(probe: CpuProbe) -> CpuSnapshot {
        let mut threads = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc/self/task") {
            for entry in entries.flatten() {
                let dir = entry.path();
                let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if let Some(ticks) = stat_ticks(&dir.join("stat")) {
                    threads.insert(
                        entry.file_name().to_string_lossy().into_owned(),
                        (name.trim().to_owned(), ticks),
                    );
                }
            }
        }
        CpuSnapshot {
            threads,
            synapse: probe
                .synapse_pid
                .and_then(|pid| stat_ticks(Path::new(&format!("/proc/{pid}/stat")))),
            postgres: probe.postgres.then(postgres_ticks),
            machine: machine_ticks(),
        }
    }

    /// CPU seconds per party since `before`: this process's threads by
    /// role, Synapse, PostgreSQL, and everything else on the machine.
    pub(crate) fn since(&self, before: &CpuSnapshot) -> BTreeMap<String, f64> {
        let secs = |now: u64, then: u64| now.saturating_sub(then) as f64 / USER_HZ;
        let mut out = BTreeMap::new();
        for (tid, (name, ticks)) in &self.threads {
            let earlier = before.threads.get(tid).map_or(0, |(_, t)| *t);
            let party = if name.starts_with("gt-server") {
                "service"
            } else if name.starts_with("gt-client") {
                "clients"
            } else if name.starts_with("sqlx-sqlite") {
                "sqlite workers"
            } else {
                "other threads"
            };
            *out.entry(party.to_owned()).or_insert(0.0) += secs(*ticks, earlier);
        }
        if let (Some(now), Some(then)) = (self.synapse, before.synapse) {
            out.insert("synapse".into(), secs(now, then));
        }
        if let (Some(now), Some(then)) = (self.postgres, before.postgres) {
            out.insert("postgres".into(), secs(now, then));
        }
        if let (Some((busy, steal)), Some((busy0, steal0))) = (self.machine, before.machine) {
            let ours: f64 = out.values().sum();
            out.insert(
                "other processes".into(),
                (secs(busy, busy0) - ours).max(0.0),
            );
            out.insert("stolen (hypervisor)".into(), secs(steal, steal0));
        }
        out
    }
}

/// Parties that take part in an enrollment (everything but other processes
/// and stolen time).
pub(crate) fn enrollment_cpu(cpu: &BTreeMap<String, f64>) -> f64 {
    cpu.iter()
        .filter(|(k, _)| is_enrollment_party(k))
        .map(|(_, v)| v)
        .sum()
}

/// Whether the party named `name` in [`CpuSnapshot::since`] takes part in
/// an enrollment.
pub(crate) fn is_enrollment_party(name: &str) -> bool {
    !matches!(name, "other processes" | "stolen (hypervisor)")
}

/// Ticks of every process named `postgres`.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|e| stat_ticks(&e.path().join("stat")))
        .sum()
}

/// (busy, steal) ticks summed over all CPUs, from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some((busy, *v.get(7)?))
}

/// The 1-minute load average, for the record.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds process `pid` has used so far (for probes that time one
/// party, such as Synapse during the `/keys/query` probes).
pub(crate) fn process_cpu_s(pid: u32) -> Option<f64> {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat"))).map(|t| t as f64 / USER_HZ)
}

/// utime + stime from a /proc stat file.
fn stat_ticks(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name, starting with field 3.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_reads_utime_and_stime() {
        let ticks = stat_ticks(Path::new("/proc/self/stat"));
        assert!(ticks.is_some());
    }
}
