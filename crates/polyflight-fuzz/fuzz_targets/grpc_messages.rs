#![no_main]
// See polyflight_grpc::fuzzing::grpc_messages.
libfuzzer_sys::fuzz_target!(|data: &[u8]| polyflight_grpc::fuzzing::grpc_messages(data));
