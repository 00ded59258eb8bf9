//! What a running process costs, read from /proc: context switches (wake-ups) and CPU time of
//! all its threads, and its resident memory. Shared by the benchmarks that run `lampi run`.

#![allow(dead_code)] // Each benchmark uses a different part of this module.

use std::collections::HashMap;
use std::path::Path;

/// A counter per thread of `pid`, by thread id.
pub type PerThread = HashMap<String, u64>;

fn per_thread(pid: u32, read: impl Fn(&Path) -> u64) -> PerThread {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .map(|task| (task.file_name().to_string_lossy().into_owned(), read(&task.path())))
        .collect()
}

/// Voluntary and involuntary context switches of each thread.
pub fn context_switches(pid: u32) -> PerThread {
    per_thread(pid, |task| {
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    })
}

/// CPU time of each thread in nanoseconds: the scheduler's own count, where /proc/PID/stat
/// counts 10 ms ticks (too coarse for an idle lamp).
pub fn cpu_ns(pid: u32) -> PerThread {
    per_thread(pid, |task| {
        let stat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
        stat.split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .unwrap_or(0)
    })
}

/// Each thread's name (`comm`), by thread id.
pub fn thread_names(pid: u32) -> HashMap<String, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            (task.file_name().to_string_lossy().into_owned(), name.trim().to_owned())
        })
        .collect()
}

/// The growth of a counter between two snapshots; threads that came and went (tokio's blocking
/// pool) count with what they did since the first.
pub fn growth(before: &PerThread, after: &PerThread) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Resident memory in KiB.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
