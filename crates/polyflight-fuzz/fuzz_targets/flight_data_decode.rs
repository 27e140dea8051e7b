#![no_main]
// See polyflight_core::fuzzing::flight_data_decode.
libfuzzer_sys::fuzz_target!(|data: &[u8]| polyflight_core::fuzzing::flight_data_decode(data));
