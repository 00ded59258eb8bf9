//! Records the git commit in the binary, so `lampi --version` says exactly what runs, and
//! compiles the touchscreen UI in `ui/`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=LAMPI_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    // Debug info names elements after their ids, which the UI tests find controls by; the font
    // goes into the binary so the screen looks the same whatever fonts the system has.
    let ui = slint_build::CompilerConfiguration::new()
        .with_debug_info(true)
        .embed_resources(slint_build::EmbedResourcesKind::EmbedFiles);
    if let Err(e) = slint_build::compile_with_config("ui/app.slint", ui) {
        panic!("ui/app.slint: {e}");
    }
}
