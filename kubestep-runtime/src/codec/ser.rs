//! The encoder: serde's data model in postcard's wire format, with numeric runs as blocks.
//!
//! A `Vec` or slice of `f64`, `f32`, `u8` or `i8` anywhere in a value (a struct's field, a
//! tuple's element, a map's value) is serialized by serde through `collect_seq`; this encoder
//! recognises it there and copies its memory in one block instead of element by element. Large
//! blocks go to a chunk of their own, allocated once at their exact size, so a 256 MiB field is
//! never copied again by a growing buffer.

use super::Error;
use super::block::{Plain, as_bytes, huge_pages, push_varint, zigzag};
use bytes::Bytes;
use serde::ser::{self, Serialize};

/// Blocks at least this large get a chunk of their own.
const OWN_CHUNK: usize = 1 << 20;

/// The encoded value so far: finished chunks, then the bytes being appended to.
#[derive(Default)]
pub(super) struct Writer {
    chunks: Vec<Bytes>,
    out: Vec<u8>,
    /// The length of the sequence just begun, until its first element says its type.
    seq_len: Option<usize>,
}

impl Writer {
    /// The encoding, as consecutive chunks.
    pub(super) fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.out.is_empty() || self.chunks.is_empty() {
            self.chunks.push(Bytes::from(self.out));
        }
        self.chunks
    }

    /// The encoding in one buffer.
    pub(super) fn into_vec(mut self) -> Vec<u8> {
        if self.chunks.is_empty() {
            return self.out;
        }
        let len = self.chunks.iter().map(Bytes::len).sum::<usize>() + self.out.len();
        let mut all = Vec::with_capacity(len);
        huge_pages(all.as_mut_ptr(), len);
        for c in self.chunks.drain(..) {
            all.extend_from_slice(&c);
        }
        all.extend_from_slice(&self.out);
        all
    }

    fn varint(&mut self, n: u128) {
        push_varint(&mut self.out, n);
    }

    /// Ends the current chunk, so a large run can start one of its own.
    fn end_chunk(&mut self) {
        if !self.out.is_empty() {
            let before = std::mem::take(&mut self.out);
            self.chunks.push(Bytes::from(before));
        }
    }

    /// Makes room for a sequence of `count` elements of `T` written one by one (ndarray's
    /// serde support writes its elements so), when `T` is plain: at their exact size and in a
    /// chunk of their own when large, so the buffer never grows by copying.
    fn reserve_run<T: ?Sized>(&mut self, count: usize) {
        let size = if typeid::of::<T>() == typeid::of::<f64>() {
            8
        } else if typeid::of::<T>() == typeid::of::<f32>() {
            4
        } else {
            return;
        };
        // A length is a claim of the value's own `Serialize`: believe at most 1 GiB of it.
        let bytes = count.saturating_mul(size).min(1 << 30);
        if bytes < OWN_CHUNK {
            self.out.reserve(bytes);
            return;
        }
        self.end_chunk();
        self.out = Vec::with_capacity(bytes);
        huge_pages(self.out.as_mut_ptr(), bytes);
    }

    /// A length-prefixed run of bytes.
    fn block(&mut self, count: usize, bytes: &[u8]) {
        self.varint(count as u128);
        if bytes.len() < OWN_CHUNK {
            self.out.extend_from_slice(bytes);
            return;
        }
        self.end_chunk();
        let mut own = Vec::with_capacity(bytes.len());
        huge_pages(own.as_mut_ptr(), bytes.len());
        own.extend_from_slice(bytes);
        self.chunks.push(Bytes::from(own));
    }
}

/// `iter`'s elements as one block of bytes, when it is a `&Vec<T>` or `&[T]` of a [`Plain`]
/// type (what serde passes to `collect_seq` for those), with the element count.
fn plain_run<I>(iter: &I) -> Option<(usize, &[u8])> {
    fn as_run<'a, I, T: Plain>(iter: &'a I) -> Option<(usize, &'a [u8])> {
        let id = typeid::of::<I>();
        let slice: &'a [T] = if id == typeid::of::<&Vec<T>>() {
            // SAFETY: `I` is `&Vec<T>` up to lifetimes, and the borrow it holds outlives `'a`
            // (a reference to `I` lives for `'a`).
            unsafe { *(iter as *const I).cast::<&'a Vec<T>>() }
        } else if id == typeid::of::<&[T]>() {
            // SAFETY: as above, for `&[T]`.
            unsafe { *(iter as *const I).cast::<&'a [T]>() }
        } else {
            return None;
        };
        Some((slice.len(), as_bytes(slice)))
    }
    if cfg!(target_endian = "big") {
        return None;
    }
    as_run::<I, f64>(iter)
        .or_else(|| as_run::<I, f32>(iter))
        .or_else(|| as_run::<I, u8>(iter))
        .or_else(|| as_run::<I, i8>(iter))
}

impl ser::Serializer for &mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i128(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i128(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.serialize_i128(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.varint(zigzag(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.out.push(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u128(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u128(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.serialize_u128(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.block(v.len(), v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.block(v.len(), v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        self.out.push(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.varint(index.into());
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.varint(index.into());
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        let len = len.ok_or(Error::LengthUnknown)?;
        self.varint(len as u128);
        self.seq_len = Some(len);
        Ok(self)
    }
    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        if let Some((count, bytes)) = plain_run(&iter) {
            self.block(count, bytes);
            return Ok(());
        }
        let iter = iter.into_iter();
        let len = match iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let mut seq = self.serialize_seq(len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint(index.into());
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.varint(len.ok_or(Error::LengthUnknown)? as u128);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint(index.into());
        Ok(self)
    }
}

/// Compound values are their parts in order: one impl serves every kind.
macro_rules! compound {
    ($($trait:ident :: $method:ident $(($key:ident))?),*) => {$(
        impl ser::$trait for &mut Writer {
            type Ok = ();
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), Error> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}
compound!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(key),
    SerializeStructVariant::serialize_field(key)
);

impl ser::SerializeSeq for &mut Writer {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        if let Some(count) = self.seq_len.take() {
            self.reserve_run::<T>(count);
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        self.seq_len = None;
        Ok(())
    }
}

impl ser::SerializeMap for &mut Writer {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}
