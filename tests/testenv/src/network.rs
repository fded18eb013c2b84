//! The cluster's network, all on this machine: one Linux bridge and one subnet
//! (10.244.0.0/16). The bridge's own address is every pod's gateway and serves the control
//! plane, the registries and the datastore emulators; each node has a secondary address on it
//! and hands its pods addresses from a range of its own (the CNI `bridge` plugin accepts only
//! one IPv4 gateway address per bridge, so the nodes share one subnet). A Service range is
//! routed onto the bridge, so a Service IP kube-proxy has not rewritten dies there instead of
//! leaving the machine; pods reach nothing beyond the bridge: forwarding out of it is dropped.

use crate::{Error, process};
use std::net::Ipv4Addr;
use std::process::Command;

/// The bridge every pod's veth joins.
pub const BRIDGE: &str = "kubestep0";
/// The bridge's hardware address, set once: a Linux bridge left to choose takes the lowest
/// address among its ports, so it changed whenever a pod's veth came or went, and every pod
/// that had cached the old one lost the gateway (the API server, the emulators, DNS) until its
/// neighbour entry expired, up to half a minute. Locally administered, from [`HOST_IP`].
pub const BRIDGE_MAC: &str = "02:42:0a:f4:00:01";
/// The bridge's own address: API server, registries, emulators and cluster DNS listen here.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
/// The Service range (`--service-cluster-ip-range`).
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
/// The `kubernetes` Service's address, in the API server's certificate.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// The cluster DNS Service's address (`kube-system/kube-dns`), what every pod's resolv.conf names.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// All pod subnets together (kube-proxy's `--cluster-cidr`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The iptables chain that keeps pod traffic on the bridge.
const GUARD_CHAIN: &str = "KUBESTEP-GUARD";

/// Node `index`'s address on the bridge (its InternalIP; its kubelet listens there).
pub fn node_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 0, 11 + index as u8)
}

/// Node `index`'s range of pod addresses (first, last), within [`CLUSTER_CIDR`].
pub fn pod_range(index: usize) -> (Ipv4Addr, Ipv4Addr) {
    let third = 1 + index as u8;
    (
        Ipv4Addr::new(10, 244, third, 2),
        Ipv4Addr::new(10, 244, third, 254),
    )
}

fn run(program: &str, args: &[&str]) -> Result<(), Error> {
    process::run(Command::new(program).args(args)).map(drop)
}

fn sysctl(key: &str, value: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| Error::io(path.as_ref(), e))
}

/// Creates the bridge with the host and node addresses, the Service route and the guard.
pub fn up(nodes: usize) -> Result<(), Error> {
    down();
    run(
        "ip",
        &[
            "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge",
        ],
    )?;
    // The gateway first: the CNI plugin checks the bridge's primary address against it.
    run(
        "ip",
        &["addr", "add", &format!("{HOST_IP}/16"), "dev", BRIDGE],
    )?;
    for i in 0..nodes {
        run(
            "ip",
            &["addr", "add", &format!("{}/16", node_ip(i)), "dev", BRIDGE],
        )?;
    }
    run("ip", &["link", "set", BRIDGE, "up"])?;
    run(
        "ip",
        &[
            "route",
            "add",
            SERVICE_CIDR,
            "dev",
            BRIDGE,
            "src",
            &HOST_IP.to_string(),
        ],
    )?;
    // Pods leave their subnet only through the host (Service IPs); Service traffic between
    // pods of one bridge needs iptables to see bridged packets, or replies skip the reverse NAT.
    sysctl("net.ipv4.ip_forward", "1")?;
    sysctl("net.bridge.bridge-nf-call-iptables", "1")?;
    run("iptables", &["-w", "-N", GUARD_CHAIN])?;
    run(
        "iptables",
        &[
            "-w",
            "-A",
            GUARD_CHAIN,
            "-i",
            BRIDGE,
            "!",
            "-o",
            BRIDGE,
            "-j",
            "DROP",
        ],
    )?;
    run("iptables", &["-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN])?;
    Ok(())
}

/// Removes the bridge (the pods' veths die with their namespaces) and the guard. Idempotent:
/// also what clears a killed environment's leftovers.
pub fn down() {
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    while Command::new("iptables")
        .args(["-w", "-D", "FORWARD", "-j", GUARD_CHAIN])
        .output()
        .is_ok_and(|o| o.status.success())
    {}
    let _ = Command::new("iptables")
        .args(["-w", "-F", GUARD_CHAIN])
        .output();
    let _ = Command::new("iptables")
        .args(["-w", "-X", GUARD_CHAIN])
        .output();
}
