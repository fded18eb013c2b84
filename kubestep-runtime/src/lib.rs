//! kubestep-runtime: the flow graph, the command line, and (in later stages) the executors and
//! the datastore.
//!
//! Where it sits in the flow of data: the macro's static step descriptions are wired into a
//! [`Flow`]; `Flow::main()` parses the command line and, for `show` and `render`, resolves each
//! step's settings with kubestep-core and prints them or the Jobs they render to. A Kubernetes
//! run creates those Jobs, and each pod re-launches this same binary with
//! `step <name> --run-id .. --task-id .. --attempt ..`.

#![warn(missing_docs)]

pub mod binary;
pub mod cli;
pub mod client;
pub mod codec;
pub mod config;
pub mod current;
pub mod datastore;
pub mod embed;
pub mod executor;
pub mod flow;
pub mod orchestrator;
pub mod progress;
pub mod step;

pub use flow::{Flow, FlowBuilder};
pub use step::{BoxError, Step, StepFuture};
