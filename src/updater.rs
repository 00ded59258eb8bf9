//! Remote firmware updates, the unprivileged half: the lamp cannot install packages, so it
//! writes what it wants into `<state_dir>/update/request.json`, which the privileged
//! `lampi-update.path` unit watches, and follows the status file (by default
//! `/var/lib/lampi-update/status.json`, root-owned so the lamp cannot plant links in it) that
//! `lampi-update` (run as root by `lampi-update.service`) writes as it goes. Each request
//! carries a fresh nonce that the updater echoes in every status it writes: a status without
//! this attempt's nonce (an earlier attempt at the same version, say) is never taken for it.
//! Nothing here runs while no update is in flight.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::firmware::{FirmwareRequest, UpdateState, UpdateStatus};
use crate::lamp_task::Command;

/// Where requests go, inside the state directory (lampi-update.path watches it).
pub const REQUEST_DIR: &str = "update";
const REQUEST_FILE: &str = "request.json";
/// How often the status file is read while an update runs.
const POLL: Duration = Duration::from_secs(1);
/// An update that has not finished by then is reported as failed.
const GIVE_UP: Duration = Duration::from_secs(30 * 60);

/// One attempt, as written for lampi-update, which matches the whole body against exactly these
/// fields in this order (docs/PROTOCOL.md).
#[derive(Debug, Serialize, Deserialize)]
struct Attempt {
    version: String,
    allow_downgrade: bool,
    /// 32 lowercase hex digits.
    nonce: String,
}

/// What lampi-update writes. Fields it may add later are ignored.
#[derive(Deserialize)]
struct StatusFile {
    state: UpdateState,
    version: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Hands each request to the privileged updater and reports its progress to the lamp.
pub async fn run(
    state_dir: PathBuf,
    status_file: PathBuf,
    mut requests: mpsc::Receiver<FirmwareRequest>,
    lamp: mpsc::Sender<Command>,
    shutdown: CancellationToken,
) {
    let dir = state_dir.join(REQUEST_DIR);
    // The last attempt, once the updater has answered it: the upgrade it asked for restarts this
    // lamp while the updater may still be finishing, so it is followed to the end.
    let mut resumed = read_attempt(&dir).filter(|attempt| read_status(&status_file, &attempt.nonce).is_some());
    loop {
        let attempt = match resumed.take() {
            Some(attempt) => attempt,
            None => {
                let request = tokio::select! {
                    () = shutdown.cancelled() => return,
                    request = requests.recv() => match request {
                        Some(request) => request,
                        None => return,
                    },
                };
                match ask(&dir, &request) {
                    Ok(attempt) => attempt,
                    Err(e) => {
                        let error = format!("cannot ask the updater: {e}");
                        let _ = lamp
                            .send(Command::FirmwareStatus(failed(&request.version, error)))
                            .await;
                        continue;
                    }
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = follow(&status_file, &attempt, &lamp) => {}
        }
    }
}

fn failed(version: &str, error: String) -> UpdateStatus {
    UpdateStatus {
        state: UpdateState::Failed,
        version: version.to_owned(),
        error: Some(error),
    }
}

/// Relays the updater's answers to `attempt` until it finishes or [`GIVE_UP`] passes.
async fn follow(status_file: &Path, attempt: &Attempt, lamp: &mpsc::Sender<Command>) {
    let mut last = None;
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = read_status(status_file, &attempt.nonce)
            && last.as_ref() != Some(&status)
        {
            let finished = status.state.finished();
            last = Some(status.clone());
            let _ = lamp.send(Command::FirmwareStatus(status)).await;
            if finished {
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let error = "the updater did not finish within 30 minutes (is lampi-update.path enabled?)";
    let _ = lamp
        .send(Command::FirmwareStatus(failed(&attempt.version, error.into())))
        .await;
}

/// Writes the request for a new attempt, atomically so the updater never reads half of one.
fn ask(dir: &Path, request: &FirmwareRequest) -> io::Result<Attempt> {
    let attempt = Attempt {
        version: request.version.clone(),
        allow_downgrade: request.allow_downgrade,
        nonce: format!("{:032x}", rand::random::<u128>()),
    };
    fs::create_dir_all(dir)?;
    crate::store::write_atomic(&dir.join(REQUEST_FILE), &serde_json::to_vec(&attempt)?)?;
    tracing::info!(version = %attempt.version, nonce = %attempt.nonce, "firmware update requested");
    Ok(attempt)
}

fn read_attempt(dir: &Path) -> Option<Attempt> {
    serde_json::from_slice(&fs::read(dir.join(REQUEST_FILE)).ok()?).ok()
}

/// The updater's status, if it answers the attempt with this nonce.
fn read_status(file: &Path, nonce: &str) -> Option<UpdateStatus> {
    let bytes = fs::read(file).ok()?;
    let status: StatusFile = serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!("unreadable firmware update status: {e}"))
        .ok()?;
    (status.nonce.as_deref() == Some(nonce)).then_some(UpdateStatus {
        state: status.state,
        version: status.version,
        error: status.error,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::*;
    use crate::core::firmware::Version;

    const NONCE: &str = "00112233445566778899aabbccddeeff";

    fn request(version: &str) -> FirmwareRequest {
        FirmwareRequest {
            version: version.into(),
            allow_downgrade: false,
        }
    }

    fn write_status(dir: &Path, status: Value) {
        fs::write(dir.join("status.json"), status.to_string()).unwrap();
    }

    async fn relayed(commands: &mut mpsc::Receiver<Command>) -> UpdateStatus {
        match commands.recv().await {
            Some(Command::FirmwareStatus(status)) => status,
            _ => panic!("no status relayed"),
        }
    }

    fn start(
        state: &Path,
    ) -> (
        mpsc::Sender<FirmwareRequest>,
        mpsc::Receiver<Command>,
        CancellationToken,
    ) {
        let (requests_tx, requests) = mpsc::channel(1);
        let (lamp, commands) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let status = state.join("status.json");
        tokio::spawn(run(state.to_owned(), status, requests, lamp, shutdown.clone()));
        (requests_tx, commands, shutdown)
    }

    #[tokio::test(start_paused = true)]
    async fn relays_the_progress_of_this_attempt_only_until_it_finishes() {
        let state = tempfile::tempdir().unwrap();
        let (requests, mut commands, shutdown) = start(state.path());
        // An earlier attempt at the same version failed; its status is still there.
        write_status(
            state.path(),
            json!({"state": "failed", "version": "0.2.0", "nonce": NONCE, "error": "x"}),
        );
        requests.send(request("0.2.0")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let written = fs::read_to_string(state.path().join("update/request.json")).unwrap();
        let attempt: Attempt = serde_json::from_str(&written).unwrap();
        assert_eq!(
            written,
            format!(
                r#"{{"version":"0.2.0","allow_downgrade":false,"nonce":"{}"}}"#,
                attempt.nonce
            )
        );
        assert!(
            attempt.nonce.len() == 32
                && attempt
                    .nonce
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(attempt.nonce, NONCE);

        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            commands.try_recv().is_err(),
            "an earlier attempt's status was taken for this one"
        );
        let nonce = attempt.nonce.as_str();
        write_status(
            state.path(),
            json!({"state": "downloading", "version": "0.2.0", "nonce": nonce}),
        );
        assert_eq!(relayed(&mut commands).await.state, UpdateState::Downloading);
        write_status(
            state.path(),
            json!({"state": "succeeded", "version": "0.2.0", "nonce": nonce}),
        );
        assert_eq!(relayed(&mut commands).await.state, UpdateState::Succeeded);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_updater_that_never_answers_is_reported_as_failed() {
        let state = tempfile::tempdir().unwrap();
        let (requests, mut commands, _shutdown) = start(state.path());
        requests.send(request("0.2.0")).await.unwrap();
        let status = relayed(&mut commands).await;
        assert_eq!(status.state, UpdateState::Failed);
        assert!(status.error.unwrap().contains("lampi-update.path"));
    }

    fn earlier_attempt(state: &Path) {
        fs::create_dir_all(state.join(REQUEST_DIR)).unwrap();
        let body = json!({"version": "0.2.0", "allow_downgrade": false, "nonce": NONCE});
        fs::write(state.join(REQUEST_DIR).join(REQUEST_FILE), body.to_string()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_lamp_follows_the_attempt_the_updater_is_finishing() {
        let state = tempfile::tempdir().unwrap();
        earlier_attempt(state.path());
        write_status(
            state.path(),
            json!({"state": "installing", "version": "0.2.0", "nonce": NONCE}),
        );
        let (_requests, mut commands, shutdown) = start(state.path());
        assert_eq!(relayed(&mut commands).await.state, UpdateState::Installing);
        write_status(
            state.path(),
            json!({"state": "succeeded", "version": "0.2.0", "nonce": NONCE}),
        );
        assert_eq!(relayed(&mut commands).await.state, UpdateState::Succeeded);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_lamp_ignores_a_status_that_answers_another_request() {
        let state = tempfile::tempdir().unwrap();
        earlier_attempt(state.path());
        let older = "ffeeddccbbaa99887766554433221100";
        write_status(
            state.path(),
            json!({"state": "failed", "version": "0.2.0", "nonce": older, "error": "x"}),
        );
        let (_requests, mut commands, shutdown) = start(state.path());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(commands.try_recv().is_err(), "a status for another request was relayed");
        shutdown.cancel();
    }

    /// debian/lampi-update run directly against temporary files, with apt-get replaced by a
    /// stub that logs its arguments and fails with an awkward message: nothing can be installed.
    struct Updater {
        dir: tempfile::TempDir,
    }

    impl Updater {
        fn new() -> Updater {
            let dir = tempfile::tempdir().unwrap();
            for sub in ["request", "status", "sources", "bin"] {
                fs::create_dir(dir.path().join(sub)).unwrap();
            }
            fs::write(dir.path().join("sources/lampi.sources"), "Types: deb\n").unwrap();
            let stub = dir.path().join("bin/apt-get");
            // Quotes where a cut made after escaping would split `\"` in two.
            let script = r#"#!/bin/sh
echo "$*" >> "$APT_CALLS"
printf '"\\\t\303\251%0369d""""""""""\n' 0
exit 100
"#;
            fs::write(&stub, script).unwrap();
            fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            Updater { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn request(&self) -> PathBuf {
            self.path("request/request.json")
        }

        /// Runs lampi-update; returns whether it succeeded and the status it left.
        fn run(&self) -> (bool, Value) {
            let path = format!(
                "{}:{}",
                self.path("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let mut child = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/debian/lampi-update"))
                .env("PATH", path)
                .env("LAMPI_UPDATE_REQUEST", self.request())
                .env("LAMPI_UPDATE_STATUS_DIR", self.path("status"))
                .env("LAMPI_UPDATE_SOURCES_DIR", self.path("sources"))
                .env("LAMPI_UPDATE_RETRY_PAUSE", "0")
                .env("APT_CALLS", self.path("apt-calls"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            let exit = loop {
                if let Some(exit) = child.try_wait().unwrap() {
                    break exit;
                }
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("lampi-update blocked on its request");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let status = fs::read_to_string(self.path("status/status.json")).unwrap();
            (exit.success(), serde_json::from_str(&status).unwrap())
        }

        fn apt_calls(&self) -> String {
            fs::read_to_string(self.path("apt-calls")).unwrap_or_default()
        }

        /// Runs it on a request it must refuse before apt: returns the reason.
        fn refused(&self) -> String {
            let (succeeded, status) = self.run();
            assert!(!succeeded);
            assert_eq!(status["state"], json!("failed"));
            assert_eq!(self.apt_calls(), "", "apt ran for a refused request");
            status["error"].as_str().unwrap().to_owned()
        }
    }

    /// postinst records this floor and lampi-update refuses to go below it: above this very
    /// version, the package would refuse to reinstall itself.
    #[test]
    fn the_shipped_downgrade_floor_is_one_version_no_later_than_this_one() {
        let file = include_str!("../debian/downgrade-floor");
        let floor = Version::parse(file.trim_end()).expect("debian/downgrade-floor: major.minor.patch");
        assert_eq!(file, format!("{}\n", file.trim_end()), "one line");
        assert!(floor <= Version::parse(env!("CARGO_PKG_VERSION")).unwrap());
    }

    const VALID: &str = r#"{"version":"0.2.0","allow_downgrade":false,"nonce":"00112233445566778899aabbccddeeff"}"#;

    #[test]
    fn the_updater_opens_nothing_but_one_regular_file_and_never_blocks() {
        let updater = Updater::new();
        let status = std::process::Command::new("mkfifo")
            .arg(updater.request())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(updater.refused().contains("not a regular file"));

        fs::remove_file(updater.request()).unwrap();
        fs::write(updater.path("request/elsewhere"), VALID).unwrap();
        std::os::unix::fs::symlink("elsewhere", updater.request()).unwrap();
        assert!(updater.refused().contains("cannot open the request"));

        fs::remove_file(updater.request()).unwrap();
        fs::create_dir(updater.request()).unwrap();
        assert!(updater.refused().contains("not a regular file"));
    }

    #[test]
    fn the_updater_takes_only_the_exact_body() {
        let updater = Updater::new();
        let padded = format!("{VALID}{}", " ".repeat(200));
        let bodies = [
            format!("{VALID}\n"),
            format!("{{}}\n{VALID}"),
            VALID.replace("false", "true}\n{\"allow_downgrade\":false"),
            VALID.replace(r#","nonce":"00112233445566778899aabbccddeeff""#, ""),
            VALID.replace("aabb", "AABB"),
            padded,
        ];
        for body in bodies {
            fs::write(updater.request(), &body).unwrap();
            let reason = updater.refused();
            assert!(
                reason.contains("not a version this updater accepts") || reason.contains("over 256 bytes"),
                "{body}: {reason}"
            );
        }
    }

    #[test]
    fn the_updater_installs_nothing_below_the_downgrade_floor() {
        let updater = Updater::new();
        fs::write(updater.path("status/downgrade-floor"), "0.3.0\n").unwrap();
        fs::write(updater.request(), VALID.replace("false", "true")).unwrap();
        let reason = updater.refused();
        assert!(reason.contains("downgrade floor 0.3.0"), "{reason}");
        // The floor itself is allowed.
        fs::write(updater.request(), VALID.replace("0.2.0", "0.3.0")).unwrap();
        updater.run();
        assert!(updater.apt_calls().starts_with("-q -o DPkg::Lock::Timeout="));
    }

    #[test]
    fn the_lamps_request_passes_the_updater_and_the_answer_carries_its_nonce() {
        let updater = Updater::new();
        let attempt = ask(&updater.path("request"), &request("0.2.0")).unwrap();
        let (succeeded, status) = updater.run();
        assert!(!succeeded);
        // apt-get's message, with a quote, a backslash, a tab and non-ASCII, is still JSON.
        let error = status["error"].as_str().unwrap();
        assert!(error.starts_with(r#"apt-get update failed: "\ "#), "{error}");
        assert!(error.len() <= 400);
        let file = updater.path("status/status.json");
        let answer = read_status(&file, &attempt.nonce).expect("the answer to this attempt");
        assert_eq!((answer.state, answer.version.as_str()), (UpdateState::Failed, "0.2.0"));
        assert_eq!(read_status(&file, NONCE), None);
        // apt waits for the dpkg lock, tries three times, and reads lampi's deb822 source only.
        let calls = updater.apt_calls();
        assert_eq!(calls.lines().count(), 3, "{calls}");
        let sources = updater.path("sources/lampi.sources");
        assert!(
            calls.contains(&format!("-o Dir::Etc::sourcelist={} ", sources.display())),
            "{calls}"
        );
    }
}
