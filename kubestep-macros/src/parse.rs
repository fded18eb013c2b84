//! Attribute tokens -> arguments with their tokens kept, so every error can point at its token.
//!
//! The grammar is `key = value, ...` where a value is a literal (`2`, `-1`, `0.5`, `"x"`,
//! `true`), a list `[v, ...]` or a map `{ key: v, ... }` with identifier or string keys. darling
//! cannot read `{ "team": "ml" }` (syn's `Meta` sees a block), hence this small parser.

use kubestep_core::{At, Value};
use proc_macro2::TokenStream;
use quote::ToTokens;
use std::borrow::Cow;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, Lit, LitStr, Token, braced, bracketed};

/// A value and the tokens it was written with.
pub struct Spanned {
    pub tokens: TokenStream,
    pub kind: Kind,
}

pub enum Kind {
    Scalar(Value),
    List(Vec<Spanned>),
    /// Entries with the tokens of their keys.
    Map(Vec<(String, TokenStream, Spanned)>),
}

/// One `key = value` argument.
pub struct Arg {
    pub key: Ident,
    pub value: Spanned,
}

/// The arguments of one attribute.
pub struct Args(pub Vec<Arg>);

// Keys are read with `parse_any`, so a keyword key (`type = 1`) gets "unknown parameter" rather
// than a parse error.
impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Args> {
        let mut args = Vec::new();
        while !input.is_empty() {
            let key = input.call(Ident::parse_any)?;
            let eq: Option<Token![=]> = input.parse()?;
            if eq.is_none() {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("expected `{key} = value`"),
                ));
            }
            let value: Spanned = input.parse()?;
            args.push(Arg { key, value });
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Args(args))
    }
}

impl Parse for Spanned {
    fn parse(input: ParseStream) -> syn::Result<Spanned> {
        let fork = input.fork();
        let kind = if input.peek(syn::token::Bracket) {
            let content;
            bracketed!(content in input);
            let items = content.parse_terminated(Spanned::parse, Token![,])?;
            Kind::List(items.into_iter().collect())
        } else if input.peek(syn::token::Brace) {
            let content;
            braced!(content in input);
            let mut entries = Vec::new();
            while !content.is_empty() {
                let (key, key_tokens) = if content.peek(LitStr) {
                    let s: LitStr = content.parse()?;
                    (s.value(), s.to_token_stream())
                } else {
                    let i = content.call(Ident::parse_any)?;
                    (i.to_string(), i.to_token_stream())
                };
                content.parse::<Token![:]>()?;
                let value: Spanned = content.parse()?;
                entries.push((key, key_tokens, value));
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![,]>()?;
            }
            Kind::Map(entries)
        } else {
            let negative = input.parse::<Option<Token![-]>>()?.is_some();
            let lit: Lit = input.parse().map_err(|e| {
                syn::Error::new(e.span(), "expected a value: a literal (2, 0.5, \"text\", true), a list [a, b] or a map { key: value }")
            })?;
            Kind::Scalar(scalar(&lit, negative)?)
        };
        // The tokens consumed, for spans that cover the whole value (such as `-1`).
        let tokens = tokens_between(&fork, input);
        Ok(Spanned { tokens, kind })
    }
}

fn tokens_between(start: ParseStream, end: ParseStream) -> TokenStream {
    let mut out = TokenStream::new();
    let _ = start.step(|cursor| {
        let mut c = *cursor;
        while c != end.cursor() {
            match c.token_tree() {
                Some((tt, next)) => {
                    out.extend([tt]);
                    c = next;
                }
                None => break,
            }
        }
        Ok(((), c))
    });
    out
}

fn scalar(lit: &Lit, negative: bool) -> syn::Result<Value> {
    let not_negative = || syn::Error::new_spanned(lit, "only numbers can be negative");
    Ok(match lit {
        Lit::Int(i) => {
            let n: i64 = i
                .base10_parse()
                .map_err(|_| syn::Error::new_spanned(lit, "integer too large"))?;
            Value::Int(if negative { -n } else { n })
        }
        Lit::Float(f) => {
            let x: f64 = f.base10_parse()?;
            if !x.is_finite() {
                return Err(syn::Error::new_spanned(lit, "float out of range"));
            }
            Value::Float(if negative { -x } else { x })
        }
        Lit::Str(s) if !negative => Value::Str(Cow::Owned(s.value())),
        Lit::Bool(b) if !negative => Value::Bool(b.value),
        Lit::Str(_) | Lit::Bool(_) => return Err(not_negative()),
        _ => {
            return Err(syn::Error::new_spanned(
                lit,
                "expected an integer, a float, a string or a boolean",
            ));
        }
    })
}

impl Spanned {
    /// The span-free value, for the checks in kubestep-core.
    pub fn value(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::List(items) => {
                Value::List(items.iter().map(Spanned::value).collect::<Vec<_>>().into())
            }
            Kind::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, _, v)| (Cow::Owned(k.clone()), v.value()))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }

    /// The tokens of the part of this value that `path` leads to.
    pub fn locate(&self, path: &[At]) -> &TokenStream {
        let Some((first, rest)) = path.split_first() else {
            return &self.tokens;
        };
        match (&self.kind, first) {
            (Kind::List(items), At::Index(i)) => {
                items.get(*i).map_or(&self.tokens, |v| v.locate(rest))
            }
            (Kind::Map(entries), At::Key(i)) => entries.get(*i).map_or(&self.tokens, |(_, k, _)| k),
            (Kind::Map(entries), At::Value(i)) => entries
                .get(*i)
                .map_or(&self.tokens, |(_, _, v)| v.locate(rest)),
            _ => &self.tokens,
        }
    }
}
