//! The lamp's state on disk: atomic, coalesced writes and a load that never refuses to start.
//!
//! Power can fail at any instant, so a write goes to a temporary file that is fsynced, renamed
//! over the old one, and the directory fsynced: after a crash the file is either the old or
//! the new state, never a mix. Writes are coalesced so a slider drag costs at most one write
//! a second, and the newest state is always on disk within a second and at shutdown.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::core::alarm::AlarmMemory;
use crate::core::device::Memory;
use crate::core::firmware::UpdateStatus;
use crate::core::light::LightState;
use crate::core::pairing::Owner;
use crate::core::shadow::Shadow;
use crate::lamp_task::Saved;

const STATE_FILE: &str = "state.json";
/// Version of the file's layout, so a later firmware can migrate instead of guessing.
/// Formats 1 (light only) and 2 (no alarm clock) are still read.
/// A change an older lampi cannot read (0.1.0 refuses any unknown field) must also raise
/// `debian/downgrade-floor` to the first version that writes it: lampi-update never
/// downgrades a lamp below that floor, so the state is never lost to a downgrade.
const FORMAT: u32 = 3;
/// Longest a change waits before it is on disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    light: LightState,
    #[serde(default)]
    shadow: Shadow,
    #[serde(default)]
    alarm_clock: AlarmMemory,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    firmware_update: Option<UpdateStatus>,
}

fn defaults() -> Saved {
    Saved {
        light: LightState::default(),
        shadow: Arc::default(),
        memory: Memory::default(),
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state, or defaults when there is none. A file that cannot be read or parsed is
    /// moved aside (kept for a post-mortem) and the lamp starts with defaults.
    pub fn load(&self) -> Saved {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no saved state; starting with defaults");
                return defaults();
            }
            Err(e) => {
                self.quarantine(&path, &format!("cannot read it: {e}"));
                return defaults();
            }
        };
        match serde_json::from_slice::<StateFile>(&bytes) {
            Ok(file) if (1..=FORMAT).contains(&file.format) => Saved {
                light: file.light,
                shadow: Arc::new(file.shadow),
                memory: Memory {
                    alarm_clock: file.alarm_clock,
                    owner: file.owner,
                    firmware_update: file.firmware_update,
                },
            },
            Ok(file) => {
                self.quarantine(&path, &format!("unknown format {}", file.format));
                defaults()
            }
            Err(e) => {
                self.quarantine(&path, &format!("it is not a valid state file: {e}"));
                defaults()
            }
        }
    }

    fn quarantine(&self, path: &Path, reason: &str) {
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{stamp}"));
        match fs::rename(path, &aside) {
            Ok(()) => tracing::error!(
                path = %path.display(), moved_to = %aside.display(),
                "saved state discarded, {reason}; starting with defaults"
            ),
            Err(e) => tracing::error!(
                path = %path.display(),
                "saved state discarded, {reason}; could not move it aside ({e}); starting with defaults"
            ),
        }
    }

    /// Atomically replaces the saved state.
    pub fn save(&self, saved: &Saved) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(&StateFile {
            format: FORMAT,
            light: saved.light,
            shadow: Shadow::clone(&saved.shadow),
            alarm_clock: saved.memory.alarm_clock.clone(),
            owner: saved.memory.owner.clone(),
            firmware_update: saved.memory.firmware_update.clone(),
        })?;
        write_atomic(&self.path(), &bytes)
    }
}

/// Replaces `path` with `bytes` so that after a power cut it holds either the old or the new
/// contents: a fsynced temporary file renamed over it, and the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Writes the lamp's state whenever it changes, at most once per [`FLUSH_INTERVAL`], until the
/// lamp task ends (its watch sender is dropped); then writes whatever is still unsaved.
pub async fn persist(store: Store, mut changes: watch::Receiver<Saved>) {
    let mut saved = changes.borrow_and_update().clone();
    loop {
        let lamp_running = changes.changed().await.is_ok();
        let latest = changes.borrow_and_update().clone();
        if latest != saved {
            let writer = store.clone();
            let to_write = latest.clone();
            let result = tokio::task::spawn_blocking(move || writer.save(&to_write)).await;
            match result {
                Ok(Ok(())) => saved = latest,
                Ok(Err(e)) => {
                    tracing::error!(path = %store.path().display(), "saving state failed: {e}")
                }
                Err(e) => tracing::error!("saving state panicked: {e}"),
            }
        }
        if !lamp_running {
            return;
        }
        tokio::time::sleep(FLUSH_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::firmware::UpdateState;
    use crate::core::light::Unit;

    fn dim() -> Saved {
        let mut shadow = Shadow::default();
        shadow.reported.insert("mode".into(), serde_json::json!("manual"));
        shadow.version = 3;
        shadow.exists = true;
        Saved {
            light: LightState {
                on: false,
                hue: Unit::try_from(0.25).unwrap(),
                saturation: Unit::try_from(0.5).unwrap(),
                brightness: Unit::try_from(0.125).unwrap(),
            },
            shadow: Arc::new(shadow),
            memory: Memory {
                alarm_clock: AlarmMemory {
                    settled: [("wake".to_owned(), 1_795_000_000)].into(),
                    active: None,
                },
                owner: Some(Owner {
                    id: "alice".into(),
                    name: "Alice".into(),
                }),
                firmware_update: Some(UpdateStatus {
                    state: UpdateState::Failed,
                    version: "9.9.9".into(),
                    error: Some("not found".into()),
                }),
            },
        }
    }

    #[test]
    fn round_trips_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("nested"));
        assert_eq!(store.load(), defaults());
        store.save(&dim()).unwrap();
        assert_eq!(store.load(), dim());
        assert!(!dir.path().join("nested/state.json.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_moved_aside_and_defaults_used() {
        for garbage in [
            &b"{\"format\":1,\"light\":{\"on\":tr"[..],
            b"",
            b"\xff\xfe",
            br#"{"format":1,"light":{"on":true,"hue":7,"saturation":0,"brightness":1}}"#,
            br#"{"format":99,"light":{"on":true,"hue":0,"saturation":0,"brightness":1}}"#,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::new(dir.path());
            fs::write(store.path(), garbage).unwrap();
            assert_eq!(store.load(), defaults());
            assert!(!store.path().exists());
            let moved: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(moved.len(), 1);
            assert!(moved[0].to_string_lossy().starts_with("state.json.corrupt-"));
            // The next save works and is what the next start sees.
            store.save(&dim()).unwrap();
            assert_eq!(store.load(), dim());
        }
    }

    #[test]
    fn reads_format_1_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::write(
            store.path(),
            br#"{"format":1,"light":{"on":false,"hue":0.5,"saturation":1.0,"brightness":0.25}}"#,
        )
        .unwrap();
        let saved = store.load();
        assert_eq!(saved.light.brightness.get(), 0.25);
        assert_eq!(*saved.shadow, Shadow::default());
    }

    #[test]
    fn unreadable_state_dir_still_starts_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let store = Store::new(&file);
        assert_eq!(store.load(), defaults());
        assert!(store.save(&dim()).is_err());
    }
}
