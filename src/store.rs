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

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::core::alarm::AlarmMemory;
use crate::core::firmware::UpdateStatus;
use crate::core::lamp::{Memory, Saved};
use crate::core::light::LightState;
use crate::core::pairing::Owner;
use crate::core::shadow::Shadow;

const STATE_FILE: &str = "state.json";
/// Version of the file's meaning, so a later firmware can migrate instead of guessing.
/// Formats 1 (light only) and 2 (no alarm clock) are still read.
///
/// The rule: reading is forward-compatible, so a field added at the top level (with a default
/// that is right when it is missing, as `owner` and `firmware_update` were) keeps this format:
/// an older firmware ignores it and keeps everything it knows. The format goes up only when the
/// meaning of what an older firmware reads changes (a field renamed, retyped or reinterpreted).
/// The same holds inside `light`, `shadow`, `alarm_clock`, `owner` and `firmware_update`: their
/// types ignore unknown fields too, and a field added there needs a default that is right when
/// it is missing. A firmware leaves a file of a newer format untouched and never
/// saves over it: after a downgrade across a format bump the lamp runs on defaults, and the
/// newer firmware finds its file intact when it is reinstalled.
///
/// Downgrade floor: `lampi-update` never installs a version below `debian/downgrade-floor`
/// (see the README), so a downgrade never loses the state. Format 3 is read by every release
/// from 0.1.0, but 0.1.0 refuses unknown fields: the first field added to format 3, anywhere,
/// must raise the floor to the first release with this forward-compatible reader, and bumping
/// FORMAT raises it to the release that introduces the new format.
const FORMAT: u32 = 3;
/// Longest a change waits before it is on disk.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Reads of a state file that exists but cannot be read (EIO, EMFILE, ...) are retried this
/// often, with doubling pauses from [`FIRST_RETRY`], before the lamp starts without it.
const READ_ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Unknown fields are ignored, not refused: they are a newer firmware's (see [`FORMAT`]).
#[derive(Serialize, Deserialize)]
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

/// Only the format, read first so that a newer format is recognised whatever its fields mean.
#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
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
    /// `fs::read`; the tests make it fail.
    read: fn(&Path) -> io::Result<Vec<u8>>,
    /// Set by a load that could not use the file yet must not discard it (it could not be read,
    /// or its format is newer): why saving over it is refused.
    keep_file: Arc<OnceLock<String>>,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store {
            dir: dir.into(),
            read: |path| fs::read(path),
            keep_file: Arc::default(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state, or defaults when there is none. Only a file that does not parse is
    /// moved aside (kept for a post-mortem). A file that cannot be read after retries, or is of
    /// a newer format, is left as it is and never saved over; the lamp runs with defaults.
    pub fn load(&self) -> Saved {
        let path = self.path();
        let bytes = match self.read_with_retries(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                tracing::info!(path = %path.display(), "no saved state; starting with defaults");
                return defaults();
            }
            Err(e) => {
                self.keep(&path, format!("it cannot be read ({e})"));
                return defaults();
            }
        };
        match serde_json::from_slice::<FormatOnly>(&bytes) {
            Ok(FormatOnly { format }) if format > FORMAT => {
                self.keep(
                    &path,
                    format!("its format {format} is newer than this firmware's ({FORMAT})"),
                );
                return defaults();
            }
            Ok(FormatOnly { format: 0 }) => {
                self.quarantine(&path, "unknown format 0");
                return defaults();
            }
            _ => {}
        }
        match serde_json::from_slice::<StateFile>(&bytes) {
            Ok(file) => Saved {
                light: file.light,
                shadow: Arc::new(file.shadow),
                memory: Memory {
                    alarm_clock: file.alarm_clock,
                    owner: file.owner,
                    firmware_update: file.firmware_update,
                },
            },
            Err(e) => {
                self.quarantine(&path, &format!("it is not a valid state file: {e}"));
                defaults()
            }
        }
    }

    /// The file's bytes, `None` when there is none. A failed read is retried: it may pass
    /// (EMFILE, EINTR-like hiccups, a slow SD card), and a file that could not be read is no
    /// evidence of corruption.
    fn read_with_retries(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let mut pause = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            match (self.read)(path) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if attempt == READ_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(path = %path.display(), attempt, "reading saved state failed, retrying: {e}");
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn keep(&self, path: &Path, reason: String) {
        tracing::error!(
            path = %path.display(),
            "saved state not used, {reason}; starting with defaults, and the file is kept as it is (nothing is saved over it)"
        );
        let _ = self.keep_file.set(reason);
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

    /// Atomically replaces the saved state, unless the load left the file to be kept.
    pub fn save(&self, saved: &Saved) -> io::Result<()> {
        if let Some(reason) = self.keep_file.get() {
            return Err(io::Error::other(format!(
                "not saving: the state file found at start is kept as it is ({reason})"
            )));
        }
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
    // A bare file name's parent is "", which cannot be opened to sync.
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
            br#"{"format":0,"light":{"on":true,"hue":0,"saturation":0,"brightness":1}}"#,
            br#"{"light":{"on":true,"hue":0,"saturation":0,"brightness":1}}"#,
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

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_from_a_newer_firmware_of_the_same_format_keeps_owner_and_alarms() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&dim()).unwrap();
        let mut file: serde_json::Value = serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        file["screen"] = serde_json::json!({"brightness": 0.5, "theme": "dark"});
        file["ble_bonds"] = serde_json::json!(["aa:bb"]);
        for section in ["light", "shadow", "alarm_clock", "owner", "firmware_update"] {
            file[section]["added_later"] = serde_json::json!({"any": ["shape"]});
        }
        file["shadow"]["metadata"]["added_later"] = serde_json::json!(1);
        fs::write(store.path(), serde_json::to_vec(&file).unwrap()).unwrap();

        let saved = Store::new(dir.path()).load();
        assert_eq!(saved, dim());
        assert_eq!(saved.memory.owner.unwrap().id, "alice");
        assert_eq!(files_in(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_newer_format_is_left_as_it_is_and_never_saved_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let future = br#"{"format":4,"light":"meaning changed","alarms":[1,2]}"#;
        fs::write(store.path(), future).unwrap();
        assert_eq!(store.load(), defaults());
        let err = store.save(&dim()).unwrap_err();
        assert!(err.to_string().contains("format 4"), "{err}");
        assert_eq!(fs::read(store.path()).unwrap(), future);
        assert_eq!(files_in(dir.path()), ["state.json"]);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_never_moved_aside_nor_saved_over() {
        // A directory where the file should be: every read fails (EISDIR), as a failing SD
        // card's EIO would; the test runs as root, so permission bits would not stop a read.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        fs::create_dir(store.path()).unwrap();
        fs::write(store.path().join("inside"), b"kept").unwrap();
        assert_eq!(store.load(), defaults());
        assert_eq!(files_in(dir.path()), ["state.json"]);
        assert!(store.save(&dim()).is_err());
        assert_eq!(fs::read(store.path().join("inside")).unwrap(), b"kept");
    }

    thread_local! {
        static FAILURES_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// Fails with EMFILE as often as `FAILURES_LEFT` says, then reads.
    fn flaky_read(path: &Path) -> io::Result<Vec<u8>> {
        if FAILURES_LEFT.get() > 0 {
            FAILURES_LEFT.set(FAILURES_LEFT.get() - 1);
            return Err(io::Error::from_raw_os_error(24));
        }
        fs::read(path)
    }

    #[test]
    fn a_transient_read_error_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        Store::new(dir.path()).save(&dim()).unwrap();
        let store = Store {
            read: flaky_read,
            ..Store::new(dir.path())
        };
        FAILURES_LEFT.set(READ_ATTEMPTS - 1);
        assert_eq!(store.load(), dim());
        store.save(&dim()).unwrap();

        // Failing every time: defaults, and the file as it was.
        let before = fs::read(store.path()).unwrap();
        let store = Store {
            read: flaky_read,
            ..Store::new(dir.path())
        };
        FAILURES_LEFT.set(READ_ATTEMPTS);
        assert_eq!(store.load(), defaults());
        assert!(store.save(&defaults()).is_err());
        assert_eq!(fs::read(store.path()).unwrap(), before);
        assert_eq!(files_in(dir.path()), ["state.json"]);
    }
}
