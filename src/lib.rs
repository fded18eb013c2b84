//! # kubestep
//!
//! Write a pipeline as plain Rust functions, mark the heavy ones `#[kubernetes(...)]`, and run
//! the whole thing locally or with those steps as Kubernetes Jobs whose pods re-launch the same
//! binary.
//!
//! ```no_run
//! use kubestep::prelude::*;
//!
//! #[step]
//! fn start() -> Result<Vec<u64>, std::io::Error> {
//!     Ok((1..=4).collect())
//! }
//!
//! #[kubernetes(cpu = 2, memory = 4096, image = "debian:bookworm-slim")]
//! #[resources(memory = 8192)]
//! #[retry(times = 2)]
//! fn square(n: u64) -> Result<u64, std::io::Error> {
//!     Ok(n * n)
//! }
//!
//! #[step]
//! fn end(squares: Vec<u64>) -> u64 {
//!     squares.iter().sum()
//! }
//!
//! fn main() {
//!     Flow::new("squares").start(start).foreach(square).join(end).main()
//! }
//! ```
//!
//! `cargo run -- run --datastore s3` runs the `#[kubernetes]` steps as Jobs whose pods fetch this
//! binary from the datastore and run it, the others locally (`--with kubernetes` sends every
//! step; the README's "Running on Kubernetes" has the details); `cargo run -- run --local` runs
//! every step on this machine. `cargo run -- show` prints the graph and every
//! step's settings with their sources; `cargo run -- render --with kubernetes` prints the Jobs a
//! Kubernetes run would create. Inside a step, [`pod()`] says which pod it runs in; an async
//! program can run single steps on Kubernetes with [`embed`], and [`client`] reads a run's
//! records and outputs back.
//!
//! ## Steps
//!
//! A step takes zero or one input and returns `T` or `Result<T, E>` (`E` converts into
//! `Box<dyn Error + Send + Sync>`, so `anyhow::Error` works); `T` is `Serialize +
//! DeserializeOwned`: structs, tuples, enums, maps, nested vectors. Vectors of `f64`, `f32`,
//! `u8` and `i8` anywhere in a value move between steps as whole blocks of memory, and with the
//! `ndarray` feature so do ndarray 0.17 arrays (`Array2<f64>`, ...); other numbers are written
//! one by one (as compact varints). With the `arrow` feature a step returns an Arrow
//! `RecordBatch` as `kubestep::arrow::Table`, handed off in Arrow's IPC format. `async fn`
//! steps work too. The function stays callable:
//! `assert_eq!(square(3).unwrap(), 9)`. (The macro turns `square` into a unit struct that
//! implements [`Step`] and derefs to the original function; write `*square` where a `fn`
//! pointer is wanted. Because the name is now a unit struct, `let start = ...` in the same
//! module is read as a pattern matching the step `start`: give such locals another name.)
//!
//! `#[kubernetes(...)]` alone makes a function a step; `#[step]` marks one without it.
//! `#[resources]`, `#[retry]` and `#[timeout]` combine with either, in any order.
//!
//! ## `#[kubernetes(...)]` parameters
//!
//! Values are literals, lists `[a, b]` or maps `{ key: value }`. Every wrong key, type or value
//! is a compile error at its token.
//!
//! | parameter | accepts | renders to |
//! |---|---|---|
//! | `cpu` | number > 0, or `"500m"` | `requests.cpu` (and `limits.cpu` when Guaranteed) |
//! | `memory` | MB, or `"16Gi"` | `requests.memory` and `limits.memory` (`"<n>M"`) |
//! | `disk` | MB, or a quantity | `requests.ephemeral-storage` |
//! | `gpu` | whole number | `limits["<vendor>.com/gpu"]`; `0` keeps the pod off GPU nodes |
//! | `gpu_vendor` | `"nvidia"`, `"amd"` | the GPU resource name |
//! | `image`, `image_pull_policy`, `image_pull_secrets` | strings | the container's image settings |
//! | `namespace`, `service_account` | names | the Job's namespace; the pod's ServiceAccount |
//! | `secrets` | Secret names | `envFrom` secretRefs (added to `KUBESTEP_KUBERNETES_SECRETS`) |
//! | `node_selector` | `"k=v,k2=v2"` or a map | `nodeSelector` |
//! | `tolerations` | list of `{ key, operator, value, effect, toleration_seconds }` | `tolerations` |
//! | `labels`, `annotations` | maps | on the Job and its pod |
//! | `persistent_volume_claims` | `{ "claim": "/mount/path" }` | PVC volumes and mounts |
//! | `shared_memory` | MiB, or a quantity | a memory `emptyDir` at `/dev/shm` |
//! | `use_tmpfs`, `tmpfs_size`, `tmpfs_path`, `tmpfs_tempdir` | | a memory `emptyDir`; `TMPDIR` points there |
//! | `port` | 1..=65535 | `containerPort` |
//! | `compute_pool` | label value | `nodeSelector["kubestep.io/compute-pool"]` |
//! | `qos` | `"Guaranteed"`, `"Burstable"`, `"BestEffort"` | how requests and limits are set |
//! | `security_context` | `{ privileged, allow_privilege_escalation, run_as_user, run_as_group, run_as_non_root }` | the container's securityContext |
//! | `hostname_resolution_timeout` | seconds | how long a multi-node step's workers wait for the control member (default 600) |
//!
//! ## Precedence
//!
//! `--with [STEP/]kubernetes:k=v,...` > the decorator in code (with `#[resources]` merged by
//! maximum) > `KUBESTEP_KUBERNETES_<PARAM>` environment variables > the JSON file named by
//! `KUBESTEP_CONFIG` > built-in defaults. The highest layer that gives a value wins it whole;
//! labels and annotations merge key by key, and secrets are a union. `render --explain` shows
//! the source of every field.
//!
//! ## Feature flags and k8s-openapi
//!
//! The datastore backends are features, all on by default: `s3` (`--datastore s3`, S3 and
//! S3-compatible stores), `azure` (`--datastore azure`) and `gcs` (`--datastore gs`). A flow
//! that needs one builds only its client: `kubestep = { version = "0.1", default-features =
//! false, features = ["s3"] }`. The local datastore is always there.
//!
//! kubestep enables no Kubernetes version feature of `k8s-openapi`, as its documentation asks
//! of libraries: the binary chooses one, for example
//! `k8s-openapi = { version = "0.29", features = ["v1_33"] }` in the flow's `Cargo.toml`.

#![warn(missing_docs)]

pub use kubestep_macros::{kubernetes, resources, retry, step, timeout};
pub use kubestep_runtime::current::{pod, temp_dir};
pub use kubestep_runtime::datastore::Datastore;
pub use kubestep_runtime::{BoxError, Flow, FlowBuilder, Step};
pub use kubestep_runtime::{client, current, embed};

/// Where a flow's outputs and records live: [`Datastore`], its keys and the records [`client`]
/// reads.
pub mod datastore {
    pub use kubestep_runtime::datastore::{
        Attempt, AttemptPod, AttemptResult, Datastore, Error, Key, KillMark, Kind, PodMark,
        PodStage, Prefix, RunRecord, Status, TaskPath, TaskRecord,
    };
}

/// An error and its causes on one line, each said once: how to print any kubestep error.
pub use kubestep_runtime::report::report;

/// `kubestep::arrow` with the `arrow` feature: Arrow record batches as step values.
#[allow(
    unused_imports,
    reason = "empty unless a feature such as `arrow` is on"
)]
pub use kubestep_runtime::optional::*;

/// The pure core (spec, resolve, render): for tools and tests, not a stable API.
#[doc(hidden)]
pub use kubestep_core as core;
/// The runtime's internals: for tools and tests, not a stable API.
#[doc(hidden)]
pub use kubestep_runtime as runtime;

/// Everything a flow file needs: the attributes, [`Flow`] and [`Step`].
pub mod prelude {
    pub use crate::{Flow, Step, kubernetes, resources, retry, step, timeout};
}

/// What the macros' generated code names. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use kubestep_core::{Arg, Decorator, DecoratorKind, StepDecl, Value};
    pub use kubestep_runtime::Step;
    pub use kubestep_runtime::step::{StepFuture, into_step_result};
    pub use std::borrow::Cow;
    pub use std::boxed::Box;
    pub use std::future::Future;
    pub use std::pin::Pin;
}
