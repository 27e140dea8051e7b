//! Records where cargo puts build-script outputs, so the UCX library that `ucx1-sys` builds there
//! can be found and loaded at run time (see `src/ucp/sys.rs` and `docs/ucx.md`).
//!
//! Cargo does not order this script after `ucx1-sys`'s (that crate declares no `links` key), so
//! the library may not exist yet while this runs; we record only the directory that will hold it:
//! `OUT_DIR` is `<target>/<profile>/build/polyflight-ucx-<hash>/out`, and `ucx1-sys` builds into
//! a sibling `ucx1-sys-<hash>/out/lib`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    if let Some(build_dir) = Path::new(&out_dir).parent().and_then(Path::parent) {
        println!(
            "cargo:rustc-env=POLYFLIGHT_UCX_BUILD_DIR={}",
            build_dir.display()
        );
    }
}
