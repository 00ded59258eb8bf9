//! The simulated LED: remembers its duty cycles and, in a terminal, draws them.

use std::io::{IsTerminal, Write};

use super::{Led, LedError};
use crate::core::colour::Rgb;

#[derive(Debug)]
pub struct SimLed {
    duty: Rgb,
    swatch: bool,
}

impl SimLed {
    /// `swatch` is honoured only when stdout is a terminal, so logs piped to a file stay clean.
    pub fn new(swatch: bool) -> SimLed {
        SimLed {
            duty: Rgb::OFF,
            swatch: swatch && std::io::stdout().is_terminal(),
        }
    }

    pub fn duty(&self) -> Rgb {
        self.duty
    }
}

/// One terminal line: a block in the colour the LED emits, then the exact duty cycles.
pub fn swatch_line(duty: Rgb) -> String {
    let [r, g, b] = duty.to_srgb8();
    format!(
        "\r\x1b[48;2;{r};{g};{b}m        \x1b[0m LED  R {:6.2}%  G {:6.2}%  B {:6.2}%\x1b[K",
        duty.r * 100.0,
        duty.g * 100.0,
        duty.b * 100.0
    )
}

impl Led for SimLed {
    fn set(&mut self, duty: Rgb) -> Result<(), LedError> {
        self.duty = duty;
        tracing::trace!(r = duty.r, g = duty.g, b = duty.b, "sim LED");
        if self.swatch {
            let mut out = std::io::stdout().lock();
            // A broken terminal must not stop the lamp; the swatch is only a convenience.
            let _ = out.write_all(swatch_line(duty).as_bytes());
            let _ = out.flush();
        }
        Ok(())
    }

    fn shut_down(&mut self, keep_lit: bool) -> Result<(), LedError> {
        if !keep_lit {
            self.set(Rgb::OFF)?;
        }
        if self.swatch {
            println!();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swatch_shows_colour_and_exact_duty() {
        let line = swatch_line(Rgb {
            r: 0.0,
            g: 0.184_186,
            b: 0.0,
        });
        assert!(line.contains("48;2;0;119;0m"), "{line:?}");
        assert!(line.contains("G  18.42%"), "{line:?}");
    }

    #[test]
    fn remembers_and_turns_off_on_shutdown_when_asked() {
        let mut led = SimLed::new(false);
        let green = Rgb { r: 0.0, g: 0.5, b: 0.0 };
        led.set(green).unwrap();
        led.shut_down(true).unwrap();
        assert_eq!(led.duty(), green);
        led.shut_down(false).unwrap();
        assert_eq!(led.duty(), Rgb::OFF);
    }
}
