//! The little the daemon asks of the operating system directly, beyond files and sockets.
//!
//! - [`net`]: the machine's network addresses (the one `unsafe` FFI call).

pub mod net;
