//! The images' registries: Debian's `docker-registry` serving the storage `install.sh` filled
//! (read-only), on the bridge address. Every node's containerd mirrors the registries the
//! examples name to them with no fallback, so an image the catalogue lacks really fails to pull,
//! and `registry.example.com` sits behind htpasswd, so its image pulls only with a pull secret.

use crate::control_plane::free_port;
use crate::{Error, network, process};
use std::path::Path;
use std::process::Command;
use tokio::process::Child;

/// The sandbox (pause) image every node's containerd uses.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The registry whose images need a pull secret (the `custom_image` example's).
pub const PRIVATE_REGISTRY: &str = "registry.example.com";
/// The user [`PRIVATE_REGISTRY`] accepts.
pub const REGISTRY_USER: &str = "kubestep";
/// Its password.
pub const REGISTRY_PASSWORD: &str = "testenv-registry-secret";

/// Registries the public storage answers for.
const PUBLIC: [&str; 3] = ["docker.io", "ghcr.io", "registry.k8s.io"];

/// The two running registries.
pub struct Registries {
    /// `host:port` of the open registry.
    pub public: String,
    /// `host:port` of the one behind htpasswd.
    pub private: String,
    children: Vec<Child>,
}

fn start_one(
    dir: &Path,
    name: &str,
    storage: &Path,
    htpasswd: Option<&Path>,
) -> Result<(String, Child), Error> {
    let addr = format!("{}:{}", network::HOST_IP, free_port()?);
    let auth = htpasswd
        .map(|p| {
            format!(
                "auth: {{htpasswd: {{realm: kubestep-testenv, path: {}}}}}\n",
                p.display()
            )
        })
        .unwrap_or_default();
    let config = format!(
        "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  maintenance: {{readonly: {{enabled: true}}, uploadpurging: {{enabled: false}}}}\nhttp: {{addr: \"{addr}\", secret: kubestep-testenv}}\n{auth}",
        storage.display()
    );
    let path = dir.join(format!("{name}.yml"));
    std::fs::write(&path, config).map_err(|e| Error::io(&path, e))?;
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&path);
    Ok((addr, process::start(dir, name, cmd)?))
}

impl Registries {
    /// Starts both registries on the storage under `images` (`public/`, `private/`).
    pub async fn start(state: &Path, images: &Path) -> Result<Registries, Error> {
        let dir = state.join("registry");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let htpasswd = dir.join("htpasswd");
        let entry = process::run(Command::new("htpasswd").args([
            "-Bbn",
            REGISTRY_USER,
            REGISTRY_PASSWORD,
        ]))?;
        std::fs::write(&htpasswd, entry).map_err(|e| Error::io(&htpasswd, e))?;
        let (public, a) = start_one(&dir, "public", &images.join("public"), None)?;
        let (private, b) = start_one(&dir, "private", &images.join("private"), Some(&htpasswd))?;
        for (addr, name) in [(&public, "public"), (&private, "private")] {
            let log = dir.join(format!("{name}.log"));
            process::wait_for_tcp(addr, "docker-registry", 15, &log).await?;
        }
        Ok(Registries {
            public,
            private,
            children: vec![a, b],
        })
    }

    /// (registry a pod names, URL containerd pulls it from).
    pub fn mirrors(&self) -> Vec<(&'static str, String)> {
        let mut m: Vec<_> = PUBLIC
            .iter()
            .map(|r| (*r, format!("http://{}", self.public)))
            .collect();
        m.push((PRIVATE_REGISTRY, format!("http://{}", self.private)));
        m
    }

    /// A `kubernetes.io/dockerconfigjson` document with the private registry's credentials.
    pub fn pull_secret_json() -> String {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{REGISTRY_USER}:{REGISTRY_PASSWORD}"));
        serde_json::json!({"auths": {PRIVATE_REGISTRY: {
            "username": REGISTRY_USER, "password": REGISTRY_PASSWORD, "auth": auth}}})
        .to_string()
    }

    /// Stops both.
    pub async fn stop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill().await;
        }
    }
}
