#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sesphr_fuzz::hybrid(data));
