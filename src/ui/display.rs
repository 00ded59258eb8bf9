//! Which Slint backend shows the touchscreen, from `ui.display`, the build's features and what
//! the machine has (a desktop session, a DRM card).

use crate::config::Display;

/// `ui.display` names a backend this build does not have.
#[derive(Debug, thiserror::Error)]
#[error("ui.display = \"{backend}\" needs a build with the `{backend}` feature")]
pub struct NotBuilt {
    backend: &'static str,
}

/// The Slint backend to use for `display`, or `None` for no screen.
pub fn backend_for(display: Display) -> Result<Option<&'static str>, NotBuilt> {
    let desktop = std::env::var_os("WAYLAND_DISPLAY").is_some() || std::env::var_os("DISPLAY").is_some();
    let compiled = |backend: &'static str, present: bool| {
        if present {
            Ok(Some(backend))
        } else {
            Err(NotBuilt { backend })
        }
    };
    match display {
        Display::None => Ok(None),
        Display::Winit => compiled("winit", cfg!(feature = "winit")),
        Display::Linuxkms => compiled("linuxkms", cfg!(feature = "linuxkms")),
        Display::Auto if desktop && cfg!(feature = "winit") => Ok(Some("winit")),
        Display::Auto if !desktop && cfg!(feature = "linuxkms") && has_drm_card() => Ok(Some("linuxkms")),
        Display::Auto => Ok(None),
    }
}

fn has_drm_card() -> bool {
    std::fs::read_dir("/dev/dri")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.file_name().to_string_lossy().starts_with("card"))
}
