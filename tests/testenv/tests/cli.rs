//! `kubestep-testenv up|status|kubectl|down`, as a shell uses them.

use std::process::Command;

fn testenv(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubestep-testenv"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn up_prints_exports_and_down_leaves_nothing_running() {
    let dir = std::env::temp_dir().join(format!("kubestep-testenv-cli-{}", std::process::id()));
    let (ok, out) = testenv(&dir, &["up"]);
    assert!(ok, "{out}");
    for name in [
        "KUBECONFIG",
        "AWS_ENDPOINT",
        "AWS_ACCESS_KEY_ID",
        "AZURE_STORAGE_ENDPOINT",
        "GOOGLE_SERVICE_ACCOUNT",
        "KUBESTEP_KUBERNETES_SECRETS",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("export {name}='"))),
            "no {name} in\n{out}"
        );
    }
    let kubeconfig = dir.join("cluster/kubeconfig");
    assert!(kubeconfig.exists());
    let (_, status) = testenv(&dir, &["status"]);
    assert!(status.starts_with("running"), "{status}");
    let (ok, nodes) = testenv(&dir, &["kubectl", "get", "nodes", "-o", "name"]);
    assert!(ok, "{nodes}");
    for node in ["node-a", "gpu-node", "gpu-open", "spot-node"] {
        assert!(nodes.contains(&format!("node/{node}\n")), "{nodes}");
    }
    // Every built or installed part says its version.
    for part in [
        "kubernetes v1.34",
        "etcd v3.6",
        "coredns v1",
        "containerd 1.6",
    ] {
        let (name, version) = part.split_once(' ').unwrap();
        assert!(
            status.lines().any(|l| l.starts_with(name)
                && l.split_whitespace()
                    .nth(1)
                    .is_some_and(|v| v.starts_with(version))),
            "no {part} in\n{status}"
        );
    }
    let (ok, out) = testenv(&dir, &["down"]);
    assert!(ok, "{out}");
    let (_, status) = testenv(&dir, &["status"]);
    assert!(status.starts_with("not running"), "{status}");
    // Nothing of this environment survives: no process has its directory on its command line.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let leftover: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()))
        .map(String::from)
        .collect();
    assert!(leftover.is_empty(), "left running: {leftover:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
