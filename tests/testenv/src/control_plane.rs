//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler: etcd on loopback (only the
//! API server talks to it), the API server on the bridge address, where host and pods reach it.

use crate::pki::Pki;
use crate::{Error, Parts, network, process};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::process::Child;

/// The static bearer tokens of the API server.
pub const ADMIN_TOKEN: &str = "kubestep-testenv-admin";
/// kube-proxy's token (user `system:kube-proxy`, bound to `system:node-proxier` by the API
/// server's bootstrap policy).
pub const PROXY_TOKEN: &str = "kubestep-testenv-kube-proxy";
/// A user with no rights until an RBAC binding grants some: for least-privilege tests.
pub const RESTRICTED_TOKEN: &str = "kubestep-testenv-restricted";
/// The restricted user's name, for RoleBindings.
pub const RESTRICTED_USER: &str = "kubestep-restricted";
/// A second user with no rights until RBAC grants some: the peer a benchmark compares kubestep
/// with runs as this one, so the audit log tells their requests apart.
pub const PEER_TOKEN: &str = "kubestep-testenv-peer";
/// The peer user's name, for RoleBindings.
pub const PEER_USER: &str = "kubestep-peer";

/// The user of the pods of detached runs' orchestrators, under kubestep's default ServiceAccount
/// in the `default` namespace: its requests are audited too.
pub const ORCHESTRATOR_USER: &str = "system:serviceaccount:default:kubestep-orchestrator";

/// The API server's audit log, under the state directory: one JSON event per request of
/// [`RESTRICTED_USER`], [`PEER_USER`] or [`ORCHESTRATOR_USER`].
pub const AUDIT_LOG: &str = "audit.log";

/// The running control plane.
pub struct ControlPlane {
    /// API server URL.
    pub server: String,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the restricted user.
    pub restricted_kubeconfig: PathBuf,
    /// Kubeconfig of [`PEER_USER`].
    pub peer_kubeconfig: PathBuf,
    dir: PathBuf,
    kube: PathBuf,
    pub(crate) pki: Pki,
    etcd_url: String,
    port: u16,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    others: Vec<Child>,
}

/// A free loopback port (closed again; a tiny race is acceptable for tests).
pub fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Setup(format!("no free port: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| Error::Setup(e.to_string()))?
        .port())
}

fn start(dir: &Path, name: &str, program: &Path, args: &[String]) -> Result<Child, Error> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    process::start(dir, name, cmd)
}

/// Writes a kubeconfig for `server` that authenticates with a bearer token.
pub fn kubeconfig(path: &Path, server: &str, ca: &Path, token: &str) -> Result<(), Error> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: testenv\n  context:\n    cluster: testenv\n    user: user\n    namespace: default\ncurrent-context: testenv\n",
        ca = ca.display()
    );
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

impl ControlPlane {
    /// Starts everything and waits until the API server is ready and the default
    /// ServiceAccount exists (pods cannot be created before).
    /// `nodes` are the node names whose kubelets get a token (user `system:node:<name>`).
    pub async fn start(
        dir: &Path,
        parts: &Parts,
        pki: Pki,
        nodes: &[String],
    ) -> Result<ControlPlane, Error> {
        let tokens = dir.join("tokens.csv");
        let mut users = format!(
            "{ADMIN_TOKEN},admin,admin,\"system:masters\"\n{RESTRICTED_TOKEN},{RESTRICTED_USER},{RESTRICTED_USER}\n{PEER_TOKEN},{PEER_USER},{PEER_USER}\n{PROXY_TOKEN},system:kube-proxy,system:kube-proxy\n"
        );
        for n in nodes {
            users.push_str(&format!(
                "{},system:node:{n},system:node:{n},\"system:nodes\"\n",
                crate::node::token(n)
            ));
        }
        std::fs::write(&tokens, users).map_err(|e| Error::io(&tokens, e))?;
        let (etcd_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let server = format!("https://{}:{port}", network::HOST_IP);
        let mut cp = ControlPlane {
            server: server.clone(),
            kubeconfig: dir.join("kubeconfig"),
            restricted_kubeconfig: dir.join("kubeconfig-restricted"),
            peer_kubeconfig: dir.join("kubeconfig-peer"),
            dir: dir.to_path_buf(),
            kube: parts.kube.clone(),
            pki,
            etcd_url: etcd_url.clone(),
            port,
            etcd: None,
            apiserver: None,
            others: Vec::new(),
        };
        kubeconfig(&cp.kubeconfig, &server, &cp.pki.ca_cert, ADMIN_TOKEN)?;
        kubeconfig(
            &cp.restricted_kubeconfig,
            &server,
            &cp.pki.ca_cert,
            RESTRICTED_TOKEN,
        )?;
        kubeconfig(&cp.peer_kubeconfig, &server, &cp.pki.ca_cert, PEER_TOKEN)?;
        let etcd_args: Vec<String> = [
            "--data-dir".into(),
            dir.join("etcd").display().to_string(),
            "--listen-client-urls".into(),
            etcd_url.clone(),
            "--advertise-client-urls".into(),
            etcd_url.clone(),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls".into(),
            format!("http://127.0.0.1:{peer_port}"),
            "--initial-cluster".into(),
            format!("default=http://127.0.0.1:{peer_port}"),
            // A test cluster's data need not survive a power cut; fsync dominates on this disk.
            "--unsafe-no-fsync".into(),
        ]
        .into();
        let etcd_args: Vec<String> = std::iter::once("etcd".to_string())
            .chain(etcd_args)
            .collect();
        cp.etcd = Some(start(dir, "etcd", &parts.services, &etcd_args)?);
        cp.start_apiserver().await?;
        let kc = cp.kubeconfig.display().to_string();
        let sa_key = cp.pki.sa_key.display().to_string();
        let ca = cp.pki.ca_cert.display().to_string();
        let cm = [
            "kube-controller-manager".into(),
            format!("--kubeconfig={kc}"),
            // Pod CIDRs come from each node's CNI configuration, not from nodeipam.
            "--controllers=*,-nodeipam,-cloud-node-lifecycle".into(),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
            format!("--service-account-private-key-file={sa_key}"),
            format!("--root-ca-file={ca}"),
            // A lost node is noticed within 20 s (upstream: 50 s), so fault tests stay short.
            "--node-monitor-grace-period=20s".into(),
            "--node-monitor-period=2s".into(),
            // Finished Jobs and their pods are cleaned quickly in tests.
            "--concurrent-ttl-after-finished-syncs=5".into(),
        ];
        cp.others
            .push(start(dir, "kube-controller-manager", &cp.kube, &cm)?);
        let sched = [
            "kube-scheduler".into(),
            format!("--kubeconfig={kc}"),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
        ];
        cp.others
            .push(start(dir, "kube-scheduler", &cp.kube, &sched)?);
        Ok(cp)
    }

    /// The audit policy: metadata of every request the restricted, the peer and the orchestrator
    /// user make, once each (when it completes), and nothing of anyone else's.
    fn audit_policy(&self) -> Result<PathBuf, Error> {
        let path = self.dir.join("audit-policy.yaml");
        let policy = format!(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived, ResponseStarted]\nrules:\n- level: Metadata\n  users: [{RESTRICTED_USER}, {PEER_USER}, \"{ORCHESTRATOR_USER}\"]\n- level: None\n"
        );
        std::fs::write(&path, policy).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    async fn start_apiserver(&mut self) -> Result<(), Error> {
        let p = &self.pki;
        let args: Vec<String> = vec![
            "kube-apiserver".into(),
            format!("--etcd-servers={}", self.etcd_url),
            format!("--bind-address={}", network::HOST_IP),
            format!("--secure-port={}", self.port),
            format!("--advertise-address={}", network::HOST_IP),
            format!("--cert-dir={}", self.dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", p.server_cert.display()),
            format!("--tls-private-key-file={}", p.server_key.display()),
            format!("--client-ca-file={}", p.ca_cert.display()),
            format!(
                "--token-auth-file={}",
                self.dir.join("tokens.csv").display()
            ),
            "--authorization-mode=Node,RBAC".into(),
            // As production clusters run: kubelets may touch only their own Node and pods;
            // as GPU clusters do, pods asking for an extended resource (nvidia.com/gpu)
            // tolerate the taint that keeps other pods off those nodes. PodSecurity is on by
            // default and enforces what a namespace's labels say.
            "--enable-admission-plugins=NodeRestriction,ExtendedResourceToleration".into(),
            // Mutating admission policies (beta in 1.34, off by default): tests use one to hold
            // back one pod of an Indexed Job, which no pod template can single out.
            "--feature-gates=MutatingAdmissionPolicy=true".into(),
            "--runtime-config=admissionregistration.k8s.io/v1beta1=true".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p.sa_pub.display()),
            format!("--service-account-signing-key-file={}", p.sa_key.display()),
            format!("--service-cluster-ip-range={}", network::SERVICE_CIDR),
            "--allow-privileged=true".into(),
            "--kubelet-preferred-address-types=InternalIP".into(),
            // Every request of the restricted user, one JSON line each: what benchmarks count.
            format!("--audit-policy-file={}", self.audit_policy()?.display()),
            format!("--audit-log-path={}", self.dir.join(AUDIT_LOG).display()),
            "--audit-log-format=json".into(),
            // Never rotated (the default rotates at 100 MB): readers count lines from a mark.
            "--audit-log-maxsize=1000000".into(),
        ];
        self.apiserver = Some(start(&self.dir, "kube-apiserver", &self.kube, &args)?);
        self.wait_ready().await
    }

    /// Polls `/readyz` until it answers `ok`, for at most 90 seconds.
    async fn wait_ready(&mut self) -> Result<(), Error> {
        let url = format!("{}/readyz", self.server);
        for _ in 0..900 {
            if let Some(status) = self
                .apiserver
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Error::Setup(format!(
                    "kube-apiserver exited with {status}; see {}",
                    self.dir.join("kube-apiserver.log").display()
                )));
            }
            let out = Command::new("curl")
                .args(["-s", "--max-time", "2", "--cacert"])
                .arg(&self.pki.ca_cert)
                .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}"), &url])
                .output();
            if out.is_ok_and(|o| o.stdout == b"ok") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Setup(format!(
            "kube-apiserver not ready after 90 s; see {}",
            self.dir.join("kube-apiserver.log").display()
        )))
    }

    /// Kills the API server and starts it again on the same port and data: a fault for tests.
    pub async fn restart_apiserver(&mut self) -> Result<(), Error> {
        if let Some(mut c) = self.apiserver.take() {
            let _ = c.kill().await;
        }
        self.start_apiserver().await
    }

    /// Stops every process, API server last but one and etcd last.
    pub async fn stop(&mut self) {
        for mut c in self.others.drain(..) {
            let _ = c.kill().await;
        }
        if let Some(mut c) = self.apiserver.take() {
            let _ = c.kill().await;
        }
        if let Some(mut c) = self.etcd.take() {
            let _ = c.kill().await;
        }
    }
}
