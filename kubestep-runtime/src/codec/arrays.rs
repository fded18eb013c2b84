//! ndarray's owned arrays, stored from their own buffers (feature `ndarray`).
//!
//! ndarray's serde format is a struct of a version byte, the shape and the elements as a
//! sequence. The decoder already reads the elements as one block (serde's `Vec` visitor asks
//! for them); this writes an owned array of plain numbers in standard layout as the encoding of
//! its version and shape, then its memory, uncopied. Any other array goes through serde.

use super::block::{Plain, as_bytes, push_varint};
use super::{Error, PlainBytes, ser};
use bytes::Bytes;
use ndarray::{Array, Dimension, Ix1, Ix2, Ix3, Ix4, IxDyn};
use serde::Serialize;
use std::any::Any;

/// ndarray's `ARRAY_FORMAT_VERSION`, the first field of its serde format.
const FORMAT_VERSION: u8 = 1;

/// `value` as chunks when it is an owned array of `f64`, `f32` or `u8` of up to four
/// dimensions or dynamic; otherwise `value` back.
pub(super) fn owned_array(value: Box<dyn Any>) -> Result<Result<Vec<Bytes>, Error>, Box<dyn Any>> {
    if cfg!(target_endian = "big") {
        return Err(value);
    }
    as_array::<f64, Ix1>(value)
        .or_else(as_array::<f64, Ix2>)
        .or_else(as_array::<f64, Ix3>)
        .or_else(as_array::<f64, Ix4>)
        .or_else(as_array::<f64, IxDyn>)
        .or_else(as_array::<f32, Ix1>)
        .or_else(as_array::<f32, Ix2>)
        .or_else(as_array::<f32, Ix3>)
        .or_else(as_array::<f32, Ix4>)
        .or_else(as_array::<f32, IxDyn>)
        .or_else(as_array::<u8, Ix1>)
        .or_else(as_array::<u8, Ix2>)
        .or_else(as_array::<u8, Ix3>)
        .or_else(as_array::<u8, Ix4>)
        .or_else(as_array::<u8, IxDyn>)
}

fn as_array<A: Plain + Send + Serialize, D: Dimension + Serialize + 'static>(
    value: Box<dyn Any>,
) -> Result<Result<Vec<Bytes>, Error>, Box<dyn Any>> {
    value.downcast::<Array<A, D>>().map(|array| chunks(*array))
}

fn chunks<A: Plain + Send + Serialize, D: Dimension + Serialize>(
    array: Array<A, D>,
) -> Result<Vec<Bytes>, Error> {
    if !array.is_standard_layout() {
        // Transposed or strided: serde writes the elements in logical order.
        return super::encode_chunks(&array);
    }
    let len = array.len();
    let mut prefix = ser::Writer::default();
    (FORMAT_VERSION, array.raw_dim()).serialize(&mut prefix)?;
    let (buffer, offset) = array.into_raw_vec_and_offset();
    let mut prefix = prefix.into_vec();
    push_varint(&mut prefix, len as u128);
    let start = offset.unwrap_or(0);
    let body = if start == 0 && buffer.len() == len {
        Bytes::from_owner(PlainBytes(buffer))
    } else {
        // The elements are a contiguous part of the buffer (the array was sliced in place).
        Bytes::copy_from_slice(as_bytes(&buffer[start..start + len]))
    };
    Ok(vec![Bytes::from(prefix), body])
}
