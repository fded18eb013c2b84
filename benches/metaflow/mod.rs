//! The peer the benchmarks compare kubestep with: Metaflow 2.19 from PyPI, installed once into
//! `target/bench-venv` (with numpy and pandas for the hand-off flows, boto3 for its S3
//! datastore, and the Kubernetes client its `@kubernetes` needs). Its flows are the `.py` files
//! beside this one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages, pinned where a resolver would otherwise pick a pair that conflicts (the newest
/// Kubernetes client wants a python-dateutil botocore refuses).
const PACKAGES: [&str; 7] = [
    "metaflow==2.19.39",
    "numpy",
    "pandas",
    "boto3==1.44.8",
    "kubernetes==37.0.1",
    "python-dateutil<3",
    "requests",
];

/// The virtualenv with Metaflow and its packages, installed on first use.
pub fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import metaflow, numpy, pandas, boto3, kubernetes"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        eprintln!(
            "installing Metaflow 2.19 and its packages into {}",
            venv.display()
        );
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES)
            .status()
            .expect("pip");
        assert!(ok.success(), "pip install {PACKAGES:?} failed");
    }
    venv
}

/// `len` random doubles in [0, 1) (incompressible, like real measurements), cheap to make: what
/// kubestep's hand-off flows return (Metaflow's draw theirs with numpy).
pub fn random_values(len: usize) -> Vec<f64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}
