//! Step values on the wire: postcard, a documented, compact, non-self-describing format.
//!
//! The orchestrator moves values between steps without knowing their types: a foreach splits
//! a `Vec<I>` into its items with a function the flow builder monomorphised, and a join builds
//! `Vec<T>` or a tuple by concatenating encodings, which is exactly postcard's layout (a varint
//! length, then the elements; a tuple is its elements in order).

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};

/// A value that cannot be encoded or decoded as the step's type.
pub type Error = postcard::Error;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value)
}

/// Decodes a value; trailing bytes are an error, so a wrong type is not silently accepted.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

/// Encodes a step's value. Vectors of `u8`, `f32` and `f64` are copied as one block: postcard
/// writes them as a varint length and their little-endian bytes, which is their memory on a
/// little-endian machine, so the bytes are the same as serde's and 256 MiB go by in a memcpy.
pub fn encode_value<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, Error> {
    let any = value as &dyn Any;
    #[cfg(target_endian = "little")]
    {
        if let Some(v) = any.downcast_ref::<Vec<f64>>() {
            return Ok(block(v.len(), as_bytes(v)));
        }
        if let Some(v) = any.downcast_ref::<Vec<f32>>() {
            return Ok(block(v.len(), as_bytes(v)));
        }
        if let Some(v) = any.downcast_ref::<Vec<u8>>() {
            return Ok(block(v.len(), v));
        }
    }
    let _ = any;
    encode(value)
}

/// Encodes a step's output, which it owns: [`encode_value`]'s blocks are not even copied, the
/// chunks are the varint length and the vector's own buffer.
pub fn encode_owned<T: Serialize + 'static>(value: T) -> Result<Vec<Bytes>, Error> {
    #[cfg(target_endian = "little")]
    {
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
        let value = any.downcast::<T>().expect("the value is a T");
        Ok(vec![Bytes::from(encode(&*value)?)])
    }
    #[cfg(not(target_endian = "little"))]
    Ok(vec![Bytes::from(encode(&value)?)])
}

/// A vector of plain numbers, seen as its bytes.
struct PlainBytes<T>(Vec<T>);

impl<T: Plain> AsRef<[u8]> for PlainBytes<T> {
    fn as_ref(&self) -> &[u8] {
        as_bytes(&self.0)
    }
}

fn owned_block<T: Plain + Send>(v: Vec<T>) -> Vec<Bytes> {
    let mut prefix = Vec::with_capacity(10);
    push_varint(&mut prefix, v.len() as u64);
    vec![Bytes::from(prefix), Bytes::from_owner(PlainBytes(v))]
}

/// Decodes a step's value, with the block fast path of [`encode_value`].
pub fn decode_value<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, Error> {
    #[cfg(target_endian = "little")]
    {
        let id = TypeId::of::<T>();
        let boxed: Option<Box<dyn Any>> = if id == TypeId::of::<Vec<f64>>() {
            Some(Box::new(from_block::<f64>(bytes)?))
        } else if id == TypeId::of::<Vec<f32>>() {
            Some(Box::new(from_block::<f32>(bytes)?))
        } else if id == TypeId::of::<Vec<u8>>() {
            Some(Box::new(from_block::<u8>(bytes)?))
        } else {
            None
        };
        if let Some(b) = boxed {
            return Ok(*b.downcast::<T>().expect("TypeId matched"));
        }
    }
    decode(bytes)
}

/// Plain numbers whose every bit pattern is a valid value.
trait Plain: Copy + Default + 'static {}
impl Plain for u8 {}
impl Plain for f32 {}
impl Plain for f64 {}

fn as_bytes<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: `Plain` types have no padding and no invalid bit patterns; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn block(len: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 10);
    push_varint(&mut out, len as u64);
    out.extend_from_slice(bytes);
    out
}

fn from_block<T: Plain>(bytes: &[u8]) -> Result<Vec<T>, Error> {
    let (len, rest) = read_varint(bytes).ok_or(postcard::Error::DeserializeBadVarint)?;
    let size = std::mem::size_of::<T>();
    if (rest.len() as u64) != len.saturating_mul(size as u64) {
        return Err(postcard::Error::DeserializeUnexpectedEnd);
    }
    // Not zero-filled first: the copy is the only pass over the new memory.
    let mut out: Vec<T> = Vec::with_capacity(len as usize);
    huge_pages(out.as_mut_ptr().cast(), rest.len());
    // SAFETY: the capacity holds exactly `rest.len()` bytes of `Plain` values (any bit pattern
    // is valid), all written before the length is set.
    unsafe {
        std::ptr::copy_nonoverlapping(rest.as_ptr(), out.as_mut_ptr().cast::<u8>(), rest.len());
        out.set_len(len as usize);
    }
    Ok(out)
}

/// Asks the kernel to back a large fresh buffer with transparent huge pages (where they are
/// enabled for `madvise`): filling 256 MiB then faults 128 times instead of 65,536. Advice only.
pub(crate) fn huge_pages(ptr: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    if len < 4 << 20 {
        return;
    }
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) & !(PAGE - 1);
    if end > start {
        // SAFETY: the range lies inside one live allocation; MADV_HUGEPAGE changes no contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// Splits an encoded `Vec<I>` into the encodings of its items.
pub fn split<I: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let items: Vec<I> = decode(bytes)?;
    items.iter().map(encode).collect()
}

/// The encoding of a `Vec<T>` whose items' encodings are `items`, in order.
pub fn join(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(Vec::len).sum::<usize>() + 10);
    push_varint(&mut out, items.len() as u64);
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
mod tests {
    use super::*;

    #[test]
    fn join_and_tuple_match_postcard() {
        let items: Vec<Vec<u8>> = (0..300u64).map(|i| encode(&(i * 7)).unwrap()).collect();
        let joined: Vec<u64> = decode(&join(&items)).unwrap();
        assert_eq!(joined, (0..300u64).map(|i| i * 7).collect::<Vec<_>>());
        let pair: (String, f64) = decode(&tuple(&[
            encode(&"a".to_string()).unwrap(),
            encode(&1.5f64).unwrap(),
        ]))
        .unwrap();
        assert_eq!(pair, ("a".to_string(), 1.5));
        let parts = split::<u64>(&encode(&vec![1u64, 2, 3]).unwrap()).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(decode::<u8>(&encode(&300u64).unwrap()).is_err());
    }

    #[test]
    fn block_fast_path_is_postcard() {
        let floats: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25 - 7.0).collect();
        assert_eq!(encode_value(&floats).unwrap(), encode(&floats).unwrap());
        assert_eq!(
            decode_value::<Vec<f64>>(&encode(&floats).unwrap()).unwrap(),
            floats
        );
        assert_eq!(
            encode_owned(floats.clone()).unwrap().concat(),
            encode(&floats).unwrap(),
            "the zero-copy chunks are postcard too"
        );
        assert_eq!(
            encode_owned(("a".to_string(), 2u8)).unwrap().concat(),
            encode(&("a".to_string(), 2u8)).unwrap()
        );
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(encode_value(&bytes).unwrap(), encode(&bytes).unwrap());
        assert_eq!(
            encode_owned(bytes.clone()).unwrap().concat(),
            encode(&bytes).unwrap()
        );
        assert_eq!(
            decode_value::<Vec<u8>>(&encode(&bytes).unwrap()).unwrap(),
            bytes
        );
        let small: Vec<f32> = vec![1.5, -2.0];
        assert_eq!(
            decode_value::<Vec<f32>>(&encode_value(&small).unwrap()).unwrap(),
            small
        );
        assert!(
            decode_value::<Vec<f64>>(&encode(&vec![1u8, 2, 3]).unwrap()).is_err(),
            "a wrong length is an error"
        );
    }
}
