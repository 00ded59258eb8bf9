//! The screen's own preferences (clock format, night dimming, brightness), kept in the state
//! directory; a missing or unreadable file means the defaults.

use std::path::Path;
use std::time::Duration;

use super::view::Prefs;

/// The screen preferences' file in the state directory.
pub const FILE: &str = "ui.json";
/// Preferences are saved this long after the last change (a brightness drag would otherwise
/// write the file at every step).
pub const SAVE_DELAY: Duration = Duration::from_secs(1);
/// The darkest the person can set the screen in use: never so dark it looks off.
pub const MIN_SCREEN_BRIGHTNESS: f64 = 0.05;

/// The preferences in `path`; `clock_24h` is the config's choice until one is saved.
pub fn load(path: &Path, clock_24h: bool) -> Prefs {
    let defaults = Prefs {
        clock_24h,
        ..Prefs::default()
    };
    let mut prefs = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), "screen preferences unreadable ({e}); using defaults");
            defaults
        }),
        Err(_) => defaults,
    };
    // A hand-edited file gets the same bounds as the slider.
    prefs.screen_brightness = screen_brightness(prefs.screen_brightness);
    prefs
}

/// A brightness the person asked for, within what the screen allows.
pub fn screen_brightness(level: f64) -> f64 {
    level.clamp(MIN_SCREEN_BRIGHTNESS, 1.0)
}

/// Writes `prefs` atomically; a failure is logged, the screen keeps working.
pub fn save(path: &Path, prefs: &Prefs) {
    let written = serde_json::to_vec_pretty(prefs)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::store::write_atomic(path, &bytes));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), "cannot save the screen preferences: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_preferences_survive_a_bad_file_and_are_kept_in_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        assert!(!load(&path, false).clock_24h, "no file: the config's choice");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(&path, false).screen_brightness, 1.0);
        std::fs::write(&path, r#"{"screen_brightness": 7}"#).unwrap();
        assert_eq!(load(&path, false).screen_brightness, 1.0);
        std::fs::write(&path, r#"{"screen_brightness": -1}"#).unwrap();
        assert_eq!(load(&path, false).screen_brightness, MIN_SCREEN_BRIGHTNESS);
        save(
            &path,
            &Prefs {
                screen_brightness: 0.5,
                ..Prefs::default()
            },
        );
        assert_eq!(load(&path, false).screen_brightness, 0.5);
    }
}
