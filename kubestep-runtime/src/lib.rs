//! kubestep-runtime: the flow graph, the command line, the orchestrator, the executors (local
//! processes and Kubernetes Jobs), the datastore and the client API.
//!
//! Where it sits in the flow of data: the macro's static step descriptions are wired into a
//! [`Flow`]; `.main()` parses the command line; `show` and `render` resolve each step's
//! settings with kubestep-core and print them or the Jobs they render to; `run` walks the
//! stages (`orchestrator`), handing each task attempt to an `executor`: a child process, or a
//! Job whose pod re-launches this same binary with `step <name> --run-id .. --task-id ..`.
//! Values move between tasks as artifacts in the `datastore`; `client` reads them back, and
//! `embed` runs single steps from any async program.

#![warn(missing_docs)]

pub mod binary;
pub mod cli;
pub mod client;
pub mod codec;

/// Value types behind optional features, which the `kubestep` facade re-exports at its root
/// (a glob, so they appear whenever the feature is on, however it was turned on).
pub mod optional {
    /// Arrow record batches as step values (feature `arrow`): return a [`arrow::Table`], or
    /// hold a `RecordBatch` in a struct field with `#[serde(with = "kubestep::arrow")]`.
    #[cfg(feature = "arrow")]
    pub use crate::codec::arrow;
}
pub mod config;
pub mod current;
pub mod datastore;
pub mod embed;
pub mod executor;
pub mod flow;
pub mod orchestrator;
pub mod progress;
pub mod report;
pub mod run_report;
pub mod step;
pub mod task;

pub use flow::{Flow, FlowBuilder};
pub use step::{BoxError, Step, StepFuture};

/// Runs blocking work (file reads, hashing, compression) on tokio's blocking pool; a panic in it
/// is the caller's panic, as if it had run inline.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}
