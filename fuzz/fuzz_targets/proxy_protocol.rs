#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pec_proxy_fuzz::proxy_protocol(data));
