pub mod client;
pub mod proxy;
pub mod upstreams;
