//! The step function's shape: zero or one owned input, `T` or `Result<T, E>`, sync or async.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// What the macro needs to know about the function.
pub struct Signature {
    /// The input type, if the step takes one.
    pub input: Option<Type>,
    /// The return type as written (`()` when none).
    pub ret: Type,
    /// The `T` of `Result<T, E>`, or the return type.
    pub output: Type,
    /// Whether the return type is a `Result` (its error becomes the task's failure).
    pub is_result: bool,
    pub is_async: bool,
}

impl Signature {
    /// Checks the function; each error points at the offending part.
    pub fn of(f: &ItemFn) -> syn::Result<Signature> {
        let sig = &f.sig;
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            return Err(syn::Error::new_spanned(
                &sig.generics,
                "a step cannot be generic: the pod re-launches it by name, so its types must be concrete",
            ));
        }
        if let Some(c) = &sig.constness {
            return Err(syn::Error::new_spanned(c, "a step cannot be a `const fn`"));
        }
        if let syn::Safety::Unsafe(u) = &sig.safety {
            return Err(syn::Error::new_spanned(
                u,
                "a step cannot be an `unsafe fn`",
            ));
        }
        if let Some(v) = &sig.variadic {
            return Err(syn::Error::new_spanned(v, "a step cannot be variadic"));
        }
        let mut inputs = sig.inputs.iter();
        let input = match inputs.next() {
            None => None,
            Some(FnArg::Receiver(r)) => {
                return Err(syn::Error::new_spanned(
                    r,
                    "a step is a free function; it cannot take `self`",
                ));
            }
            Some(FnArg::Typed(t)) => {
                check_owned(&t.ty)?;
                Some((*t.ty).clone())
            }
        };
        if let Some(extra) = inputs.next() {
            return Err(syn::Error::new_spanned(
                extra,
                "a step takes zero or one input (the previous step's output); combine several values into a tuple or struct",
            ));
        }
        let ret: Type = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, t) => (**t).clone(),
        };
        check_owned(&ret)?;
        let (output, is_result) = match result_ok_type(&ret) {
            Some(t) => (t, true),
            None => (ret.clone(), false),
        };
        Ok(Signature {
            input,
            ret,
            output,
            is_result,
            is_async: sig.asyncness.is_some(),
        })
    }

    /// The input type, `()` when the step takes none.
    pub fn input_type(&self) -> TokenStream {
        match &self.input {
            Some(t) => t.to_token_stream(),
            None => quote!(()),
        }
    }
}

/// Steps exchange values through the datastore, so they own them.
fn check_owned(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(r) => Err(syn::Error::new_spanned(
            r,
            "a step's input and output travel through the datastore, so they must be owned types (such as `String` or `Vec<T>`), not references",
        )),
        Type::ImplTrait(i) => Err(syn::Error::new_spanned(
            i,
            "a step's input and output must be concrete types, not `impl Trait`",
        )),
        _ => Ok(()),
    }
}

/// `T` for a return type spelled `Result<T, E>` or `Result<T>` (an alias such as
/// `anyhow::Result<T>` or `std::io::Result<T>`).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}
