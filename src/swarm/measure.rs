//! The swarm process's own cost, from /proc: CPU time and resident memory, so a report shows
//! when the load generator rather than the broker is the limit, and the wall clock reports are
//! stamped with.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch: reports from several machines line up on it.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// CPU time (user + system) of this process, in seconds.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name is in parentheses and may hold spaces: count fields after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

/// A `kB` line of /proc/self/status (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Resident memory now.
pub fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// The most resident memory so far.
pub fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_cost() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0);
        }
        assert!(super::cpu_seconds() > 0.0);
        assert!(super::rss_bytes() > 0);
        assert!(super::peak_rss_bytes() >= super::rss_bytes() / 2);
    }
}
