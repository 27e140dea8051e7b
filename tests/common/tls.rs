//! Certificates on disk for child processes: a [`LoopbackPki`] written as PEM files into a
//! directory of its own (mode 0700, the keys are private), removed when dropped.

use polyflight::LoopbackEndpoint;
use polyflight_grpc::tls::LoopbackPki;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh CA with a server certificate, its PEM files, and endpoints that use them.
pub struct PkiFiles {
    pub pki: LoopbackPki,
    dir: PathBuf,
}

impl PkiFiles {
    pub fn generate() -> PkiFiles {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let pki = LoopbackPki::generate().expect("certificates minted");
        let dir = std::env::temp_dir().join(format!(
            "polyflight-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .expect("certificate directory");
        let files = PkiFiles { pki, dir };
        for (name, pem) in [
            ("ca.pem", &files.pki.ca_pem),
            ("server.pem", &files.pki.server_cert_pem),
            ("server.key", &files.pki.server_key_pem),
        ] {
            std::fs::write(files.dir.join(name), pem).expect("certificate file");
        }
        files
    }

    /// The CA certificate a client trusts.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's certificate and key.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// A `grpc+tls` loopback endpoint with these certificates (server and client in this
    /// process).
    pub fn endpoint(&self) -> LoopbackEndpoint {
        self.pki.endpoint(false).expect("grpc+tls endpoint")
    }
}

impl Drop for PkiFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
