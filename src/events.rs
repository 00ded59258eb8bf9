//! Usage analytics: an event for every power switch and colour change, with its source,
//! published with QoS 1 on `lampi/<device id>/events`. While the broker is unreachable events
//! wait in a spool file in the state directory, bounded (oldest dropped first, and counted),
//! so a lamp offline for a week neither loses the recent past nor fills its SD card.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{Value, json};

/// Events kept while offline; about 150 bytes each.
pub const MAX_SPOOLED: usize = 1000;
const SPOOL_FILE: &str = "events.spool";

/// The event that says how many were lost.
pub fn dropped_event(count: u64, timestamp: u64) -> Value {
    json!({"type": "dropped", "count": count, "timestamp": timestamp})
}

/// A message the lamp did not send because it was larger than an MQTT packet may be.
pub fn oversize_event(topic: &str, bytes: usize, limit: usize, timestamp: u64) -> Value {
    json!({"type": "message_too_large", "topic": topic, "bytes": bytes, "limit": limit, "timestamp": timestamp})
}

/// A command or request that arrived retained, which the lamp ignored: the broker would replay
/// it at every reconnect.
pub fn retained_event(topic: &str, timestamp: u64) -> Value {
    json!({"type": "retained_ignored", "topic": topic, "timestamp": timestamp})
}

/// Events waiting for the broker, mirrored in an append-only file. [`Spool::push`] works in
/// memory; [`Spool::flush`] writes a whole batch at once.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    events: VecDeque<String>,
    /// Events dropped (oldest first) since the last drain, to be reported with it.
    dropped: u64,
    /// How many of the newest events are not in the file yet; `None` when the file must be
    /// rewritten because old events were dropped.
    unwritten: Option<usize>,
}

impl Spool {
    /// Opens the spool in `dir`, keeping what an earlier run left. A line torn by a power cut
    /// (or not UTF-8, or not JSON) is skipped, and the file is then rewritten without it, so
    /// the next append does not continue the torn line.
    pub fn open(dir: impl Into<PathBuf>) -> Spool {
        let path = dir.into().join(SPOOL_FILE);
        let bytes = fs::read(&path).unwrap_or_default();
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()).collect();
        let mut events: VecDeque<String> = lines
            .iter()
            .filter(|line| serde_json::from_slice::<Value>(line).is_ok())
            .filter_map(|line| String::from_utf8(line.to_vec()).ok())
            .collect();
        let clean = events.len() == lines.len() && bytes.last().is_none_or(|&b| b == b'\n');
        let mut dropped = 0;
        while events.len() > MAX_SPOOLED {
            events.pop_front();
            dropped += 1;
        }
        let mut spool = Spool {
            path,
            events,
            dropped,
            unwritten: None,
        };
        if clean && dropped == 0 {
            spool.unwritten = Some(0);
        } else if let Err(e) = spool.flush() {
            // The flush after the next push tries again: `unwritten` is still `None`.
            tracing::warn!(path = %spool.path.display(), "rewriting the events spool failed: {e}");
        }
        spool
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Keeps an event for later (in memory until [`Spool::flush`]); past [`MAX_SPOOLED`] the
    /// oldest goes.
    pub fn push(&mut self, event: &Value) {
        self.events.push_back(event.to_string());
        self.unwritten = self.unwritten.map(|n| n + 1);
        if self.events.len() > MAX_SPOOLED {
            self.events.pop_front();
            self.dropped += 1;
            self.unwritten = None;
        }
    }

    /// Puts what was pushed since the last flush on disk.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.unwritten {
            Some(0) => Ok(()),
            Some(n) => {
                let mut batch = String::new();
                for event in self.events.iter().skip(self.events.len() - n) {
                    batch.push_str(event);
                    batch.push('\n');
                }
                let mut file = OpenOptions::new().create(true).append(true).open(&self.path)?;
                file.write_all(batch.as_bytes())?;
                self.unwritten = Some(0);
                Ok(())
            }
            None => {
                self.rewrite()?;
                self.unwritten = Some(0);
                Ok(())
            }
        }
    }

    /// Everything spooled, oldest first, preceded by a `dropped` event when some were lost;
    /// the spool is then empty.
    pub fn drain(&mut self, timestamp: u64) -> io::Result<Vec<String>> {
        let mut out = Vec::with_capacity(self.events.len() + 1);
        if self.dropped > 0 {
            out.push(dropped_event(self.dropped, timestamp).to_string());
            self.dropped = 0;
        }
        out.extend(self.events.drain(..));
        self.unwritten = Some(0);
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(out)
    }

    /// Replaces the file with the events in memory, atomically.
    fn rewrite(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("spool.tmp");
        let mut file = File::create(&tmp)?;
        for event in &self.events {
            writeln!(file, "{event}")?;
        }
        file.sync_all()?;
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_survives_restarts_and_torn_lines_and_drops_oldest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path());
        for i in 0..MAX_SPOOLED + 5 {
            spool.push(&json!({"n": i}));
            if i % 100 == 0 {
                spool.flush().unwrap();
            }
        }
        spool.flush().unwrap();
        assert_eq!(spool.len(), MAX_SPOOLED);
        // A power cut in the middle of an append.
        let path = dir.path().join(SPOOL_FILE);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"n\": 99")
            .unwrap();
        let mut reopened = Spool::open(dir.path());
        assert_eq!(reopened.len(), MAX_SPOOLED);
        let drained = reopened.drain(9).unwrap();
        assert_eq!(
            drained.len(),
            MAX_SPOOLED,
            "the dropped count is not kept across restarts"
        );
        assert_eq!(drained[0], json!({"n": 5}).to_string());
        assert!(!path.exists());

        let mut spool = Spool::open(dir.path());
        for i in 0..MAX_SPOOLED + 2 {
            spool.push(&json!({"n": i}));
        }

        let drained = spool.drain(10).unwrap();
        assert_eq!(
            drained[0],
            json!({"type": "dropped", "count": 2, "timestamp": 10}).to_string()
        );
        assert_eq!(drained.len(), MAX_SPOOLED + 1);
        assert!(spool.is_empty());
    }

    #[test]
    fn events_after_a_torn_line_survive() {
        // Appends cut short by a power cut: mid-way through a field, and mid-way through a
        // multibyte character (so the file is not even UTF-8).
        let multibyte = "{\"label\":\"\u{e9}".as_bytes();
        for torn in [&b"{\"n\":9"[..], &multibyte[..multibyte.len() - 1]] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(SPOOL_FILE);
            fs::write(&path, [&b"{\"n\":0}\n{\"n\":1}\n"[..], torn].concat()).unwrap();
            let mut spool = Spool::open(dir.path());
            assert_eq!(spool.len(), 2);
            for n in 2..5 {
                spool.push(&json!({"n": n}));
                spool.flush().unwrap();
            }
            let text = fs::read_to_string(&path).unwrap();
            let events: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
            assert_eq!(events, (0..5).map(|n| json!({"n": n})).collect::<Vec<_>>());
            assert_eq!(Spool::open(dir.path()).drain(0).unwrap().len(), 5);
        }
    }
}
