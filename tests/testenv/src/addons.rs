//! What makes Services work: kube-proxy in iptables mode, so Service IPs route (the in-cluster
//! API address, cluster DNS), and CoreDNS with its kubernetes plugin behind the `kube-dns`
//! Service, so `<host>.<subdomain>.<ns>.svc.cluster.local` resolves exactly when a matching
//! headless Service exists. All nodes share this machine's network namespace, so one kube-proxy
//! serves them all; CoreDNS runs beside it on the bridge address, reached through the Service.

use crate::control_plane::{ADMIN_TOKEN, PROXY_TOKEN, free_port, kubeconfig};
use crate::process::start;
use crate::{Error, Parts, network};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::process::Child;

/// kube-proxy and CoreDNS.
pub struct Addons {
    children: Vec<Child>,
}

fn write(path: &Path, text: &str) -> Result<PathBuf, Error> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    Ok(path.to_path_buf())
}

/// Removes the iptables rules a killed kube-proxy left (`kube-proxy --cleanup`).
pub fn clean_proxy_rules(parts: &Parts) {
    let _ = Command::new(&parts.kube)
        .args(["kube-proxy", "--cleanup"])
        .output();
}

impl Addons {
    /// Starts kube-proxy and CoreDNS, creates the `kube-dns` Service and its EndpointSlice,
    /// and waits until CoreDNS has synced with the API server.
    pub async fn start(
        dir: &Path,
        parts: &Parts,
        server: &str,
        ca: &Path,
        client: &kube::Client,
    ) -> Result<Addons, Error> {
        let dir = dir.join("addons");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut children = Vec::new();

        kubeconfig(&dir.join("kube-proxy.kubeconfig"), server, ca, PROXY_TOKEN)?;
        let proxy = serde_json::json!({
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": dir.join("kube-proxy.kubeconfig")},
            "mode": "iptables",
            "clusterCIDR": network::CLUSTER_CIDR,
            "bindAddress": network::HOST_IP.to_string(),
            "healthzBindAddress": format!("127.0.0.1:{}", free_port()?),
            "metricsBindAddress": format!("127.0.0.1:{}", free_port()?),
            // Leave this machine's conntrack settings alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        });
        let config = write(&dir.join("kube-proxy.json"), &proxy.to_string())?;
        let mut cmd = Command::new(&parts.kube);
        cmd.arg("kube-proxy")
            .arg(format!("--config={}", config.display()))
            .arg(format!("--hostname-override={}", network::HOST_IP));
        children.push(start(&dir, "kube-proxy", cmd)?);

        kubeconfig(&dir.join("coredns.kubeconfig"), server, ca, ADMIN_TOKEN)?;
        let ready = free_port()?;
        let corefile = format!(
            ".:53 {{\n    bind {host}\n    errors\n    ready 127.0.0.1:{ready}\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {kc} testenv\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n}}\n",
            host = network::HOST_IP,
            kc = dir.join("coredns.kubeconfig").display(),
        );
        let corefile = write(&dir.join("Corefile"), &corefile)?;
        let mut cmd = Command::new(&parts.services);
        cmd.args(["coredns", "-conf"]).arg(&corefile);
        children.push(start(&dir, "coredns", cmd)?);

        dns_service(client).await?;
        let url = format!("http://127.0.0.1:{ready}/ready");
        for _ in 0..300 {
            let ok = Command::new("curl")
                .args(["-sf", "--max-time", "1", &url])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(Addons { children });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Setup(format!(
            "CoreDNS not ready after 30 s; see {}",
            dir.join("coredns.log").display()
        )))
    }

    /// Stops both.
    pub async fn stop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill().await;
        }
    }
}

/// `kube-system/kube-dns` at the cluster DNS address, with an EndpointSlice naming CoreDNS on
/// the bridge address (a Service without a selector, as for any endpoint outside the pods).
async fn dns_service(client: &kube::Client) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, PostParams};
    let ports = serde_json::json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
    ]);
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": network::DNS_SERVICE_IP.to_string(), "ports": ports}
    }))
    .map_err(|e| Error::Setup(e.to_string()))?;
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kube-dns-coredns", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": "kubestep-testenv"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [network::HOST_IP.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    }))
    .map_err(|e| Error::Setup(e.to_string()))?;
    Api::<Service>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &service)
        .await
        .map_err(|e| Error::Kube(format!("create Service kube-dns: {e}")))?;
    Api::<EndpointSlice>::namespaced(client.clone(), "kube-system")
        .create(&PostParams::default(), &slice)
        .await
        .map_err(|e| Error::Kube(format!("create EndpointSlice kube-dns: {e}")))?;
    Ok(())
}
