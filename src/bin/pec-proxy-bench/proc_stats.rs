//! The target's CPU time and RSS, read from `/proc`, summed over its
//! processes (nginx runs a master and workers).

use std::io;

/// Linux reports `utime`/`stime` in USER_HZ, which is 100 on every
/// architecture's /proc ABI.
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of the target's processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

impl ProcSample {
    pub fn read(pids: &[u32]) -> io::Result<ProcSample> {
        let mut sample = ProcSample::default();
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
            // The command name may hold spaces and parentheses: fields start after the last ')'.
            let rest = stat
                .rsplit_once(')')
                .map(|(_, r)| r)
                .ok_or_else(|| io::Error::other("bad /proc stat"))?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
            let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
            sample.cpu_ticks += num(11) + num(12);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            sample.rss_kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(sample)
    }

    /// CPU seconds between `self` (earlier) and `later`.
    pub fn cpu_secs_until(&self, later: &ProcSample) -> f64 {
        later.cpu_ticks.saturating_sub(self.cpu_ticks) as f64 / TICKS_PER_SEC
    }
}

/// Samples when pids were given, nothing otherwise.
pub fn sample(pids: &[u32]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    match ProcSample::read(pids) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("cannot read /proc for {pids:?}: {e}");
            None
        }
    }
}
