//! libFuzzer entry point; the properties checked are in `ruwsgi_fuzz::spool_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ruwsgi_fuzz::spool_file(data));
