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
pub trait Step: Copy + Default + Send + Sync + 'static {
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

/// Why a task's step did not produce an output.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The input in the datastore is not the step's input type.
    #[error("the input is not a `{expected}`")]
    Input {
        /// The step's input type.
        expected: &'static str,
        /// The decoding error.
        source: crate::codec::Error,
    },
    /// The step returned an error: its message, and its own causes through `source()` (so a
    /// report shows an `anyhow` context's whole chain).
    #[error("{0}")]
    Step(#[source] BoxError),
    /// The output could not be encoded.
    #[error("the output cannot be encoded: {0}")]
    Output(crate::codec::Error),
}

/// A step with its types erased: encoded input in, encoded output out (as consecutive chunks,
/// so a large vector is stored from its own buffer). What a task runs.
pub type RunFn =
    fn(bytes::Bytes) -> Pin<Box<dyn Future<Output = Result<Vec<bytes::Bytes>, TaskError>> + Send>>;

/// Splits an encoded `Vec<I>` into its items' encodings, for a foreach.
pub type SplitFn = fn(&[u8]) -> Result<Vec<Vec<u8>>, crate::codec::Error>;

/// The type-erased runner of `S`.
pub fn runner<S: Step>() -> RunFn {
    run_encoded::<S>
}

fn run_encoded<S: Step>(
    input: bytes::Bytes,
) -> Pin<Box<dyn Future<Output = Result<Vec<bytes::Bytes>, TaskError>> + Send>> {
    Box::pin(async move {
        let input: S::Input = crate::codec::decode(&input).map_err(|source| TaskError::Input {
            expected: S::DECL.input,
            source,
        })?;
        let output = S::default().call(input).await.map_err(TaskError::Step)?;
        crate::codec::encode_owned(output).map_err(TaskError::Output)
    })
}
