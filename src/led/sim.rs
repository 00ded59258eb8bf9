//! The simulated LED: remembers its duty cycles and, in a terminal, draws them.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Led, LedError};
use crate::core::colour::Rgb;

#[derive(Debug)]
pub struct SimLed {
    duty: Rgb,
    console: Option<Console>,
}

impl SimLed {
    /// A simulated LED that draws nothing.
    pub fn new() -> SimLed {
        SimLed {
            duty: Rgb::OFF,
            console: None,
        }
    }

    /// A simulated LED that draws its colour as the last line of `console`, when that is a
    /// terminal (logs piped to a file stay clean).
    pub fn with_swatch(console: &Console) -> SimLed {
        SimLed {
            duty: Rgb::OFF,
            console: std::io::stderr().is_terminal().then(|| console.clone()),
        }
    }

    pub fn duty(&self) -> Rgb {
        self.duty
    }
}

impl Default for SimLed {
    fn default() -> Self {
        SimLed::new()
    }
}

/// One terminal line: a block in the colour the LED emits, then the exact duty cycles.
pub fn swatch_line(duty: Rgb) -> String {
    let [r, g, b] = duty.to_srgb8();
    format!(
        "\x1b[48;2;{r};{g};{b}m        \x1b[0m LED  R {:6.2}%  G {:6.2}%  B {:6.2}%",
        duty.r * 100.0,
        duty.g * 100.0,
        duty.b * 100.0
    )
}

/// Standard error shared by the log and the swatch, so that the two never share a line: the
/// swatch is redrawn in place on the last line (carriage return, no newline), and a log line
/// first erases it, then is written whole, then the swatch is drawn again below it. The daemon
/// logs through it ([`tracing_subscriber::fmt::MakeWriter`]); one per process, created by
/// `main`, as there is one terminal.
#[derive(Clone, Debug, Default)]
pub struct Console {
    /// The swatch on the last line, if one is shown.
    swatch: Arc<Mutex<Option<String>>>,
}

impl Console {
    pub fn new() -> Console {
        Console::default()
    }

    /// Writes `text` (whole lines) with the swatch kept below it, to `out`.
    fn write_lines(&self, out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
        let swatch = self.swatch.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bytes = Vec::with_capacity(text.len() + 128);
        if swatch.is_some() {
            bytes.extend_from_slice(b"\r\x1b[K");
        }
        bytes.extend_from_slice(text);
        if let Some(line) = swatch.as_deref() {
            bytes.extend_from_slice(format!("\r{line}\x1b[K").as_bytes());
        }
        out.write_all(&bytes)?;
        out.flush()
    }

    /// Draws (or redraws) the swatch on the last line.
    fn show(&self, out: &mut impl Write, line: String) -> std::io::Result<()> {
        let mut swatch = self.swatch.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(format!("\r{line}\x1b[K").as_bytes())?;
        *swatch = Some(line);
        out.flush()
    }

    /// Ends the swatch's line, so what follows starts on a line of its own.
    fn finish(&self, out: &mut impl Write) -> std::io::Result<()> {
        if self
            .swatch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
        {
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

/// One log event, collected and written at once when the logger drops it.
pub struct LogLine {
    console: Console,
    text: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        // Nowhere to report a failure to log.
        let _ = self.console.write_lines(&mut std::io::stderr().lock(), &self.text);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            console: self.clone(),
            text: Vec::new(),
        }
    }
}

impl Led for SimLed {
    fn set(&mut self, duty: Rgb) -> Result<(), LedError> {
        self.duty = duty;
        tracing::trace!(r = duty.r, g = duty.g, b = duty.b, "sim LED");
        if let Some(console) = &self.console {
            // A broken terminal must not stop the lamp; the swatch is only a convenience.
            let _ = console.show(&mut std::io::stderr().lock(), swatch_line(duty));
        }
        Ok(())
    }

    fn shut_down(&mut self, keep_lit: bool) -> Result<(), LedError> {
        if !keep_lit {
            self.set(Rgb::OFF)?;
        }
        if let Some(console) = &self.console {
            let _ = console.finish(&mut std::io::stderr().lock());
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
        let mut led = SimLed::new();
        let green = Rgb { r: 0.0, g: 0.5, b: 0.0 };
        led.set(green).unwrap();
        led.shut_down(true).unwrap();
        assert_eq!(led.duty(), green);
        led.shut_down(false).unwrap();
        assert_eq!(led.duty(), Rgb::OFF);
    }

    /// What a terminal shows for `bytes`: its lines, with `\r` returning to the line's start,
    /// `ESC[K` erasing to its end and other escape sequences dropped.
    fn screen(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut lines = vec![String::new()];
        let mut column = 0;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let line = lines.last_mut().unwrap();
            match c {
                '\n' => {
                    lines.push(String::new());
                    column = 0;
                }
                '\r' => column = 0,
                '\x1b' => {
                    let mut sequence = String::new();
                    for s in chars.by_ref() {
                        sequence.push(s);
                        if s.is_ascii_alphabetic() {
                            break;
                        }
                    }
                    if sequence == "[K" {
                        *line = line.chars().take(column).collect();
                    }
                }
                c => {
                    let mut kept: Vec<char> = line.chars().collect();
                    if column < kept.len() {
                        kept[column] = c;
                    } else {
                        kept.push(c);
                    }
                    *line = kept.into_iter().collect();
                    column += 1;
                }
            }
        }
        lines
    }

    #[test]
    fn a_log_line_never_shares_the_swatch_line() {
        let console = Console::new();
        let mut terminal = Vec::new();
        let red = Rgb { r: 1.0, g: 0.0, b: 0.0 };
        console.show(&mut terminal, swatch_line(Rgb::OFF)).unwrap();
        console.show(&mut terminal, swatch_line(red)).unwrap();
        console.write_lines(&mut terminal, b"INFO connected\n").unwrap();
        console.write_lines(&mut terminal, b"INFO x\n").unwrap();
        console.show(&mut terminal, swatch_line(Rgb::OFF)).unwrap();
        console.finish(&mut terminal).unwrap();
        console.write_lines(&mut terminal, b"INFO stopped\n").unwrap();
        let swatch_off = screen(swatch_line(Rgb::OFF).as_bytes()).remove(0);
        assert_eq!(
            screen(&terminal),
            ["INFO connected", "INFO x", &swatch_off, "INFO stopped", ""]
        );
    }
}
