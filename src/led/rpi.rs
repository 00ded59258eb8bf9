//! The real LED on a Raspberry Pi, through rppal.
//!
//! A pin that has a SoC PWM channel (and whose channel is still free) gets hardware PWM:
//! jitter-free and fine-grained, which is what keeps the bottom of the dimming range smooth.
//! The others fall back to rppal's software PWM. rppal is no longer maintained upstream; this
//! file is the only one that knows it exists.

use rppal::gpio::{Gpio, OutputPin};
use rppal::pwm::{Channel, Polarity, Pwm};
use rppal::system::{DeviceInfo, Model};

use super::{Led, LedError};
use crate::config::LedConfig;
use crate::core::colour::Rgb;

enum Output {
    Hardware(Pwm),
    Software(OutputPin),
}

pub struct RpiLed {
    outputs: [Output; 3],
    frequency_hz: f64,
    active_low: bool,
}

fn error(message: impl std::fmt::Display) -> LedError {
    LedError {
        backend: "rpi",
        message: message.to_string(),
    }
}

/// Which PWM channel a BCM pin is routed to (with the `pwm-2chan` overlay on Pi 1–4, or the
/// RP1's channels on a Pi 5).
fn hardware_channel(model: Model, pin: u8) -> Option<Channel> {
    let pi5 = matches!(
        model,
        Model::RaspberryPi5
            | Model::RaspberryPi500
            | Model::RaspberryPiComputeModule5
            | Model::RaspberryPiComputeModule5Lite
    );
    match (pi5, pin) {
        (_, 12) => Some(Channel::Pwm0),
        (_, 13) => Some(Channel::Pwm1),
        (false, 18) => Some(Channel::Pwm0),
        (false, 19) => Some(Channel::Pwm1),
        (true, 18) => Some(Channel::Pwm2),
        (true, 19) => Some(Channel::Pwm3),
        _ => None,
    }
}

impl RpiLed {
    pub fn open(config: &LedConfig) -> Result<RpiLed, LedError> {
        let model = DeviceInfo::new().map_err(error)?.model();
        let gpio = Gpio::new().map_err(error)?;
        let polarity = if config.active_low {
            Polarity::Inverse
        } else {
            Polarity::Normal
        };
        let mut taken: Vec<Channel> = Vec::new();
        let pins = [config.pins.red, config.pins.green, config.pins.blue];
        let mut open_one = |pin: u8| -> Result<Output, LedError> {
            let channel = hardware_channel(model, pin).filter(|c| config.hardware_pwm && !taken.contains(c));
            if let Some(channel) = channel {
                match Pwm::with_frequency(channel, config.frequency_hz, 0.0, polarity, true) {
                    Ok(mut pwm) => {
                        pwm.set_reset_on_drop(false);
                        taken.push(channel);
                        tracing::info!(pin, ?channel, "LED pin on hardware PWM");
                        return Ok(Output::Hardware(pwm));
                    }
                    Err(e) => tracing::warn!(pin, ?channel, "hardware PWM unavailable ({e}); using software PWM"),
                }
            }
            let mut out = gpio.get(pin).map_err(error)?.into_output_low();
            out.set_reset_on_drop(false);
            tracing::info!(pin, "LED pin on software PWM");
            Ok(Output::Software(out))
        };
        let outputs = [open_one(pins[0])?, open_one(pins[1])?, open_one(pins[2])?];
        Ok(RpiLed {
            outputs,
            frequency_hz: config.frequency_hz,
            active_low: config.active_low,
        })
    }
}

impl Led for RpiLed {
    fn set(&mut self, duty: Rgb) -> Result<(), LedError> {
        for (output, value) in self.outputs.iter_mut().zip([duty.r, duty.g, duty.b]) {
            let value = value.clamp(0.0, 1.0);
            match output {
                // Hardware polarity already inverts the signal.
                Output::Hardware(pwm) => pwm.set_duty_cycle(value).map_err(error)?,
                Output::Software(pin) => {
                    let level = if self.active_low { 1.0 - value } else { value };
                    pin.set_pwm_frequency(self.frequency_hz, level).map_err(error)?
                }
            }
        }
        Ok(())
    }

    fn shut_down(&mut self, keep_lit: bool) -> Result<(), LedError> {
        if keep_lit {
            // Software PWM is a thread of this process and dies with it; hardware PWM keeps
            // running by itself.
            if self.outputs.iter().any(|o| matches!(o, Output::Software(_))) {
                tracing::info!("software-PWM pins cannot stay lit after exit; they hold their last level");
            }
            return Ok(());
        }
        self.set(Rgb::OFF)
    }
}
