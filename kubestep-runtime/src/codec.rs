//! Step values on the wire: postcard, a documented, compact, non-self-describing format.
//!
//! The orchestrator moves values between steps without knowing their types: a foreach splits
//! a `Vec<I>` into its items with a function the flow builder monomorphised, and a join builds
//! `Vec<T>` or a tuple by concatenating encodings, which is exactly postcard's layout (a varint
//! length, then the elements; a tuple is its elements in order).

use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// Splits an encoded `Vec<I>` into the encodings of its items.
pub fn split<I: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let items: Vec<I> = decode(bytes)?;
    items.iter().map(encode).collect()
}

/// The encoding of a `Vec<T>` whose items' encodings are `items`, in order.
pub fn join(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(Vec::len).sum::<usize>() + 10);
    let mut n = items.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
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
}
