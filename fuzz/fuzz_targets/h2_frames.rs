//! libFuzzer entry point; the properties checked are in `ruwsgi_fuzz::h2_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ruwsgi_fuzz::h2_frames(data));
