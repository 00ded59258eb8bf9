//! The UI without a display: Slint's software renderer draws into memory. `lampi screenshot`,
//! the screen tests and the render benchmark all use it.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, bail};
use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{Platform, WindowAdapter};
use slint::{ComponentHandle, PhysicalSize, PlatformError, Rgb8Pixel};

use super::view::{View, ViewInput};
use super::{AppWindow, Screen, bridge};

/// The screens by the names `lampi screenshot --screen` takes.
pub const SCREENS: [(&str, Screen); 6] = [
    ("home", Screen::Home),
    ("alarm", Screen::Alarm),
    ("alarms", Screen::Alarms),
    ("natural", Screen::Natural),
    ("pairing", Screen::Pairing),
    ("settings", Screen::Settings),
];

pub fn screen_named(name: &str) -> anyhow::Result<Screen> {
    match SCREENS.iter().find(|(n, _)| *n == name) {
        Some((_, screen)) => Ok(*screen),
        None => {
            let names: Vec<&str> = SCREENS.iter().map(|(n, _)| *n).collect();
            bail!("no screen {name:?}; the screens are {}", names.join(", "))
        }
    }
}

thread_local! {
    /// How the next window keeps its frame, and the window the headless platform made last:
    /// Slint asks the platform for a window adapter inside `AppWindow::new`, so these pass the
    /// choice in and the window back out.
    static NEXT_BUFFER: Cell<RepaintBufferType> = const { Cell::new(RepaintBufferType::NewBuffer) };
    static LAST_WINDOW: RefCell<Option<Rc<MinimalSoftwareWindow>>> = const { RefCell::new(None) };
}

struct Headless;

impl Platform for Headless {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        let window = MinimalSoftwareWindow::new(NEXT_BUFFER.get());
        LAST_WINDOW.with(|last| *last.borrow_mut() = Some(window.clone()));
        Ok(window)
    }
}

/// The UI in memory at a fixed size.
pub struct HeadlessScreen {
    pub app: AppWindow,
    window: Rc<MinimalSoftwareWindow>,
    width: u32,
    height: u32,
    pixels: Vec<Rgb8Pixel>,
    shown: Option<View>,
    redrawn: u64,
}

impl HeadlessScreen {
    /// Makes this thread's Slint platform the headless one (so it must not have another).
    /// `partial`: redraw only what changed into the previous frame, as a real display does;
    /// otherwise every frame is drawn whole.
    pub fn new(width: u32, height: u32, partial: bool) -> anyhow::Result<HeadlessScreen> {
        let buffer = if partial {
            RepaintBufferType::ReusedBuffer
        } else {
            RepaintBufferType::NewBuffer
        };
        // A second screen on the same thread keeps the platform it already has.
        let _ = slint::platform::set_platform(Box::new(Headless));
        NEXT_BUFFER.set(buffer);
        let app = AppWindow::new().context("cannot create the UI")?;
        let window = LAST_WINDOW
            .with(|last| last.borrow_mut().take())
            .context("the headless platform made no window")?;
        window.set_size(PhysicalSize::new(width, height));
        app.show().context("cannot show the UI")?;
        Ok(HeadlessScreen {
            app,
            window,
            width,
            height,
            pixels: vec![Rgb8Pixel::default(); width as usize * height as usize],
            shown: None,
            redrawn: 0,
        })
    }

    pub fn show(&mut self, view: View) {
        bridge::show(&self.app, &view, self.shown.as_ref());
        self.shown = Some(view);
    }

    pub fn set_screen(&self, screen: Screen) {
        bridge::set_screen(&self.app, screen);
    }

    /// Draws what changed since the last frame; false when nothing had.
    pub fn render(&mut self) -> bool {
        slint::platform::update_timers_and_animations();
        let width = self.width as usize;
        let pixels = &mut self.pixels;
        let mut redrawn = 0;
        let drawn = self.window.draw_if_needed(|renderer| {
            let region = renderer.render(pixels, width);
            redrawn = region
                .iter()
                .map(|(_, size)| u64::from(size.width) * u64::from(size.height))
                .sum();
        });
        self.redrawn = redrawn;
        drawn
    }

    /// How many pixels the last [`HeadlessScreen::render`] drew.
    pub fn redrawn_pixels(&self) -> u64 {
        self.redrawn
    }

    /// The last frame as 8-bit RGB rows.
    pub fn rgb(&self) -> Vec<u8> {
        self.pixels.iter().flat_map(|p| [p.r, p.g, p.b]).collect()
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn write_png(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb())?;
        writer.finish()?;
        Ok(())
    }
}

/// One screen with a given state, rendered whole.
pub fn render(screen: Screen, input: &ViewInput, width: u32, height: u32) -> anyhow::Result<HeadlessScreen> {
    let mut headless = HeadlessScreen::new(width, height, false)?;
    headless.show(super::view::view(input));
    headless.set_screen(screen);
    headless.render();
    Ok(headless)
}

/// `--state` JSON laid over the screen's example state: only what it names changes.
pub fn input_with(screen: Screen, state: Option<&str>) -> anyhow::Result<ViewInput> {
    let example = ViewInput::example_for(screen);
    let Some(state) = state else {
        return Ok(example);
    };
    let patch: serde_json::Value = serde_json::from_str(state).context("--state is not JSON")?;
    let Some(patch) = patch.as_object() else {
        bail!("--state must be a JSON object");
    };
    let serde_json::Value::Object(mut merged) = serde_json::to_value(&example)? else {
        unreachable!("a struct serialises to an object");
    };
    crate::core::shadow::merge_into(&mut merged, patch);
    serde_json::from_value(serde_json::Value::Object(merged)).context("--state")
}
