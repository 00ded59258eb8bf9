//! Any bytes on a shadow topic, for a lamp hosting its shadow and for one following AWS IoT's:
//! the lamp never panics; as host it answers every request and a rejected one leaves the
//! document exactly as it was; as client it only ever adopts a desired state that is valid.
#![no_main]

use std::time::{Duration, Instant};

use lampi::core::device::{Device, Identity, ShadowOp, ShadowRole, ShadowTopic};
use lampi::core::light::LightState;
use lampi::core::schema;
use lampi::core::shadow::{MAX_STATE_BYTES, Shadow};
use libfuzzer_sys::fuzz_target;

const CLOUD: [ShadowTopic; 5] = [
    ShadowTopic::GetAccepted,
    ShadowTopic::GetRejected,
    ShadowTopic::UpdateDelta,
    ShadowTopic::UpdateAccepted,
    ShadowTopic::UpdateRejected,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let role = if selector & 0x80 == 0 { ShadowRole::Host } else { ShadowRole::Client };
    let identity = Identity {
        thing: "fuzz".into(),
        firmware: "0".into(),
        role,
    };
    let mut device = Device::new(LightState::default(), Shadow::default(), Default::default(), identity, Duration::ZERO, now);
    device.tick(now, 1);
    match role {
        ShadowRole::Host => {
            let op = [ShadowOp::Update, ShadowOp::Get, ShadowOp::Delete][usize::from(selector % 3)];
            let before = device.shadow().clone();
            let messages = device.shadow_request(op, payload, now, 2);
            assert!(!messages.is_empty(), "every request is answered");
            if messages[0].payload.get("code").is_some() {
                assert_eq!(device.shadow(), &before, "a rejected request changed the shadow");
            }
            assert!(device.shadow().state_bytes() <= MAX_STATE_BYTES);
        }
        ShadowRole::Client => {
            let topic = CLOUD[usize::from(selector & 0x7f) % CLOUD.len()];
            device.cloud_message(topic, payload, now, 2);
            let desired = &device.shadow().desired;
            assert!(schema::validate(desired, &Default::default()).is_ok(), "adopted an invalid desired state");
        }
    }
    // Whatever alarms and natural-light settings were accepted, the schedulers take them.
    for seconds in [1, 600, 86_400] {
        device.tick(now + Duration::from_secs(seconds), 1_795_000_000 + seconds);
    }
});
