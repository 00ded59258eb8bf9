//! The swarm's own descriptor limit: one per lamp (its socket), so 10,000 lamps need more than a
//! usual soft limit of 1024.

/// Raises RLIMIT_NOFILE to at least `needed`: the soft limit up to the hard one, and the hard
/// one too (up to `/proc/sys/fs/nr_open`) when the process may (root). Returns the soft limit
/// now in force, or why it cannot be raised enough.
pub fn raise_nofile(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    if soft >= needed {
        return Ok(soft);
    }
    let target = if hard >= needed {
        libc::rlimit {
            rlim_cur: needed,
            rlim_max: hard,
        }
    } else {
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(hard);
        let raised = needed.min(ceiling);
        libc::rlimit {
            rlim_cur: raised,
            rlim_max: raised,
        }
    };
    // SAFETY: setrlimit reads the struct it is given.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &target) } == 0;
    if set && target.rlim_cur >= needed {
        return Ok(target.rlim_cur);
    }
    Err(format!(
        "need {needed} file descriptors, the limit is {soft} (hard {hard}): raise `ulimit -Hn` (or run with CAP_SYS_RESOURCE), or split the lamps over processes with --lamp-offset"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_limit_already_high_enough_is_kept() {
        let now = super::raise_nofile(1).unwrap();
        assert!(now >= 1);
        assert_eq!(super::raise_nofile(now), Ok(now));
    }
}
