//! The UCP context: one per server or client, shared by all of its workers (threads).

use std::ffi::CString;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard};
use ucx1_sys::{ucp_config_t, ucp_context_h, ucp_feature, ucp_params_field, ucp_params_t};

use super::status::{Status, UcsError};
use super::sys::{self, Api};

type Result<T, E = UcsError> = std::result::Result<T, E>;

/// A UCP context with the active message and wakeup features.
///
/// UCX reads its `UCX_*` environment variables (e.g. `UCX_TLS`) when the context is created.
/// The context is shared by workers living on different threads, so it is created with
/// `mt_workers_shared`; it is cleaned up when the last worker (and handle) is gone.
pub struct Context {
    api: &'static Api,
    handle: ucp_context_h,
    /// Serialises worker creation and destruction, which touch the context's shared state.
    lifecycle: Mutex<()>,
}

// SAFETY: a context created with mt_workers_shared may be used from several threads; the
// operations we do on it from more than one thread (worker create/destroy) are also serialised.
unsafe impl Send for Context {}
// SAFETY: see Send.
unsafe impl Sync for Context {}

impl Context {
    /// Creates a context, loading the UCX library if needed.
    pub fn new() -> Result<Arc<Context>> {
        let api = sys::api()?;
        let mut config: *mut ucp_config_t = ptr::null_mut();
        // SAFETY: NULL prefix and file mean "the UCX_ environment"; config is an out-parameter.
        let status = unsafe { (api.ucp_config_read)(ptr::null(), ptr::null(), &mut config) };
        Status::from(status).check("ucp_config_read")?;
        apply_defaults(api, config);

        let name = CString::new("polyflight")
            .map_err(|e| UcsError::new(e.to_string(), Status::INVALID_PARAM))?;
        // SAFETY: ucp_params_t is a plain C struct of integers, pointers and nullable function
        // pointers; all-zero is a valid value, and only fields named in field_mask are read.
        let mut params: ucp_params_t = unsafe { std::mem::zeroed() };
        params.field_mask = (ucp_params_field::UCP_PARAM_FIELD_FEATURES
            | ucp_params_field::UCP_PARAM_FIELD_MT_WORKERS_SHARED
            | ucp_params_field::UCP_PARAM_FIELD_NAME)
            .0 as u64;
        params.features = (ucp_feature::UCP_FEATURE_AM | ucp_feature::UCP_FEATURE_WAKEUP).0 as u64;
        params.mt_workers_shared = 1;
        params.name = name.as_ptr();

        let mut handle: ucp_context_h = ptr::null_mut();
        // SAFETY: params and config are valid for the call; handle is an out-parameter.
        let status = unsafe {
            (api.ucp_init_version)(
                ucx1_sys::UCP_API_MAJOR,
                ucx1_sys::UCP_API_MINOR,
                &params,
                config,
                &mut handle,
            )
        };
        // SAFETY: config came from ucp_config_read and is released once, here.
        unsafe { (api.ucp_config_release)(config) };
        Status::from(status).check("ucp_init")?;
        if handle.is_null() {
            return Err(UcsError::new(
                "ucp_init returned no context",
                Status::NO_RESOURCE,
            ));
        }
        tracing::debug!(library = %api.path.display(), "UCX context created");
        Ok(Arc::new(Context {
            api,
            handle,
            lifecycle: Mutex::new(()),
        }))
    }

    pub(crate) fn api(&self) -> &'static Api {
        self.api
    }

    pub(crate) fn handle(&self) -> ucp_context_h {
        self.handle
    }

    pub(crate) fn lifecycle_lock(&self) -> MutexGuard<'_, ()> {
        // a poisoned lock only means another thread panicked while holding it; the guarded
        // state is UCX's, which a Rust panic cannot have left half-updated
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// UCX settings we change from UCX's defaults: (name as `ucp_config_modify` takes it, value,
/// variables that mean the user chose for themselves, the first being the setting's own
/// environment variable). Our endpoints use peer error handling, and UCX leaves the shared
/// memory transports posix and sysv out of such endpoints unless they claim error handling support.
/// The connection manager's TCP socket still detects a peer that goes away, so claiming it is safe
/// here, and without it two processes on one host would exchange everything over TCP.
///
/// The shared memory receive FIFO: UCX's default of 64 elements (each carrying at most one 8 KiB
/// segment of a message) is about 516 KiB of message in flight. A large scatter-gather message
/// (and, without the CMA setting below, every large message) crosses as copied 8 KiB segments
/// through that FIFO, and with 64 of them the sender waits on the receiver several times per
/// megabyte: a 1 MiB DoGet ran at a quarter of its 128 KiB speed. 1024 elements hold
/// 8 MiB in flight; the FIFO itself is 128 bytes an element (128 KiB), the segments come from the
/// receive pool as they are used. Measured in docs/ucx.md.
///
/// The rendezvous scheme: with UCX's `auto`, a large contiguous message (an Arrow IPC body read
/// from a file, or received whole by another transport) goes by `put_zcopy`, and on one host the
/// only lane offering it is TCP, so those bodies crossed over the loopback socket while segmented
/// ones took the shared memory path: DoGet of a page-cached file ran at about half the speed of
/// the same batches from memory, with `tcp_sendmsg` the server's top symbol. `get_zcopy` is what
/// `auto` prefers where a lane offers it (RDMA, CMA); where none does, the rendezvous data goes
/// as active messages over the fastest lane, shared memory on one host. Measured in docs/ucx.md.
///
/// CMA memory invalidation: UCX 1.12 gives an endpoint with peer error handling a rendezvous lane
/// only on a memory domain that claims it can invalidate memory, so that after a failure the
/// peer can no longer reach a buffer the application has been handed back; the CMA domain
/// claims it only when told to (`UCX_CMA_MEMORY_INVALIDATE`; `ucp_config_modify` takes the
/// domain's own field name, which no other memory domain of UCX 1.12 has). With it, a contiguous
/// body crosses to another process on the host as one `process_vm_readv` by the receiver,
/// straight from the sender's buffer, instead of 8 KiB pieces copied through the shared memory
/// FIFO: DoExchange of 16 MiB echoed bodies with 4 streams went from 1.6 to 2.6–2.8 GB/s. Under
/// `get_zcopy` the peer only ever reads our buffers, never writes into them, so a peer that is
/// still reading after a failure can corrupt nothing of ours; that is why it is applied only
/// while the scheme is `get_zcopy` (see [`When::SharedMemoryGetZcopy`]).
///
/// Address reuse for listeners: a server restarted on its port while connections of the old
/// process linger (a crash with clients connected leaves them in TIME_WAIT for a minute) could
/// not listen again (`EADDRINUSE`); every TCP server sets `SO_REUSEADDR` for this, and polyflight's
/// gRPC listeners have it. It never lets two processes listen on one port at once. (The name
/// `ucp_config_modify` takes is the connection manager table's, `CM_` included.)
const DEFAULTS: &[(&str, &str, &[&str], When)] = &[
    (
        "MM_ERROR_HANDLING",
        "y",
        &[
            "UCX_MM_ERROR_HANDLING",
            "UCX_POSIX_ERROR_HANDLING",
            "UCX_SYSV_ERROR_HANDLING",
        ],
        When::SharedMemory,
    ),
    (
        "MM_FIFO_SIZE",
        "1024",
        &[
            "UCX_MM_FIFO_SIZE",
            "UCX_POSIX_FIFO_SIZE",
            "UCX_SYSV_FIFO_SIZE",
        ],
        When::SharedMemory,
    ),
    (
        "RNDV_SCHEME",
        "get_zcopy",
        &["UCX_RNDV_SCHEME"],
        When::SharedMemory,
    ),
    (
        "MEMORY_INVALIDATE",
        "y",
        &["UCX_CMA_MEMORY_INVALIDATE"],
        When::SharedMemoryGetZcopy,
    ),
    (
        "CM_REUSEADDR",
        "y",
        &["UCX_TCP_CM_REUSEADDR", "UCX_RDMA_CM_REUSEADDR"],
        When::Always,
    ),
];

/// When a default of [`DEFAULTS`] applies, besides the user not having set it.
#[derive(Debug, Clone, Copy)]
enum When {
    Always,
    /// While `UCX_TLS` lets shared memory in (UCX warns about settings of transports that are
    /// not loaded).
    SharedMemory,
    /// With shared memory, and while the rendezvous scheme is `get_zcopy` (ours, or the user's).
    SharedMemoryGetZcopy,
}

/// Whether a default applies: the user has not set it in any spelling, and its condition holds.
fn applies(when: When, user_vars: &[&str]) -> bool {
    if user_vars.iter().any(|var| std::env::var_os(var).is_some()) {
        return false;
    }
    match when {
        When::Always => true,
        When::SharedMemory => shared_memory_enabled(),
        When::SharedMemoryGetZcopy => {
            shared_memory_enabled()
                && std::env::var("UCX_RNDV_SCHEME")
                    .map(|scheme| scheme.trim().eq_ignore_ascii_case("get_zcopy"))
                    .unwrap_or(true)
        }
    }
}

/// The UCX settings polyflight applies to its contexts, as `UCX_*` environment variables, minus
/// those the user has set (in any of their spellings) — for running UCX's own tools
/// (`ucx_perftest`) under the configuration polyflight's endpoints get.
pub fn context_defaults() -> Vec<(String, String)> {
    DEFAULTS
        .iter()
        .filter(|(_, _, user_vars, when)| applies(*when, user_vars))
        .filter_map(|(_, value, user_vars, _)| {
            Some((user_vars.first()?.to_string(), (*value).to_string()))
        })
        .collect()
}

/// Whether `UCX_TLS` leaves the shared memory transports in (UCX warns about settings of
/// transports that are not loaded).
fn shared_memory_enabled() -> bool {
    let Ok(tls) = std::env::var("UCX_TLS") else {
        return true;
    };
    tls.starts_with('^')
        || tls.split(',').any(|name| {
            let name = name.trim().split(':').next().unwrap_or("");
            ["all", "sm", "shm", "mm", "posix", "sysv"].contains(&name)
        })
}

fn apply_defaults(api: &Api, config: *mut ucp_config_t) {
    for (name, value, user_vars, when) in DEFAULTS {
        if !applies(*when, user_vars) {
            continue;
        }
        let (Ok(c_name), Ok(c_value)) = (CString::new(*name), CString::new(*value)) else {
            continue;
        };
        // SAFETY: config is a live configuration; name and value are NUL-terminated strings.
        let status = unsafe { (api.ucp_config_modify)(config, c_name.as_ptr(), c_value.as_ptr()) };
        if let Err(e) = Status::from(status).check("ucp_config_modify") {
            tracing::debug!(name, value, error = %e, "UCX default not applied");
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: every worker holds an Arc<Context>, so none is left; the handle is valid.
        unsafe { (self.api.ucp_cleanup)(self.handle) };
    }
}
