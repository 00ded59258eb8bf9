//! Any bytes on `lamp/set_config`: parsed or refused with a reason, never a panic, and an
//! accepted message only ever carries in-range values.
#![no_main]

use lampi::protocol::lampi::parse_set_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_set_config(data) {
        Ok(set) => {
            for value in [set.change.hue, set.change.saturation, set.change.brightness]
                .into_iter()
                .flatten()
            {
                assert!((0.0..=1.0).contains(&value.get()));
            }
        }
        Err(refused) => assert!(!refused.reason().is_empty()),
    }
});
