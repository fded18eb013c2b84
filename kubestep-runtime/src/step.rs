//! The `Step` trait that `#[step]` and `#[kubernetes]` implement for a function's unit struct.

use kubestep_core::StepDecl;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// The error a failed step returns: anything `Into<Box<dyn Error + Send + Sync>>`, so
/// `std::io::Error`, `anyhow::Error` and `String` all work.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What running a step yields.
pub type StepFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'static>>;

/// A step: a function marked `#[step]` or `#[kubernetes(...)]`.
///
/// The macro implements it for a unit struct named after the function, which also derefs to
/// the function, so `square(3)` still works in tests.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kubestep step",
    label = "not a step",
    note = "mark the function with #[step] or #[kubernetes(...)]"
)]
pub trait Step: Copy + Send + Sync + 'static {
    /// The input: the previous step's output (`()` for a first step).
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The output: `T` of a step that returns `T` or `Result<T, E>`.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The step's name, signature and decorators, checked at compile time.
    const DECL: &'static StepDecl;

    /// Runs the step on one input.
    fn call(self, input: Self::Input) -> StepFuture<Self::Output>;
}

/// Turns a step's `Result<T, E>` into the common error type.
#[doc(hidden)]
pub fn into_step_result<T, E: Into<BoxError>>(r: Result<T, E>) -> Result<T, BoxError> {
    r.map_err(Into::into)
}
