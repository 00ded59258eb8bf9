//! Every screen drawn headless by the software renderer, as `lampi screenshot` draws it: the
//! right size, not blank, and different when the state it shows is different.

use std::collections::HashSet;
use std::process::Command;

use i_slint_backend_testing::ElementHandle;
use lampi::ui::Screen;
use lampi::ui::screenshot::{self, HeadlessScreen, SCREENS};
use lampi::ui::view::{ViewInput, view};

fn frame(screen: Screen, input: &ViewInput) -> Vec<u8> {
    let shot = screenshot::render(screen, input, 800, 480).unwrap();
    assert_eq!(shot.size(), (800, 480));
    shot.rgb()
}

fn distinct_colours(rgb: &[u8]) -> usize {
    rgb.chunks(3).map(|p| (p[0], p[1], p[2])).collect::<HashSet<_>>().len()
}

/// The share of pixels that differ between two frames.
fn difference(a: &[u8], b: &[u8]) -> f64 {
    let differing = a.chunks(3).zip(b.chunks(3)).filter(|(x, y)| x != y).count();
    differing as f64 / (a.len() / 3) as f64
}

#[test]
fn every_screen_renders_whole_and_differs_from_the_others() {
    let frames: Vec<(&str, Vec<u8>)> = SCREENS
        .iter()
        .map(|(name, screen)| (*name, frame(*screen, &ViewInput::example_for(*screen))))
        .collect();
    for (name, rgb) in &frames {
        assert_eq!(rgb.len(), 800 * 480 * 3, "{name}");
        // Text is antialiased: a real screen has many shades; a blank one has one or two.
        let colours = distinct_colours(rgb);
        assert!(colours > 50, "{name} has {colours} colours");
        let lit = rgb.chunks(3).filter(|p| p.iter().any(|&c| c > 128)).count();
        assert!(lit > 2000, "{name} has only {lit} bright pixels");
    }
    for (i, (a, first)) in frames.iter().enumerate() {
        for (b, second) in &frames[i + 1..] {
            assert!(difference(first, second) > 0.02, "{a} and {b} look the same");
        }
    }
}

#[test]
fn states_that_differ_look_different() {
    let home = ViewInput::example();
    let mut off = home.clone();
    off.light.on = false;
    let mut unsynchronised = home.clone();
    unsynchronised.clock_synchronised = false;
    let mut redder = home.clone();
    redder.light.hue = 0.0;
    redder.light.saturation = 1.0;
    let base = frame(Screen::Home, &home);
    for (what, input) in [("off", &off), ("unsynchronised", &unsynchronised), ("red", &redder)] {
        let other = frame(Screen::Home, input);
        assert!(difference(&base, &other) > 0.001, "home {what} looks like home");
    }
    // And the same state twice draws the same picture.
    assert_eq!(frame(Screen::Home, &home), base);

    let showing = ViewInput::example_for(Screen::Pairing);
    let mut expired = showing.clone();
    expired.pairing.code = None;
    expired.pairing.expired = true;
    let mut later = showing.clone();
    later.pairing.left_s = 10.0;
    let code = frame(Screen::Pairing, &showing);
    assert!(difference(&code, &frame(Screen::Pairing, &expired)) > 0.02);
    assert!(difference(&code, &frame(Screen::Pairing, &later)) > 0.001);
}

#[test]
fn a_clock_tick_redraws_only_the_clock() {
    // A whole-frame screen first, on the same thread: the next one must still redraw partially.
    frame(Screen::Settings, &ViewInput::example());
    let mut screen = HeadlessScreen::new(800, 480, true).unwrap();
    let mut input = ViewInput::example();
    screen.show(view(&input));
    assert!(screen.render());
    assert!(!screen.render(), "nothing changed, nothing drawn");
    assert_eq!(screen.redrawn_pixels(), 0);
    input.now += chrono::Duration::minutes(1);
    screen.show(view(&input));
    assert!(screen.render());
    let share = screen.redrawn_pixels() as f64 / (800.0 * 480.0);
    assert!(
        share > 0.0 && share < 0.25,
        "a tick redrew {:.0} % of the screen",
        share * 100.0
    );
}

#[test]
fn screenshot_command_writes_a_png_of_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lampi.toml");
    std::fs::write(&config, "[ui]\nwidth = 1024\nheight = 600\n").unwrap();
    let out = dir.path().join("home.png");
    let status = Command::new(env!("CARGO_BIN_EXE_lampi"))
        .args(["--config", config.to_str().unwrap(), "screenshot", "--screen", "home"])
        .args(["--state", r#"{"light": {"on": false}, "prefs": {"clock_24h": false}}"#])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (1024, 600));

    let refused = Command::new(env!("CARGO_BIN_EXE_lampi"))
        .args(["--config", config.to_str().unwrap(), "screenshot", "--screen", "lounge"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the screens are home, alarm"));
    let bad_state = Command::new(env!("CARGO_BIN_EXE_lampi"))
        .args(["--config", config.to_str().unwrap(), "screenshot", "--screen", "home"])
        .args(["--state", r#"{"lihgt": 1}"#, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!bad_state.status.success());
    assert!(String::from_utf8_lossy(&bad_state.stderr).contains("lihgt"));
}

/// The horizontal extent of an element on the screen, in logical pixels.
fn span(element: &ElementHandle) -> (f32, f32) {
    let x = element.absolute_position().x;
    (x, x + element.size().width)
}

#[test]
fn every_slider_keeps_its_knob_on_its_track_and_its_track_on_the_screen() {
    let sliders = [
        (Screen::Home, "Brightness"),
        (Screen::Home, "Hue"),
        (Screen::Home, "Saturation"),
        (Screen::Settings, "Screen brightness"),
    ];
    // What a deployed lamp shows in Settings: a global IPv6 address and an AWS IoT endpoint,
    // words longer than the column they are in.
    let mut deployed = ViewInput::example();
    deployed.status.addresses = vec!["192.168.1.42".into(), "2a02:8071:5e1:2c00:ba27:ebff:fe12:3456".into()];
    deployed.status.brokers = vec!["a1b2c3d4e5f6g7-ats.iot.eu-central-1.amazonaws.com:8883".into()];
    deployed.status.has_backlight = false;
    for base in [ViewInput::example(), deployed] {
        for value in [0.0, 0.5, 1.0] {
            let mut input = base.clone();
            input.light.brightness = value;
            input.light.hue = value;
            input.light.saturation = value;
            input.prefs.screen_brightness = value;
            for (screen, label) in sliders {
                let shot = screenshot::render(screen, &input, 800, 480).unwrap();
                let slider: Vec<_> = ElementHandle::find_by_accessible_label(&shot.app, label).collect();
                assert_eq!(slider.len(), 1, "one slider labelled {label:?}");
                let part = |id: &str| {
                    let found = slider[0].query_descendants().match_id(id).find_all();
                    assert_eq!(found.len(), 1, "{label}: one {id}");
                    span(&found[0])
                };
                let (track, knob) = (part("GradientSlider::track"), part("GradientSlider::knob"));
                let at = format!("{label} at {value} on {screen:?}");
                assert!(track.1 > track.0 + 100.0, "{at}: the track is {track:?}");
                assert!(
                    knob.0 >= track.0 && knob.1 <= track.1,
                    "{at}: the knob {knob:?} leaves its track {track:?}"
                );
                assert!(
                    track.0 >= 0.0 && track.1 <= 800.0,
                    "{at}: the track {track:?} leaves the 800-pixel screen"
                );
            }
        }
    }
}
