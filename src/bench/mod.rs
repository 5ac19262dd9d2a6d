//! The load tool behind `pec-proxy-bench` (see `benches/README.md`).
//! It lives beside the library rather than in it: nothing here is part of
//! the proxy, and the binary is the only user.

pub mod conn;
pub mod dialog;
pub mod floor;
pub mod modes;
pub mod proc_stats;
pub mod sim;
pub mod stats;
