//! The shared test harness. Each test binary uses a part of it.
#![allow(dead_code)]

pub mod client;
pub mod fake_imap;
pub mod fake_pop3;
pub mod fake_smtp;
pub mod hostile;
pub mod metrics;
pub mod operator;
pub mod postgres;
pub mod proxy;
pub mod smtp;
pub mod upstreams;
