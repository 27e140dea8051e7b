//! The UCX C functions we call, loaded from `libucp` at run time.
//!
//! `ucx1-sys` gives us the types (bindgen structs, enums, constants) and builds the vendored UCX,
//! but its `-lucp` would make every binary that uses this crate depend on `libucp.so.0` from a
//! build folder under `target/`, so a binary started outside cargo could not even start
//! ("libucp.so.0: cannot open shared object file"). And a library's build script cannot give the
//! final binaries of *other* packages an rpath (`cargo:rustc-link-arg` applies only to the
//! package's own targets). So we never reference a UCX symbol at link time: the linker drops the
//! unused `-lucp` (rustc links with `--as-needed`) and this module `dlopen`s the library on first
//! use, by absolute path. See [`library_candidates`] for where it looks, and `docs/ucx.md`.
//!
//! Each function pointer's type is checked at compile time against the `ucx1-sys` declaration.

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use ucx1_sys::{
    size_t, ucp_am_handler_param_t, ucp_config_t, ucp_conn_request_attr_t, ucp_conn_request_h,
    ucp_context_h, ucp_ep_h, ucp_ep_params_t, ucp_listener_attr_t, ucp_listener_h,
    ucp_listener_params_t, ucp_params_t, ucp_request_param_t, ucp_worker_h, ucp_worker_params_t,
    ucs_status_ptr_t, ucs_status_t,
};

use super::status::{Status, UcsError};

/// Environment variable naming a directory that holds `libucp.so.0`, tried before anything else.
pub const LIB_DIR_ENV: &str = "POLYFLIGHT_UCX_LIB_DIR";

macro_rules! ucx_api {
    ($( $name:ident : fn($($arg:ty),*) $(-> $ret:ty)?; )*) => {
        /// The UCX functions, resolved from the loaded library.
        pub(crate) struct Api {
            $( pub(crate) $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
            /// Where the library was loaded from, for logs and errors.
            pub(crate) path: PathBuf,
            /// Keeps the library mapped; it is never unloaded (UCX does not support that).
            _library: Library,
        }

        // Compile-time check that every pointer type above is exactly the ucx1-sys declaration.
        // A constant of unit type references the functions without emitting a symbol reference.
        const _: () = {
            $( let _: unsafe extern "C" fn($($arg),*) $(-> $ret)? = ucx1_sys::$name; )*
        };

        impl Api {
            /// Resolves every function from `library`.
            ///
            /// # Safety
            /// `library` must be a UCX `libucp` whose ABI matches the `ucx1-sys` bindings.
            unsafe fn resolve(library: Library, path: PathBuf) -> Result<Api, String> {
                Ok(Api {
                    $( $name: {
                        let name = concat!(stringify!($name), "\0");
                        // SAFETY: the symbol is the C function of this name, whose signature is the
                        // one checked against ucx1-sys above.
                        let symbol = unsafe {
                            library.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(name.as_bytes())
                        };
                        *symbol.map_err(|e| format!("{}: {e}", stringify!($name)))?
                    }, )*
                    path,
                    _library: library,
                })
            }
        }
    };
}

ucx_api! {
    ucp_get_version: fn(*mut c_uint, *mut c_uint, *mut c_uint);
    ucp_config_read: fn(*const c_char, *const c_char, *mut *mut ucp_config_t) -> ucs_status_t;
    ucp_config_release: fn(*mut ucp_config_t);
    ucp_config_modify: fn(*mut ucp_config_t, *const c_char, *const c_char) -> ucs_status_t;
    ucp_init_version: fn(c_uint, c_uint, *const ucp_params_t, *const ucp_config_t, *mut ucp_context_h) -> ucs_status_t;
    ucp_cleanup: fn(ucp_context_h);
    ucp_worker_create: fn(ucp_context_h, *const ucp_worker_params_t, *mut ucp_worker_h) -> ucs_status_t;
    ucp_worker_destroy: fn(ucp_worker_h);
    ucp_worker_progress: fn(ucp_worker_h) -> c_uint;
    ucp_worker_get_efd: fn(ucp_worker_h, *mut c_int) -> ucs_status_t;
    ucp_worker_arm: fn(ucp_worker_h) -> ucs_status_t;
    ucp_worker_set_am_recv_handler: fn(ucp_worker_h, *const ucp_am_handler_param_t) -> ucs_status_t;
    ucp_listener_create: fn(ucp_worker_h, *const ucp_listener_params_t, *mut ucp_listener_h) -> ucs_status_t;
    ucp_listener_destroy: fn(ucp_listener_h);
    ucp_listener_query: fn(ucp_listener_h, *mut ucp_listener_attr_t) -> ucs_status_t;
    ucp_listener_reject: fn(ucp_listener_h, ucp_conn_request_h) -> ucs_status_t;
    ucp_conn_request_query: fn(ucp_conn_request_h, *mut ucp_conn_request_attr_t) -> ucs_status_t;
    ucp_ep_create: fn(ucp_worker_h, *const ucp_ep_params_t, *mut ucp_ep_h) -> ucs_status_t;
    ucp_ep_close_nbx: fn(ucp_ep_h, *const ucp_request_param_t) -> ucs_status_ptr_t;
    ucp_ep_flush_nbx: fn(ucp_ep_h, *const ucp_request_param_t) -> ucs_status_ptr_t;
    ucp_ep_print_info: fn(ucp_ep_h, *mut ucx1_sys::FILE);
    ucp_am_send_nbx: fn(ucp_ep_h, c_uint, *const c_void, size_t, *const c_void, size_t, *const ucp_request_param_t) -> ucs_status_ptr_t;
    ucp_am_recv_data_nbx: fn(ucp_worker_h, *mut c_void, *mut c_void, size_t, *const ucp_request_param_t) -> ucs_status_ptr_t;
    ucp_am_data_release: fn(ucp_worker_h, *mut c_void);
    ucp_request_free: fn(*mut c_void);
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// The loaded UCX API, loading it on first use.
///
/// A library that cannot be loaded is `UCS_ERR_NO_DEVICE`: UCX has nothing to reach peers with
/// here, which the edge reports as UNAVAILABLE, as for any unreachable peer.
pub(crate) fn api() -> Result<&'static Api, UcsError> {
    API.get_or_init(load)
        .as_ref()
        .map_err(|message| UcsError::new(message.clone(), Status::NO_DEVICE))
}

/// Where `libucp.so.0` is looked for, in order:
///
/// 1. `$POLYFLIGHT_UCX_LIB_DIR/libucp.so.0`, when that variable is set (then only there);
/// 2. the vendored UCX that `ucx1-sys` built for this build, under `target/<profile>/build/`
///    (the build directory is recorded at compile time by our build script; the newest
///    `ucx1-sys-*/out/lib` wins if there are several);
/// 3. `libucp.so.0` through the dynamic loader's normal search (`LD_LIBRARY_PATH`, system UCX).
pub fn library_candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(LIB_DIR_ENV) {
        return vec![Path::new(&dir).join("libucp.so.0")];
    }
    let mut candidates = Vec::new();
    if let Some(build_dir) = option_env!("POLYFLIGHT_UCX_BUILD_DIR") {
        candidates.extend(vendored_libraries(Path::new(build_dir)));
    }
    candidates.push(PathBuf::from("libucp.so.0"));
    candidates
}

/// `ucx1-sys-*/out/lib/libucp.so.0` under a cargo build directory, newest first.
fn vendored_libraries(build_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(build_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("ucx1-sys-"))
        .map(|entry| entry.path().join("out/lib/libucp.so.0"))
        .filter_map(|lib| {
            let modified = std::fs::metadata(&lib).and_then(|m| m.modified()).ok()?;
            Some((modified, lib))
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found.into_iter().map(|(_, lib)| lib).collect()
}

fn load() -> Result<Api, String> {
    let mut failures = Vec::new();
    for candidate in library_candidates() {
        // SAFETY: loading UCX runs its constructors, which only initialise UCX's own state.
        // RTLD_GLOBAL mirrors a normal link, which UCX's memory hooks and modules expect.
        let library = unsafe { Library::open(Some(&candidate), RTLD_NOW | RTLD_GLOBAL) };
        match library {
            Ok(library) => {
                // SAFETY: the library is the UCX 1.x libucp these bindings were generated for
                // (checked by version below before any other call).
                let api = unsafe { Api::resolve(library, candidate.clone()) }?;
                check_version(&api)?;
                tracing::debug!(path = %candidate.display(), "loaded UCX");
                return Ok(api);
            }
            Err(e) => failures.push(format!("{}: {e}", candidate.display())),
        }
    }
    Err(format!(
        "cannot load the UCX library (set {LIB_DIR_ENV} to the directory holding libucp.so.0); tried: {}",
        failures.join("; ")
    ))
}

fn check_version(api: &Api) -> Result<(), String> {
    let (mut major, mut minor, mut release) = (0, 0, 0);
    // SAFETY: plain out-parameters.
    unsafe { (api.ucp_get_version)(&mut major, &mut minor, &mut release) };
    if major != ucx1_sys::UCP_API_MAJOR || minor < ucx1_sys::UCP_API_MINOR {
        return Err(format!(
            "{} is UCX {major}.{minor}.{release}; polyflight-ucx needs {}.{} or a later 1.x",
            api.path.display(),
            ucx1_sys::UCP_API_MAJOR,
            ucx1_sys::UCP_API_MINOR
        ));
    }
    Ok(())
}
