//! Code generation: the step function becomes a unit struct that implements `Step` with a
//! static description of its decorators, and derefs to the original function.

use crate::parse::Args;
use crate::signature::Signature;
use kubestep_core::spec::{Place, StepSpec};
use kubestep_core::{Arg, Decorator, DecoratorKind, Value};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::{Attribute, ItemFn, Meta};

/// One kubestep attribute found on the function.
struct Found {
    /// `None` for `#[step]`.
    kind: Option<DecoratorKind>,
    /// Where to point errors about the attribute as a whole.
    span_tokens: Option<TokenStream>,
    args: Args,
}

impl Found {
    fn name(&self) -> &'static str {
        self.kind.map_or("step", DecoratorKind::name)
    }

    fn error(&self, tokens: Option<&TokenStream>, message: &str) -> syn::Error {
        match tokens.or(self.span_tokens.as_ref()) {
            Some(t) => syn::Error::new_spanned(t, message),
            None => syn::Error::new(Span::call_site(), message),
        }
    }
}

const NAMES: [&str; 5] = ["step", "kubernetes", "resources", "retry", "timeout"];

/// Whether an attribute is one of kubestep's (`#[retry]` or `#[kubestep::retry]`).
fn ours(attr: &Attribute) -> Option<&'static str> {
    let segs: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let name = match segs.as_slice() {
        [n] => n,
        [k, n] if k == "kubestep" => n,
        _ => return None,
    };
    NAMES.iter().copied().find(|x| x == name)
}

/// Expands the first kubestep attribute on a function; it handles the others found there too.
pub fn expand(invoked: &'static str, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut f: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                Span::call_site(),
                format!("#[{invoked}] goes on a function: `fn name(input: T) -> U`"),
            );
            let e = e.to_compile_error();
            return quote!(#item #e);
        }
    };
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut found = Vec::new();
    // A parse error is reported; the attribute still counts, so no second error follows.
    let args = syn::parse2::<Args>(args).unwrap_or_else(|e| {
        errors.push(e);
        Args(Vec::new())
    });
    found.push(Found {
        kind: DecoratorKind::from_name(invoked),
        span_tokens: None,
        args,
    });
    let mut kept = Vec::new();
    for attr in std::mem::take(&mut f.attrs) {
        let Some(name) = ours(&attr) else {
            kept.push(attr);
            continue;
        };
        let args = match &attr.meta {
            Meta::Path(_) => Ok(Args(Vec::new())),
            Meta::List(l) => syn::parse2::<Args>(l.tokens.clone()),
            Meta::NameValue(nv) => Err(syn::Error::new_spanned(
                nv,
                format!("write #[{name}(key = value, ...)]"),
            )),
        };
        match args {
            Ok(a) => found.push(Found {
                kind: DecoratorKind::from_name(name),
                span_tokens: Some(attr.to_token_stream()),
                args: a,
            }),
            Err(e) => errors.push(e),
        }
    }
    f.attrs = kept;
    check_attributes(&f, &found, &mut errors);
    let decorators = decorators(&found);
    if let Err(spec_errors) = StepSpec::from_decorators(&decorators) {
        for e in spec_errors {
            let Some(d) = found.iter().find(|d| d.kind == Some(e.decorator)) else {
                continue;
            };
            let arg = e.arg.and_then(|i| d.args.0.get(i));
            let tokens = match (&e.place, arg) {
                (Place::Key, Some(a)) => Some(a.key.to_token_stream()),
                (Place::Value(path), Some(a)) => Some(a.value.locate(path).clone()),
                _ => None,
            };
            errors.push(d.error(tokens.as_ref(), &e.message));
        }
    }
    let errors: TokenStream = errors.iter().map(syn::Error::to_compile_error).collect();
    let out = match Signature::of(&f) {
        Ok(sig) => {
            let step = generate(&f, &sig, &found);
            quote!(#step #errors)
        }
        // Keep the function as written, so its callers see one error, not a cascade.
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#f #errors #e)
        }
    };
    if std::env::var_os("KUBESTEP_MACROS_DEBUG").is_some() {
        eprintln!("{out}");
    }
    out
}

/// Rules about the attributes themselves: no duplicates, `#[step]` takes nothing, and helper
/// decorators need a step.
fn check_attributes(f: &ItemFn, found: &[Found], errors: &mut Vec<syn::Error>) {
    for (i, d) in found.iter().enumerate() {
        if found[..i].iter().any(|o| o.name() == d.name()) {
            errors.push(d.error(
                None,
                &format!(
                    "#[{}] is given twice on this step; merge the two into one",
                    d.name()
                ),
            ));
        }
        if d.kind.is_none()
            && let Some(a) = d.args.0.first()
        {
            errors.push(syn::Error::new_spanned(
                &a.key,
                "#[step] takes no arguments; settings go in #[kubernetes(...)], #[resources(...)], #[retry(...)] or #[timeout(...)]",
            ));
        }
    }
    let is_step = found
        .iter()
        .any(|d| matches!(d.kind, None | Some(DecoratorKind::Kubernetes)));
    if !is_step && let Some(d) = found.first() {
        let message = format!(
            "#[{}] describes a step, but `{}` is not one: add #[step] or #[kubernetes(...)]",
            d.name(),
            f.sig.ident
        );
        errors.push(d.error(None, &message));
    }
}

/// The span-free decorators, in the order written, for kubestep-core's checks. A repeated
/// decorator is left out: `check_attributes` has reported it at its own attribute.
fn decorators(found: &[Found]) -> Vec<Decorator> {
    found
        .iter()
        .enumerate()
        .filter(|(i, d)| !found[..*i].iter().any(|o| o.kind == d.kind))
        .filter_map(|(_, d)| {
            let kind = d.kind?;
            let args: Vec<Arg> = d
                .args
                .0
                .iter()
                .map(|a| Arg {
                    key: a.key.to_string().into(),
                    value: a.value.value(),
                })
                .collect();
            Some(Decorator {
                kind,
                args: args.into(),
            })
        })
        .collect()
}

fn value_tokens(v: &Value) -> TokenStream {
    let p = quote!(::kubestep::__private);
    match v {
        Value::Bool(b) => quote!(#p::Value::Bool(#b)),
        Value::Int(i) => quote!(#p::Value::Int(#i)),
        Value::Float(x) => quote!(#p::Value::Float(#x)),
        Value::Str(s) => {
            let s = s.as_ref();
            quote!(#p::Value::Str(#p::Cow::Borrowed(#s)))
        }
        Value::List(items) => {
            let items = items.iter().map(value_tokens);
            quote!(#p::Value::List(#p::Cow::Borrowed(&[#(#items),*])))
        }
        Value::Map(entries) => {
            let entries = entries.iter().map(|(k, v)| {
                let (k, v) = (k.as_ref(), value_tokens(v));
                quote!((#p::Cow::Borrowed(#k), #v))
            });
            quote!(#p::Value::Map(#p::Cow::Borrowed(&[#(#entries),*])))
        }
    }
}

fn decorator_tokens(found: &[Found]) -> TokenStream {
    let p = quote!(::kubestep::__private);
    let items = decorators(found).into_iter().map(|d| {
        let kind = format_ident!("{}", format!("{:?}", d.kind));
        let args = d.args.iter().map(|a| {
            let (key, value) = (a.key.as_ref(), value_tokens(&a.value));
            quote!(#p::Arg { key: #p::Cow::Borrowed(#key), value: #value })
        });
        quote!(#p::Decorator { kind: #p::DecoratorKind::#kind, args: #p::Cow::Borrowed(&[#(#args),*]) })
    });
    quote!(&[#(#items),*])
}

fn doc_string(f: &ItemFn) -> String {
    let lines: Vec<String> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_string()
}

fn type_string(t: &impl ToTokens) -> String {
    t.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace("< ", "<")
        .replace(" ,", ",")
        .replace(" :: ", "::")
}

fn generate(f: &ItemFn, sig: &Signature, found: &[Found]) -> TokenStream {
    let p = quote!(::kubestep::__private);
    let name = &f.sig.ident;
    let vis = &f.vis;
    let inner = format_ident!("__kubestep_{}", name);
    let name_str = name.to_string();
    let doc = doc_string(f);
    let input = sig.input_type();
    let (output, ret) = (&sig.output, &sig.ret);
    let input_str = type_string(&input);
    let output_str = type_string(output);
    let is_async = sig.is_async;
    let decorators = decorator_tokens(found);
    let docs: Vec<&Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .collect();
    let others: Vec<&Attribute> = f
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc"))
        .collect();

    let mut inner_fn = f.clone();
    inner_fn.sig.ident = inner.clone();
    inner_fn.vis = syn::Visibility::Inherited;
    inner_fn.attrs = others.into_iter().cloned().collect();

    let call_inner = match &sig.input {
        Some(_) => quote!(#inner(input)),
        None => quote!({ let () = input; #inner() }),
    };
    let awaited = if is_async {
        quote!(#call_inner.await)
    } else {
        call_inner
    };
    let into_result = if sig.is_result {
        quote!(#p::into_step_result(#awaited))
    } else {
        quote!(::core::result::Result::Ok(#awaited))
    };
    // The plain-function view: `square(3)` calls the original through Deref.
    let (fn_type, fn_value, boxed) = {
        let args = sig.input.iter();
        if is_async {
            let boxed_name = format_ident!("__kubestep_{}_boxed", name);
            let params = sig.input.as_ref().map(|t| quote!(input: #t));
            let pass = sig.input.as_ref().map(|_| quote!(input));
            (
                quote!(fn(#(#args),*) -> #p::Pin<#p::Box<dyn #p::Future<Output = #ret> + ::core::marker::Send>>),
                quote!(#boxed_name),
                quote! {
                    #[doc(hidden)]
                    fn #boxed_name(#params) -> #p::Pin<#p::Box<dyn #p::Future<Output = #ret> + ::core::marker::Send>> {
                        #p::Box::pin(#inner(#pass))
                    }
                },
            )
        } else {
            (quote!(fn(#(#args),*) -> #ret), quote!(#inner), quote!())
        }
    };
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default)]
        #vis struct #name;

        #[doc(hidden)]
        #[allow(non_snake_case)]
        #inner_fn

        #boxed

        // `Input` and `Output` keep the user's spans, so a type that is not Serialize is reported
        // at the function's signature.
        impl #p::Step for #name {
            type Input = #input;
            type Output = #output;
            const DECL: &'static #p::StepDecl = &#p::StepDecl {
                name: #name_str,
                doc: #doc,
                input: #input_str,
                output: #output_str,
                is_async: #is_async,
                decorators: #decorators,
            };

            fn call(self, input: Self::Input) -> #p::StepFuture<Self::Output> {
                #p::Box::pin(async move { #into_result })
            }
        }

        impl ::core::ops::Deref for #name {
            type Target = #fn_type;

            fn deref(&self) -> &Self::Target {
                const F: #fn_type = #fn_value;
                &F
            }
        }
    }
}
