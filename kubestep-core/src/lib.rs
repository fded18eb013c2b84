//! kubestep-core: what a step asks for, and the Kubernetes Job that asks for it. Pure data, no I/O.
//!
//! Where it sits in the flow of data:
//!
//! ```text
//! macro tokens --(kubestep-macros)--> Value / Decorator (static, in the binary)
//!   --> spec: checked, typed StepSpec            (the macro runs this at compile time too)
//!   --> resolve: override > decorator > environment/config > built-in, each value with its source
//!   --> render: a k8s-openapi Job (feature `render`) and its YAML
//!   --> kubestep-runtime creates it and watches it
//! ```
//!
//! `params` is the catalog every stage reads (one row per parameter); `spec::check` holds the
//! rules across parameters, run on the decorators and on the merged layers alike. `invocation`
//! (the `step` command line a task runs), `parallel` (what each member of a multi-node step
//! is told) and `labels` (kubestep's label keys, selector and pod
//! names) are the contracts between render and the runtime.
//!
//! The macro crate uses this crate without the `render` feature, so it never compiles
//! k8s-openapi; the rules it checks at compile time are the ones `--with` overrides and
//! environment defaults meet at run time.

#![warn(missing_docs)]

pub mod invocation;
pub mod labels;
pub mod names;
pub mod parallel;
pub mod params;
pub mod quantity;
pub mod resolve;
pub mod spec;
pub mod value;

#[cfg(feature = "render")]
pub mod render;

pub use value::{Arg, At, Decorator, DecoratorKind, StepDecl, Value};
