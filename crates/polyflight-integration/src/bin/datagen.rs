//! `flight-test-integration-datagen DIR`: writes the JSON round trip's data sets into `DIR`
//! (one `<name>.json` per data set) and prints their paths.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: flight-test-integration-datagen DIR");
        return ExitCode::from(2);
    };
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    match polyflight_integration::datagen::write_all(&dir) {
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
