//! Keys and certificates for the API server and service accounts, made with openssl.

use crate::{Error, process};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the generated files.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate that signed the serving certificate.
    pub ca_cert: PathBuf,
    /// The API server's serving certificate: the bridge address, the `kubernetes` Service.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// Service-account signing key (RSA).
    pub sa_key: PathBuf,
    /// Its public half.
    pub sa_pub: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), Error> {
    process::run(Command::new("openssl").args(args).current_dir(dir)).map(drop)
}

/// Creates the CA, a serving certificate and the service-account key pair in `dir`.
pub fn create(dir: &Path) -> Result<Pki, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:{},IP:{},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n\
             basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
            crate::network::HOST_IP,
            crate::network::KUBERNETES_SERVICE_IP
        ),
    )
    .map_err(|e| Error::io(&ext, e))?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=kubestep-testenv-ca",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=kubestep-testenv",
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
        ],
    )?;
    openssl(dir, &["genrsa", "-out", "sa.key", "2048"])?;
    openssl(dir, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(Pki {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
    })
}
