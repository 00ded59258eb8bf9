//! lampi's sunrise and sunset against PyEphem (libastro: an independent
//! implementation): every week of a year, at latitudes from 65° S to 65° N and longitudes round
//! the world, within a minute.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{Days, NaiveDate};
use lampi::core::sun::{Daylight, daylight};

#[test]
fn sunrise_and_sunset_agree_with_pyephem_within_a_minute() {
    let mut cases = Vec::new();
    let first = NaiveDate::from_ymd_opt(2026, 1, 3).unwrap();
    for week in 0..52 {
        let date = first.checked_add_days(Days::new(week * 7)).unwrap();
        for latitude in (-65..=65).step_by(13) {
            for longitude in [-157.8, -74.0, -0.1, 18.9, 77.2, 151.2, 179.0] {
                cases.push((date, f64::from(latitude), longitude));
            }
        }
    }
    let mut python = Command::new("/usr/bin/python3")
        .arg("tests/sun_reference.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with PyEphem (apt-get install python3-ephem)");
    let input: String = cases
        .iter()
        .map(|(date, lat, lon)| format!("{date} {lat} {lon}\n"))
        .collect();
    python.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success(), "PyEphem failed (is python3-ephem installed?)");
    let answers = String::from_utf8(output.stdout).unwrap();
    let answers: Vec<&str> = answers.lines().collect();
    assert_eq!(answers.len(), cases.len());

    let (mut compared, mut worst) = (0, 0);
    for ((date, lat, lon), answer) in cases.iter().zip(answers) {
        let ours = daylight(*date, *lat, *lon);
        match (ours, answer) {
            (Daylight::PolarDay | Daylight::PolarNight, "polar") => {}
            (Daylight::Rises { sunrise, sunset }, answer) => {
                let (rise, set) = answer
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{date} {lat} {lon}: PyEphem says {answer}, we say {ours:?}"));
                for (mine, theirs) in [(sunrise, rise), (sunset, set)] {
                    let error = (mine.timestamp() - theirs.parse::<i64>().unwrap()).abs();
                    assert!(error <= 60, "{date} {lat} {lon}: {mine} is {error} s from PyEphem");
                    worst = worst.max(error);
                }
                compared += 1;
            }
            (ours, answer) => panic!("{date} {lat} {lon}: PyEphem says {answer}, we say {ours:?}"),
        }
    }
    assert!(compared > cases.len() * 9 / 10, "only {compared} comparable days");
    eprintln!("{compared} days compared; worst difference {worst} s");
}
