//! Which certificate authorities the object-store clients trust. The system's, as every tool
//! on the machine does (`SSL_CERT_FILE` and `SSL_CERT_DIR` included); where there are none, as
//! in minimal images such as `debian:bookworm-slim`, which ship no `ca-certificates`, the
//! Mozilla roots compiled into the binary, so a step in such an image still starts its client
//! (without roots, reqwest refuses to build one: "builder error").

use object_store::{Certificate, ClientOptions};
use std::sync::OnceLock;

/// The roots a client is built with, found once per process (a directory scan).
pub(super) fn client_options() -> ClientOptions {
    static SYSTEM_HAS_ROOTS: OnceLock<bool> = OnceLock::new();
    let system = *SYSTEM_HAS_ROOTS
        .get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty());
    if system {
        return ClientOptions::new();
    }
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .fold(
            ClientOptions::new().with_no_system_certificates(true),
            ClientOptions::with_root_certificate,
        )
}
