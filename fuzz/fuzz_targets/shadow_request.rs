//! Any bytes on a shadow topic: the lamp answers, never panics, and a rejected update leaves
//! the document exactly as it was.
#![no_main]

use std::time::Instant;

use lampi::core::device::{Device, Identity, ShadowOp};
use lampi::core::light::LightState;
use lampi::core::shadow::Shadow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let identity = Identity {
        thing: "fuzz".into(),
        firmware: "0".into(),
        role: Default::default(),
    };
    let mut device = Device::new(LightState::default(), Shadow::default(), identity, std::time::Duration::ZERO, now);
    device.tick(now, 1);
    let op = [ShadowOp::Update, ShadowOp::Get, ShadowOp::Delete][usize::from(selector % 3)];
    let before = device.shadow().clone();
    let messages = device.shadow_request(op, payload, now, 2);
    assert!(!messages.is_empty(), "every request is answered");
    if messages[0].payload.get("code").is_some() {
        assert_eq!(device.shadow(), &before, "a rejected request changed the shadow");
    }
    // Whatever was accepted is still a valid, bounded document.
    assert!(device.shadow().state_bytes() <= lampi::core::shadow::MAX_STATE_BYTES);
});
