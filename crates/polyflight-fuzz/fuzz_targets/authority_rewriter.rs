#![no_main]
// See polyflight_unix::fuzzing::authority_rewriter.
libfuzzer_sys::fuzz_target!(|data: &[u8]| polyflight_unix::fuzzing::authority_rewriter(data));
