//! Records the git commit in the binary, so `lampi --version` says exactly what runs, and
//! compiles the touchscreen UI in `ui/`.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=LAMPI_GIT_COMMIT={commit}");
    // Asked of git, not assumed, and only those there: in a worktree `.git` is a file, and a
    // watched path that does not exist reruns this script, and rebuilds lampi, on every cargo call.
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git(&["rev-parse", "--git-path", watched]).filter(|p| std::path::Path::new(p).exists());
        if let Some(path) = path {
            println!("cargo:rerun-if-changed={path}");
        }
    }

    // Debug info names elements after their ids, which the UI tests find controls by; the font
    // goes into the binary so the screen looks the same whatever fonts the system has.
    let ui = slint_build::CompilerConfiguration::new()
        .with_debug_info(true)
        .embed_resources(slint_build::EmbedResourcesKind::EmbedFiles);
    if let Err(e) = slint_build::compile_with_config("ui/app.slint", ui) {
        panic!("ui/app.slint: {e}");
    }
}

/// A git command's one line of output, if git and a repository are there.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
