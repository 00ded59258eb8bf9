//! The pure core: everything that decides, with no I/O, no tokio and no clock reads.

pub mod alarm;
pub mod analytics;
pub mod backoff;
pub mod colour;
pub mod fade;
pub mod firmware;
pub mod lamp;
pub mod light;
pub mod natural;
pub mod pairing;
pub mod report;
pub mod schedule;
pub mod schema;
pub mod screen;
pub mod shadow;
pub mod sun;
