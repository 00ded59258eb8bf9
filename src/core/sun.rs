//! Where the sun is, computed on the lamp: NOAA's solar equations (after Meeus, *Astronomical
//! Algorithms*), good to well under a minute for sunrise and sunset between the polar circles.
//! No network: the lamp needs only its latitude and longitude.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

/// The sun's centre this far below the horizon counts as rising or setting: its radius (0.267°)
/// plus average atmospheric refraction (0.566°), as almanacs and NOAA use.
const HORIZON_DEG: f64 = -0.833;

/// Sunrise and sunset of one day, or why there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daylight {
    Rises {
        sunrise: DateTime<Utc>,
        sunset: DateTime<Utc>,
    },
    /// The sun stays above the horizon all day (midnight sun).
    PolarDay,
    /// The sun stays below the horizon all day.
    PolarNight,
}

struct SolarTerms {
    /// Declination, radians.
    declination: f64,
    /// Equation of time, minutes.
    equation_of_time: f64,
}

fn julian_century(at: DateTime<Utc>) -> f64 {
    let julian_day = at.timestamp_millis() as f64 / 86_400_000.0 + 2_440_587.5;
    (julian_day - 2_451_545.0) / 36_525.0
}

fn solar_terms(at: DateTime<Utc>) -> SolarTerms {
    let t = julian_century(at);
    let mean_longitude = (280.466_46 + t * (36_000.769_83 + t * 0.000_303_2)).rem_euclid(360.0);
    let mean_anomaly = 357.529_11 + t * (35_999.050_29 - 0.000_153_7 * t);
    let eccentricity = 0.016_708_634 - t * (0.000_042_037 + 0.000_000_126_7 * t);
    let m = mean_anomaly.to_radians();
    let centre = m.sin() * (1.914_602 - t * (0.004_817 + 0.000_014 * t))
        + (2.0 * m).sin() * (0.019_993 - 0.000_101 * t)
        + (3.0 * m).sin() * 0.000_289;
    let omega = (125.04 - 1934.136 * t).to_radians();
    let apparent_longitude = (mean_longitude + centre - 0.005_69 - 0.004_78 * omega.sin()).to_radians();
    let mean_obliquity = 23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.000_59 - t * 0.001_813))) / 60.0) / 60.0;
    let obliquity = (mean_obliquity + 0.002_56 * omega.cos()).to_radians();
    let declination = (obliquity.sin() * apparent_longitude.sin()).asin();
    let y = (obliquity / 2.0).tan().powi(2);
    let l0 = mean_longitude.to_radians();
    let equation_of_time = 4.0
        * (y * (2.0 * l0).sin() - 2.0 * eccentricity * m.sin() + 4.0 * eccentricity * y * m.sin() * (2.0 * l0).cos()
            - 0.5 * y * y * (4.0 * l0).sin()
            - 1.25 * eccentricity * eccentricity * (2.0 * m).sin())
        .to_degrees();
    SolarTerms {
        declination,
        equation_of_time,
    }
}

/// The sun's elevation above the horizon in degrees (negative below it), without refraction.
pub fn elevation(at: DateTime<Utc>, latitude: f64, longitude: f64) -> f64 {
    let terms = solar_terms(at);
    let minutes = at.timestamp_millis().rem_euclid(86_400_000) as f64 / 60_000.0;
    let true_solar_time = (minutes + terms.equation_of_time + 4.0 * longitude).rem_euclid(1440.0);
    let hour_angle = (true_solar_time / 4.0 - 180.0).to_radians();
    let lat = latitude.to_radians();
    let cos_zenith = lat.sin() * terms.declination.sin() + lat.cos() * terms.declination.cos() * hour_angle.cos();
    90.0 - cos_zenith.clamp(-1.0, 1.0).acos().to_degrees()
}

fn at_minutes(date: NaiveDate, minutes: f64) -> DateTime<Utc> {
    let midnight = Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN));
    midnight + Duration::milliseconds((minutes * 60_000.0).round() as i64)
}

/// Minutes after the date's UTC midnight at which the sun crosses the horizon, rising when
/// `rising`; `Err(true)` if it stays up, `Err(false)` if it stays down. Two refinements with
/// the sun's position at the previous estimate bring it within seconds of the exact time.
fn crossing(date: NaiveDate, latitude: f64, longitude: f64, rising: bool) -> Result<f64, bool> {
    let lat = latitude.to_radians();
    let mut minutes = 720.0;
    for _ in 0..3 {
        let terms = solar_terms(at_minutes(date, minutes));
        let noon = 720.0 - 4.0 * longitude - terms.equation_of_time;
        let cos_hour_angle = (90.0 - HORIZON_DEG).to_radians().cos() / (lat.cos() * terms.declination.cos())
            - lat.tan() * terms.declination.tan();
        if cos_hour_angle < -1.0 {
            return Err(true);
        }
        if cos_hour_angle > 1.0 {
            return Err(false);
        }
        let half_day = 4.0 * cos_hour_angle.acos().to_degrees();
        minutes = if rising { noon - half_day } else { noon + half_day };
    }
    Ok(minutes)
}

/// Sunrise and sunset around the solar noon of `date` (a UTC date) at a place.
pub fn daylight(date: NaiveDate, latitude: f64, longitude: f64) -> Daylight {
    match (
        crossing(date, latitude, longitude, true),
        crossing(date, latitude, longitude, false),
    ) {
        (Ok(rise), Ok(set)) => Daylight::Rises {
            sunrise: at_minutes(date, rise),
            sunset: at_minutes(date, set),
        },
        (Err(true), _) | (_, Err(true)) => Daylight::PolarDay,
        _ => Daylight::PolarNight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn london_midsummer() {
        // As PyEphem computes them (tests/sun.rs compares four thousand more days).
        let Daylight::Rises { sunrise, sunset } = daylight(NaiveDate::from_ymd_opt(2026, 6, 21).unwrap(), 51.5, -0.12)
        else {
            panic!("the sun rises in London")
        };
        assert_eq!(sunrise.format("%H:%M").to_string(), "03:43");
        assert_eq!(sunset.format("%H:%M").to_string(), "20:21");
        let noon = elevation(utc("2026-06-21T12:00:00Z"), 51.5, -0.12);
        assert!((noon - 61.94).abs() < 0.05, "{noon}");
    }

    #[test]
    fn polar_day_and_night_in_tromso() {
        let june = NaiveDate::from_ymd_opt(2026, 6, 21).unwrap();
        let december = NaiveDate::from_ymd_opt(2026, 12, 21).unwrap();
        assert_eq!(daylight(june, 69.65, 18.96), Daylight::PolarDay);
        assert_eq!(daylight(december, 69.65, 18.96), Daylight::PolarNight);
        assert!(elevation(utc("2026-06-21T23:00:00Z"), 69.65, 18.96) > 0.0);
        assert!(elevation(utc("2026-12-21T11:00:00Z"), 69.65, 18.96) < 0.0);
    }

    #[test]
    fn elevation_is_continuous_across_midnight_utc() {
        let before = elevation(utc("2026-03-01T23:59:59Z"), 35.0, 139.0);
        let after = elevation(utc("2026-03-02T00:00:01Z"), 35.0, 139.0);
        assert!((before - after).abs() < 0.01, "{before} {after}");
    }
}
