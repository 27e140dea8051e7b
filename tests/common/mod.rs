//! Shared test support: the test service, data generators, and the per-transport environment
//! (server + client) that every conformance case runs in.

#![allow(dead_code, unused_imports)] // each test binary uses a different subset

pub mod data;
pub mod env;
pub mod mem;
pub mod process;
pub mod service;
#[cfg(unix)]
pub mod tls;

pub use data::*;
pub use env::*;
pub use service::*;
