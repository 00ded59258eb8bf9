//! Remote firmware updates, the unprivileged half: the lamp cannot install packages, so it
//! writes what it wants into `<state_dir>/update/request.json`, which the privileged
//! `lampi-update.path` unit watches, and follows the status file (by default
//! `/var/lib/lampi-update/status.json`, root-owned so the lamp cannot plant links in it) that
//! `lampi-update` (run as root by `lampi-update.service`) writes as it goes. Nothing here runs
//! while no update is in flight.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Hands each request to the privileged updater and reports its progress to the lamp.
pub async fn run(
    state_dir: PathBuf,
    status_file: PathBuf,
    mut requests: mpsc::Receiver<FirmwareRequest>,
    lamp: mpsc::Sender<Command>,
    shutdown: CancellationToken,
) {
    let dir = state_dir.join(REQUEST_DIR);
    // What the updater last said: after an upgrade it restarted this lamp, which reports it.
    if let Some(status) = read_status(&status_file) {
        let _ = lamp.send(Command::FirmwareStatus(status)).await;
    }
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return,
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = follow(&dir, &status_file, &request, &lamp) => {}
        }
    }
}

async fn follow(dir: &Path, status_file: &Path, request: &FirmwareRequest, lamp: &mpsc::Sender<Command>) {
    let failed = |error: String| UpdateStatus {
        state: UpdateState::Failed,
        version: request.version.clone(),
        error: Some(error),
    };
    if let Err(e) = write_request(dir, request) {
        let _ = lamp
            .send(Command::FirmwareStatus(failed(format!("cannot ask the updater: {e}"))))
            .await;
        return;
    }
    tracing::info!(version = %request.version, "firmware update requested");
    let mut last = None;
    let deadline = tokio::time::Instant::now() + GIVE_UP;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        let Some(status) = read_status(status_file).filter(|s| s.version == request.version) else {
            continue;
        };
        if last.as_ref() == Some(&status) {
            continue;
        }
        let finished = status.state.finished();
        last = Some(status.clone());
        let _ = lamp.send(Command::FirmwareStatus(status)).await;
        if finished {
            return;
        }
    }
    let error = "the updater did not finish within 30 minutes (is lampi-update.path enabled?)";
    let _ = lamp.send(Command::FirmwareStatus(failed(error.into()))).await;
}

/// Atomically, so the updater never reads half a request.
fn write_request(dir: &Path, request: &FirmwareRequest) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{REQUEST_FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(request)?)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(REQUEST_FILE))
}

fn read_status(file: &Path) -> Option<UpdateStatus> {
    let bytes = fs::read(file).ok()?;
    serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!("unreadable firmware update status: {e}"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: &str) -> FirmwareRequest {
        FirmwareRequest {
            version: version.into(),
            allow_downgrade: false,
        }
    }

    fn write_status(dir: &Path, status: &str) {
        fs::write(dir.join("status.json"), status).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn writes_the_request_and_relays_progress_until_it_finishes() {
        let state = tempfile::tempdir().unwrap();
        let (requests_tx, requests) = mpsc::channel(1);
        let (lamp, mut commands) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let status = state.path().join("status.json");
        tokio::spawn(run(state.path().to_owned(), status, requests, lamp, shutdown.clone()));
        requests_tx.send(request("0.2.0")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let written = fs::read_to_string(state.path().join("update/request.json")).unwrap();
        assert_eq!(written, r#"{"version":"0.2.0","allow_downgrade":false}"#);

        // A status for another version is not this update's.
        write_status(state.path(), r#"{"state": "failed", "version": "0.1.9", "error": "x"}"#);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(commands.try_recv().is_err());
        write_status(state.path(), r#"{"state": "downloading", "version": "0.2.0"}"#);
        let Some(Command::FirmwareStatus(status)) = commands.recv().await else {
            panic!("no progress relayed")
        };
        assert_eq!(status.state, UpdateState::Downloading);
        write_status(state.path(), r#"{"state": "succeeded", "version": "0.2.0"}"#);
        let Some(Command::FirmwareStatus(status)) = commands.recv().await else {
            panic!("no result relayed")
        };
        assert_eq!(status.state, UpdateState::Succeeded);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_updater_that_never_answers_is_reported_as_failed() {
        let state = tempfile::tempdir().unwrap();
        let (requests_tx, requests) = mpsc::channel(1);
        let (lamp, mut commands) = mpsc::channel(8);
        let status = state.path().join("status.json");
        tokio::spawn(run(
            state.path().to_owned(),
            status,
            requests,
            lamp,
            CancellationToken::new(),
        ));
        requests_tx.send(request("0.2.0")).await.unwrap();
        let Some(Command::FirmwareStatus(status)) = commands.recv().await else {
            panic!("no failure reported")
        };
        assert_eq!(status.state, UpdateState::Failed);
        assert!(status.error.unwrap().contains("lampi-update.path"));
    }
}
