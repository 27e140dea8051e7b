//! `flight-test-integration-datagen [--ipc] DIR`: writes the JSON round trip's data sets into
//! `DIR` (one `<name>.json` per data set) and prints their paths. With `--ipc`, each data set
//! also gets `<name>.arrow_file`, its data as an Arrow IPC file read back from the JSON, for
//! peers that cannot read integration JSON (pyarrow).

/// The allocator of every binary polyflight ships (see the `polyflight` command).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ipc = args.iter().any(|a| a == "--ipc");
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--ipc").collect();
    let [dir] = rest.as_slice() else {
        eprintln!("usage: flight-test-integration-datagen [--ipc] DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    let written = polyflight_integration::datagen::write_all(&dir).and_then(|paths| {
        let mut all = Vec::with_capacity(paths.len() * 2);
        for path in paths {
            if ipc {
                all.push(polyflight_integration::pyarrow::write_ipc_twin(&path)?);
            }
            all.push(path);
        }
        Ok(all)
    });
    match written {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("flight-test-integration-datagen: {err}");
            ExitCode::FAILURE
        }
    }
}
