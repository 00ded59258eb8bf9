//! The screen's backlight through `/sys/class/backlight/<device>/{brightness,max_brightness}`.

use std::io;
use std::path::{Path, PathBuf};

const CLASS: &str = "/sys/class/backlight";

#[derive(Debug)]
pub struct Backlight {
    dir: PathBuf,
    max: u32,
}

impl Backlight {
    /// The backlight `setting` names (`ui.backlight`): "none", "auto" for the first device
    /// there is, or a device directory. `None` when there is none to drive.
    pub fn open(setting: &str) -> Option<Backlight> {
        let dir = match setting {
            "none" => return None,
            "auto" => {
                let mut devices: Vec<PathBuf> = std::fs::read_dir(CLASS).ok()?.flatten().map(|e| e.path()).collect();
                devices.sort();
                devices.into_iter().next()?
            }
            path => PathBuf::from(path),
        };
        match Backlight::at(&dir) {
            Ok(backlight) => Some(backlight),
            Err(e) => {
                tracing::warn!(device = %dir.display(), "no backlight control: {e}");
                None
            }
        }
    }

    pub fn at(dir: &Path) -> io::Result<Backlight> {
        let max = std::fs::read_to_string(dir.join("max_brightness"))?
            .trim()
            .parse::<u32>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("max_brightness: {e}")))?;
        if max == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "max_brightness is 0"));
        }
        Ok(Backlight {
            dir: dir.to_owned(),
            max,
        })
    }

    /// Sets the level, 0.0 (dark) to 1.0; any level above 0 keeps at least the lowest step
    /// lit, so "dim" never turns into "dark" on a coarse backlight.
    pub fn set(&self, level: f64) -> io::Result<()> {
        let steps = (level.clamp(0.0, 1.0) * f64::from(self.max)).round() as u32;
        let steps = if level > 0.0 { steps.max(1) } else { 0 };
        std::fs::write(self.dir.join("brightness"), steps.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_levels_in_the_devices_steps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("max_brightness"), "31\n").unwrap();
        let backlight = Backlight::at(dir.path()).unwrap();
        let read = || std::fs::read_to_string(dir.path().join("brightness")).unwrap();
        backlight.set(1.0).unwrap();
        assert_eq!(read(), "31");
        backlight.set(0.01).unwrap();
        assert_eq!(read(), "1");
        backlight.set(0.0).unwrap();
        assert_eq!(read(), "0");
        std::fs::write(dir.path().join("max_brightness"), "0\n").unwrap();
        assert!(Backlight::at(dir.path()).is_err());
        assert!(Backlight::open("none").is_none());
    }
}
