#![no_main]
// See polyflight_ucx::fuzzing::ucx_frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| polyflight_ucx::fuzzing::ucx_frames(data));
