//! Step values on the wire, between a step's return and the next step's arguments: postcard's
//! format (documented, compact, not self-describing), written and read by this module's own
//! serde encoder and decoder so that numeric arrays move as blocks of memory.
//!
//! The orchestrator moves values between steps without knowing their types: a foreach splits
//! a `Vec<I>` into its items with a function the flow builder monomorphised, and a join builds
//! `Vec<T>` or a tuple by concatenating encodings, which is exactly postcard's layout (a varint
//! length, then the elements; a tuple is its elements in order).
//!
//! postcard writes `f64`, `f32`, `u8` and `i8` as their little-endian bytes, so a `Vec` of them
//! is a varint length and then the vector's memory. The encoder ([`ser`]) and decoder ([`de`])
//! copy such runs whole wherever they sit in a value (a struct's field, a tuple's element, a
//! map's values), which postcard's own serde implementation cannot: serde hands a format one
//! element at a time unless the format looks at the type it is given, as these do. The bytes
//! are postcard's, checked against postcard itself in the tests. Behind features, `arrays`
//! stores ndarray's owned arrays from their own buffers and `arrow` makes Arrow record batches
//! step values.

#[cfg(feature = "ndarray")]
mod arrays;
#[cfg(feature = "arrow")]
pub mod arrow;
mod block;
mod de;
mod ser;

use block::{Plain, as_bytes, push_varint};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;

/// A value that cannot be encoded, or bytes that do not decode as the expected type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes end inside the value: cut short, or written for another type.
    #[error("the bytes end before the value does (cut short, or another type's)")]
    UnexpectedEnd,
    /// Bytes follow a complete value: written for another type.
    #[error("{0} bytes follow the value (written for another type)")]
    TrailingBytes(usize),
    /// An integer or length longer than its type allows.
    #[error("an integer or length is malformed or too large for its type")]
    BadVarint,
    /// A `bool` byte other than 0 and 1.
    #[error("a bool is {0}, not 0 or 1")]
    BadBool(u8),
    /// An `Option` tag other than 0 and 1.
    #[error("an Option's tag is {0}, not 0 (None) or 1 (Some)")]
    BadOption(u8),
    /// A string that is not UTF-8.
    #[error("a string is not valid UTF-8")]
    BadUtf8,
    /// A `char` that is not exactly one character.
    #[error("a char is not exactly one UTF-8 character")]
    BadChar,
    /// A sequence or map that does not say its length before its elements.
    #[error("a sequence or map of unknown length: the format writes the length first")]
    LengthUnknown,
    /// A type that needs a self-describing format (`deserialize_any`, untagged enums,
    /// `#[serde(flatten)]`).
    #[error("not supported by this compact format, which does not describe itself: {0}")]
    NotSelfDescribing(&'static str),
    /// The type's own `Serialize` or `Deserialize` refused the value.
    #[error("{0}")]
    Custom(String),
}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut w = ser::Writer::default();
    value.serialize(&mut w)?;
    Ok(w.into_vec())
}

/// Decodes a value; trailing bytes are an error, so a wrong type is not silently accepted.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut r = de::Reader { input: bytes };
    let value = T::deserialize(&mut r)?;
    match r.input.len() {
        0 => Ok(value),
        n => Err(Error::TrailingBytes(n)),
    }
}

/// Encodes a step's output, which it owns, as consecutive chunks: a large numeric run inside it
/// is a chunk of its own, and a bare `Vec<f64>`, `Vec<f32>` or `Vec<u8>` (or, with the
/// `ndarray` feature, an owned array of those) is not even copied: the chunks are its prefix
/// and the value's own buffer.
pub fn encode_owned<T: Serialize + 'static>(value: T) -> Result<Vec<Bytes>, Error> {
    if cfg!(target_endian = "little") {
        let any: Box<dyn Any> = Box::new(value);
        let any = match any.downcast::<Vec<f64>>() {
            Ok(v) => return Ok(owned_block(*v)),
            Err(any) => any,
        };
        let any = match any.downcast::<Vec<f32>>() {
            Ok(v) => return Ok(owned_block(*v)),
            Err(any) => any,
        };
        let any = match any.downcast::<Vec<u8>>() {
            Ok(v) => return Ok(owned_block(*v)),
            Err(any) => any,
        };
        #[cfg(feature = "ndarray")]
        let any = match arrays::owned_array(any) {
            Ok(chunks) => return chunks,
            Err(any) => any,
        };
        #[cfg(feature = "arrow")]
        let any = match any.downcast::<arrow::Table>() {
            // The IPC stream is the byte string's own chunk: written once, not copied again.
            Ok(table) => {
                let stream = arrow::ipc_stream(&table).map_err(Error::Custom)?;
                return Ok(length_prefixed(stream.len(), Bytes::from(stream)));
            }
            Err(any) => any,
        };
        let value = any.downcast::<T>().expect("the value is a T");
        return encode_chunks(&*value);
    }
    encode_chunks(&value)
}

fn encode_chunks<T: Serialize + ?Sized>(value: &T) -> Result<Vec<Bytes>, Error> {
    let mut w = ser::Writer::default();
    value.serialize(&mut w)?;
    Ok(w.into_chunks())
}

/// A vector of plain numbers, seen as its bytes.
struct PlainBytes<T>(Vec<T>);

impl<T: Plain> AsRef<[u8]> for PlainBytes<T> {
    fn as_ref(&self) -> &[u8] {
        as_bytes(&self.0)
    }
}

fn owned_block<T: Plain + Send>(v: Vec<T>) -> Vec<Bytes> {
    length_prefixed(v.len(), Bytes::from_owner(PlainBytes(v)))
}

/// A sequence or byte string as chunks: its varint length `len`, then `body` uncopied.
fn length_prefixed(len: usize, body: Bytes) -> Vec<Bytes> {
    let mut prefix = Vec::with_capacity(10);
    push_varint(&mut prefix, len as u128);
    vec![Bytes::from(prefix), body]
}

/// Splits an encoded `Vec<I>` into the encodings of its items.
pub fn split<I: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let items: Vec<I> = decode(bytes)?;
    items.iter().map(encode).collect()
}

/// The encoding of a `Vec<T>` whose items' encodings are `items`, in order.
pub fn join(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(Vec::len).sum::<usize>() + 10);
    push_varint(&mut out, items.len() as u128);
    for i in items {
        out.extend_from_slice(i);
    }
    out
}

/// The encoding of a tuple whose elements' encodings are `parts`, in order.
pub fn tuple(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[cfg(test)]
mod tests;
