//! The colour pipeline: lamp state (hue, saturation, brightness) to PWM duty cycles.
//!
//! LAMPI scaled RGB linearly by brightness and quantised to 8 bits, so the bottom of the
//! slider jumped in visible steps and the top half looked almost the same. Here brightness is
//! CIE 1976 lightness L* (0–100 % of the slider is 0–100 L*), converted to relative luminance
//! — which is what a PWM duty cycle controls — and kept as `f64` so that each backend can
//! quantise at its own full resolution.

/// Duty cycles for the red, green and blue channels, each 0.0–1.0 (1.0 = fully on).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rgb {
    pub r: f64,
    pub g: f64,
    pub b: f64,
}

impl Rgb {
    pub const OFF: Rgb = Rgb { r: 0.0, g: 0.0, b: 0.0 };

    pub fn map(self, f: impl Fn(f64) -> f64) -> Rgb {
        Rgb {
            r: f(self.r),
            g: f(self.g),
            b: f(self.b),
        }
    }

    pub fn zip(self, other: Rgb, f: impl Fn(f64, f64) -> f64) -> Rgb {
        Rgb {
            r: f(self.r, other.r),
            g: f(self.g, other.g),
            b: f(self.b, other.b),
        }
    }

    /// The colour as 8-bit sRGB, for showing on a screen what the LED emits.
    pub fn to_srgb8(self) -> [u8; 3] {
        let encode = |linear: f64| {
            let v = if linear <= 0.003_130_8 {
                12.92 * linear
            } else {
                1.055 * linear.powf(1.0 / 2.4) - 0.055
            };
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        [encode(self.r), encode(self.g), encode(self.b)]
    }
}

/// CIE 1976: κ = 24389/27 and ε = 216/24389, exactly as the standard defines them, so the
/// curve is continuous where its linear and cubic parts meet (L* = 8).
const KAPPA: f64 = 24389.0 / 27.0;
const EPSILON: f64 = 216.0 / 24389.0;

/// Relative luminance (0–1) that a perceived lightness (0–1, i.e. L*/100) needs.
pub fn luminance_from_lightness(lightness: f64) -> f64 {
    let l = lightness.clamp(0.0, 1.0) * 100.0;
    if l > KAPPA * EPSILON {
        ((l + 16.0) / 116.0).powi(3)
    } else {
        l / KAPPA
    }
}

/// Perceived lightness (0–1) of a relative luminance (0–1); the inverse of
/// [`luminance_from_lightness`].
pub fn lightness_from_luminance(luminance: f64) -> f64 {
    let y = luminance.clamp(0.0, 1.0);
    let l = if y > EPSILON {
        116.0 * y.cbrt() - 16.0
    } else {
        KAPPA * y
    };
    l / 100.0
}

/// Fully saturated-value RGB for a hue and saturation (HSV with V = 1), as LAMPI's
/// `colorsys.hsv_to_rgb(h, s, 1.0)`. Hue wraps: 1.0 is red again.
pub fn hue_saturation_to_rgb(hue: f64, saturation: f64) -> Rgb {
    let h = hue.rem_euclid(1.0) * 6.0;
    let s = saturation.clamp(0.0, 1.0);
    let sector = h.floor();
    let f = h - sector;
    let p = 1.0 - s;
    let q = 1.0 - s * f;
    let t = 1.0 - s * (1.0 - f);
    let (r, g, b) = match sector as u8 {
        0 => (1.0, t, p),
        1 => (q, 1.0, p),
        2 => (p, 1.0, t),
        3 => (p, q, 1.0),
        4 => (t, p, 1.0),
        _ => (1.0, p, q),
    };
    Rgb { r, g, b }
}

/// The duty cycles for a lamp state: colour at full value, dimmed by perceptual brightness.
pub fn duty_for(on: bool, hue: f64, saturation: f64, brightness: f64) -> Rgb {
    if !on {
        return Rgb::OFF;
    }
    dimmed(hue_saturation_to_rgb(hue, saturation), brightness)
}

/// Linear-light colour of a black body at `kelvin` (1000–40000 K), brightest channel 1.0:
/// Tanner Helland's fit to the CIE 1964 10° blackbody table (sRGB-encoded), decoded to linear
/// light, since a duty cycle is linear light.
pub fn blackbody(kelvin: f64) -> Rgb {
    let t = kelvin.clamp(1000.0, 40_000.0) / 100.0;
    let red = if t <= 66.0 {
        1.0
    } else {
        329.698_727_446 * (t - 60.0).powf(-0.133_204_759_2) / 255.0
    };
    let green = if t <= 66.0 {
        (99.470_802_586_1 * t.ln() - 161.119_568_166_1) / 255.0
    } else {
        288.122_169_528_3 * (t - 60.0).powf(-0.075_514_849_2) / 255.0
    };
    let blue = if t >= 66.0 {
        1.0
    } else if t <= 19.0 {
        0.0
    } else {
        (138.517_731_223_1 * (t - 10.0).ln() - 305.044_792_730_7) / 255.0
    };
    let decode = |encoded: f64| {
        let v = encoded.clamp(0.0, 1.0);
        if v <= 0.040_45 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let linear = Rgb {
        r: decode(red),
        g: decode(green),
        b: decode(blue),
    };
    let brightest = linear.r.max(linear.g).max(linear.b);
    linear.map(|c| c / brightest)
}

/// The duty cycles for a colour (brightest channel 1.0) at a perceptual brightness (L*/100).
pub fn dimmed(colour: Rgb, brightness: f64) -> Rgb {
    let luminance = luminance_from_lightness(brightness);
    colour.map(|c| c * luminance)
}

/// The lamp state (hue, saturation, brightness) that shows `duty`, the inverse of
/// [`duty_for`]: what the sliders should say when the user takes over from a scheduler.
pub fn state_for(duty: Rgb) -> (f64, f64, f64) {
    let max = duty.r.max(duty.g).max(duty.b);
    if max <= 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let min = duty.r.min(duty.g).min(duty.b);
    let chroma = max - min;
    let hue = if chroma <= 0.0 {
        0.0
    } else if max == duty.r {
        ((duty.g - duty.b) / chroma).rem_euclid(6.0) / 6.0
    } else if max == duty.g {
        ((duty.b - duty.r) / chroma + 2.0) / 6.0
    } else {
        ((duty.r - duty.g) / chroma + 4.0) / 6.0
    };
    (hue, chroma / max, lightness_from_luminance(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn primary_hues() {
        assert_eq!(hue_saturation_to_rgb(0.0, 1.0), Rgb { r: 1.0, g: 0.0, b: 0.0 });
        assert_eq!(hue_saturation_to_rgb(1.0, 1.0), Rgb { r: 1.0, g: 0.0, b: 0.0 });
        let green = hue_saturation_to_rgb(1.0 / 3.0, 1.0);
        assert!(close(green.r, 0.0) && close(green.g, 1.0) && close(green.b, 0.0));
        let blue = hue_saturation_to_rgb(2.0 / 3.0, 1.0);
        assert!(close(blue.r, 0.0) && close(blue.g, 0.0) && close(blue.b, 1.0));
        assert_eq!(hue_saturation_to_rgb(0.42, 0.0), Rgb { r: 1.0, g: 1.0, b: 1.0 });
    }

    #[test]
    fn lightness_curve_matches_cie_reference_points() {
        assert_eq!(luminance_from_lightness(0.0), 0.0);
        assert!(close(luminance_from_lightness(1.0), 1.0));
        // L* = 50 is 18.42 % luminance: the photographers' "middle grey".
        assert!((luminance_from_lightness(0.5) - 0.184_186).abs() < 1e-6);
        // Continuous where the linear segment meets the cube (L* = 8).
        let below = luminance_from_lightness(0.08 - 1e-12);
        let above = luminance_from_lightness(0.08 + 1e-12);
        assert!((below - above).abs() < 1e-9);
    }

    #[test]
    fn lightness_round_trips() {
        for i in 0..=1000 {
            let l = f64::from(i) / 1000.0;
            assert!(close(lightness_from_luminance(luminance_from_lightness(l)), l));
        }
    }

    #[test]
    fn dimming_is_monotonic_and_fine_grained_at_the_bottom() {
        // Every 0.1 % slider step down to 1 % changes the duty by less than 0.02 % of full
        // scale: no visible jump, unlike LAMPI's 8-bit linear 1/255 = 0.39 % steps.
        let mut previous = 0.0;
        for i in 1..=100 {
            let duty = luminance_from_lightness(f64::from(i) / 10_000.0 * 10.0);
            assert!(duty > previous);
            assert!(duty - previous < 0.0002, "step {i}: {}", duty - previous);
            previous = duty;
        }
    }

    #[test]
    fn off_is_dark_whatever_the_colour() {
        assert_eq!(duty_for(false, 0.3, 1.0, 1.0), Rgb::OFF);
        assert_eq!(duty_for(true, 0.3, 1.0, 0.0), Rgb::OFF);
    }

    #[test]
    fn half_brightness_green_is_perceptual_middle() {
        let duty = duty_for(true, 0.33, 1.0, 0.5);
        assert!(duty.r < 0.01 && duty.b.abs() < 1e-12);
        assert!((duty.g - 0.184_186).abs() < 1e-6);
        // On a screen that looks like half-bright green.
        assert_eq!(
            Rgb {
                r: 0.0,
                g: duty.g,
                b: 0.0
            }
            .to_srgb8(),
            [0, 119, 0]
        );
    }

    #[test]
    fn blackbody_runs_from_red_through_white_to_blue() {
        let candle = blackbody(1000.0);
        assert_eq!(candle.r, 1.0);
        assert!(candle.g < 0.1 && candle.b == 0.0, "{candle:?}");
        let daylight = blackbody(6600.0);
        assert!(
            daylight.r > 0.99 && daylight.g > 0.9 && daylight.b > 0.9,
            "{daylight:?}"
        );
        let sky = blackbody(12_000.0);
        assert!(sky.b == 1.0 && sky.r < 0.7, "{sky:?}");
    }

    #[test]
    fn state_for_inverts_duty_for() {
        for (hue, saturation, brightness) in [(0.0, 1.0, 0.5), (0.6, 0.3, 0.9), (0.95, 0.7, 0.05), (0.2, 0.0, 1.0)] {
            let (h, s, b) = state_for(duty_for(true, hue, saturation, brightness));
            let hue_ok = saturation == 0.0 || close(h, hue);
            assert!(
                hue_ok && close(s, saturation) && close(b, brightness),
                "{hue} {saturation} {brightness}: {h} {s} {b}"
            );
        }
    }
}
