#![no_main]
// See polyflight_core::fuzzing::location_parse.
libfuzzer_sys::fuzz_target!(|data: &[u8]| polyflight_core::fuzzing::location_parse(data));
