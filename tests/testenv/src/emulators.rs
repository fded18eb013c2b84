//! Datastore emulators on the bridge address, one endpoint for the host and the pods alike:
//! moto (S3), Azurite (Azure Blob) and fake-gcs-server (GCS), each with a ready bucket or
//! container named [`BUCKET`].

use crate::control_plane::free_port;
use crate::pki::Pki;
use crate::{Error, Parts, network, process};
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::process::Child;

/// The bucket (S3, GCS) and container (Azure) every emulator starts with.
pub const BUCKET: &str = "kubestep";
/// Credentials moto accepts (it checks none).
pub const S3_KEY_ID: &str = "testenv";
/// See [`S3_KEY_ID`].
pub const S3_SECRET: &str = "testenv-secret";
/// Azurite's well-known development account.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key.
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The running emulators and how to reach them.
pub struct Emulators {
    /// S3 endpoint (`http://<bridge address>:<port>`).
    pub s3_endpoint: String,
    /// The same S3 over HTTPS, with a certificate signed by the test cluster's own CA.
    pub s3_https_endpoint: String,
    /// That CA's certificate.
    pub ca: PathBuf,
    /// Azure Blob endpoint of the development account (`http://<bridge address>:<port>/devstoreaccount1`).
    pub azure_endpoint: String,
    /// GCS endpoint (`http://<bridge address>:<port>`).
    pub gcs_endpoint: String,
    /// A service-account file pointing object_store's GCS client at the emulator, without OAuth.
    pub gcs_service_account: PathBuf,
    children: Vec<Child>,
}

/// [`process::start`] for a command built in place.
fn start(dir: &Path, name: &str, cmd: &mut Command) -> Result<Child, Error> {
    process::start(dir, name, std::mem::replace(cmd, Command::new("true")))
}

async fn wait_port(port: u16, name: &str, log: &Path) -> Result<(), Error> {
    process::wait_for_tcp(&format!("{}:{port}", network::HOST_IP), name, 30, log).await
}

impl Emulators {
    /// Starts the three emulators, and the HTTPS proxy in front of S3 serving `pki`'s
    /// certificate, and creates their bucket and container.
    pub async fn start(dir: &Path, parts: &Parts, pki: &Pki) -> Result<Emulators, Error> {
        let dir = dir.join("emulators");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let root = &parts.emulators;
        let host = network::HOST_IP.to_string();
        let py = root.join("py/bin");
        for tool in ["moto_server", "python"] {
            if !py.join(tool).exists() {
                return Err(Error::Setup(format!(
                    "{} is missing; run tests/testenv/install.sh",
                    py.join(tool).display()
                )));
            }
        }
        let (s3, azure, gcs, s3_tls) = (free_port()?, free_port()?, free_port()?, free_port()?);
        let mut children = Vec::new();
        children.push(start(
            &dir,
            "moto",
            Command::new(py.join("moto_server")).args(["-H", &host, "-p", &s3.to_string()]),
        )?);
        let azurite_dir = dir.join("azurite");
        std::fs::create_dir_all(&azurite_dir).map_err(|e| Error::io(&azurite_dir, e))?;
        children.push(start(
            &dir,
            "azurite",
            Command::new(root.join("npm/node_modules/.bin/azurite-blob"))
                .args([
                    "--blobHost",
                    &host,
                    "--blobPort",
                    &azure.to_string(),
                    "--silent",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--location",
                ])
                .arg(&azurite_dir),
        )?);
        children.push(start(
            &dir,
            "gcs",
            Command::new(&parts.services).args([
                "fake-gcs-server",
                "-host",
                &host,
                "-port",
                &gcs.to_string(),
                "-public-host",
                &format!("{host}:{gcs}"),
                "-bucket",
                BUCKET,
            ]),
        )?);
        children.push(start(
            &dir,
            "s3-tls-proxy",
            Command::new(&parts.services)
                .args(["tls-proxy", "-listen", &format!("{host}:{s3_tls}")])
                .arg("-cert")
                .arg(&pki.server_cert)
                .arg("-key")
                .arg(&pki.server_key)
                .args(["-backend", &format!("http://{host}:{s3}")]),
        )?);
        wait_port(s3, "moto", &dir.join("moto.log")).await?;
        wait_port(s3_tls, "the S3 TLS proxy", &dir.join("s3-tls-proxy.log")).await?;
        wait_port(azure, "azurite", &dir.join("azurite.log")).await?;
        wait_port(gcs, "fake-gcs-server", &dir.join("gcs.log")).await?;
        let s3_endpoint = format!("http://{host}:{s3}");
        process::run(Command::new("curl").args([
            "-sf",
            "-X",
            "PUT",
            &format!("{s3_endpoint}/{BUCKET}"),
        ]))?;
        let azure_endpoint = format!("http://{host}:{azure}/{AZURE_ACCOUNT}");
        let connection = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};BlobEndpoint={azure_endpoint};"
        );
        process::run(
            Command::new(py.join("python")).args([
                "-c",
                "import sys; from azure.storage.blob import BlobServiceClient as C; C.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
                &connection,
                BUCKET,
            ]),
        )?;
        let gcs_endpoint = format!("http://{host}:{gcs}");
        let gcs_service_account = dir.join("gcs-service-account.json");
        let account = serde_json::json!({"disable_oauth": true, "client_email": "testenv@kubestep.invalid", "private_key": "", "private_key_id": "", "gcs_base_url": gcs_endpoint});
        std::fs::write(&gcs_service_account, account.to_string())
            .map_err(|e| Error::io(&gcs_service_account, e))?;
        Ok(Emulators {
            s3_endpoint,
            s3_https_endpoint: format!("https://{host}:{s3_tls}"),
            ca: pki.ca_cert.clone(),
            azure_endpoint,
            gcs_endpoint,
            gcs_service_account,
            children,
        })
    }

    /// The variables object_store (and kubestep's datastore) read to reach the emulators.
    pub fn exports(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.s3_endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("KUBESTEP_S3_ROOT", format!("s3://{BUCKET}/")),
            (
                "AZURITE_BLOB_STORAGE_URL",
                self.azure_endpoint
                    .trim_end_matches(&format!("/{AZURE_ACCOUNT}"))
                    .to_string(),
            ),
            ("AZURE_STORAGE_ENDPOINT", self.azure_endpoint.clone()),
            ("AZURE_ALLOW_HTTP", "true".into()),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY.into()),
            ("KUBESTEP_AZURE_ROOT", format!("az://{BUCKET}/")),
            (
                "GOOGLE_SERVICE_ACCOUNT",
                self.gcs_service_account.display().to_string(),
            ),
            ("KUBESTEP_GCS_ROOT", format!("gs://{BUCKET}/")),
            (
                "KUBESTEP_TESTENV_S3_HTTPS_ENDPOINT",
                self.s3_https_endpoint.clone(),
            ),
            ("KUBESTEP_TESTENV_CA", self.ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Sends SIGSTOP (or SIGCONT) to the S3 emulator, the first one started.
    pub fn pause_s3(&self, paused: bool) {
        if let Some(pid) = self.children.first().and_then(|c| c.id()) {
            let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// Stops the emulators.
    pub async fn stop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill().await;
        }
    }
}
