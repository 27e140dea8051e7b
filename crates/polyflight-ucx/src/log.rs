//! Warnings about refused input and exhausted limits, rate-limited by
//! [`polyflight_core::warn_limit`] so that a peer cannot flood the log.

use polyflight_core::warn_limit::allowed;
use std::fmt;

/// A limit refused something on a connection with `peer` (`kind` names the limit).
pub(crate) fn limit_reached(kind: &'static str, peer: &dyn fmt::Debug, detail: fmt::Arguments<'_>) {
    if let Some(left_out) = allowed(kind) {
        tracing::warn!(limit = kind, transport = "ucx", ?peer, left_out, "{detail}");
    }
}

/// A peer sent something malformed or not allowed.
pub(crate) fn refused_input(kind: &'static str, peer: &dyn fmt::Debug, detail: fmt::Arguments<'_>) {
    if let Some(left_out) = allowed(kind) {
        tracing::warn!(
            refused = kind,
            transport = "ucx",
            ?peer,
            left_out,
            "{detail}"
        );
    }
}
