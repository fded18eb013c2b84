//! kubestep-macros: `#[step]`, `#[kubernetes]`, `#[resources]`, `#[retry]` and `#[timeout]`.
//!
//! Stage 1 of kubestep's flow of data: attribute tokens are parsed (`parse`), checked by the
//! same rules kubestep-core applies at run time (`kubestep_core::spec`), and turned into a unit
//! struct that implements `kubestep::Step` with a static description of the step (`expand`).
//! Every mistake is a compile error at its token. Use these through the `kubestep` crate, whose
//! documentation is the manual.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod expand;
mod parse;
mod signature;

/// Marks a function without Kubernetes settings as a step. See the `kubestep` crate.
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand("step", args.into(), item.into()).into()
}

/// Makes a function a step that runs as a Kubernetes Job under `--with kubernetes`, with the
/// given settings. See the `kubestep` crate for every parameter.
#[proc_macro_attribute]
pub fn kubernetes(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand("kubernetes", args.into(), item.into()).into()
}

/// What a step needs (cpu, memory, disk, gpu, shared_memory), merged with `#[kubernetes]` by
/// taking the maximum.
#[proc_macro_attribute]
pub fn resources(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand("resources", args.into(), item.into()).into()
}

/// Retries a failed task: `#[retry(times = 3, minutes_between_retries = 2)]`.
#[proc_macro_attribute]
pub fn retry(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand("retry", args.into(), item.into()).into()
}

/// Limits a task's run time: `#[timeout(hours = 1, minutes = 30)]`.
#[proc_macro_attribute]
pub fn timeout(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand("timeout", args.into(), item.into()).into()
}
