//! The decoder: postcard's wire format into serde's data model, with numeric runs as blocks.
//!
//! When serde's own `Vec` visitor asks for a sequence of `f64`, `f32`, `u8` or `i8` (a field of
//! type `Vec<f64>`, a `Box<[f32]>`, an ndarray's data), the vector is built from the input by
//! one copy into memory allocated at its exact size, not element by element into a growing one.

use super::Error;
use super::block::{Plain, unzigzag, vec_from};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

#[cfg(test)]
thread_local! {
    /// How many sequences this thread decoded as blocks.
    pub(super) static PLAIN_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The input not yet decoded.
pub(super) struct Reader<'de> {
    pub(super) input: &'de [u8],
}

impl<'de> Reader<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if n > self.input.len() {
            return Err(Error::UnexpectedEnd);
        }
        let (taken, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    /// A varint of at most `bits` bits, as postcard reads one: no more bytes than the type needs,
    /// and no bits beyond its width.
    fn varint(&mut self, bits: u32) -> Result<u128, Error> {
        let max_bytes = bits.div_ceil(7);
        let mut n = 0u128;
        for i in 0..max_bytes {
            let byte = self.byte()?;
            n |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                let last_bits = bits - 7 * (max_bytes - 1);
                if i == max_bytes - 1 && u32::from(byte) >= 1 << last_bits {
                    return Err(Error::BadVarint);
                }
                return Ok(n);
            }
        }
        Err(Error::BadVarint)
    }

    fn len(&mut self) -> Result<usize, Error> {
        usize::try_from(self.varint(64)?).map_err(|_| Error::BadVarint)
    }

    fn str(&mut self) -> Result<&'de str, Error> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?).map_err(|_| Error::BadUtf8)
    }

    /// A sequence of `len` plain numbers as the `Vec` serde's visitor `V` would build, when `V`
    /// is that visitor for such a vector.
    fn plain_vec<V: Visitor<'de>>(&mut self, len: usize) -> Result<Option<V::Value>, Error> {
        fn as_vec<'de, V: Visitor<'de>, T: Plain>(
            reader: &mut Reader<'de>,
            len: usize,
        ) -> Result<Option<V::Value>, Error> {
            // Only serde's own visitor: another one producing a `Vec<f64>` may do anything with
            // the elements it is given (skip some, reorder them), and must see each one. The
            // type comparison first: the name is searched only for a vector of plain numbers.
            if typeid::of::<V::Value>() != typeid::of::<Vec<T>>()
                || !std::any::type_name::<V>().contains("VecVisitor")
            {
                return Ok(None);
            }
            let size = len
                .checked_mul(std::mem::size_of::<T>())
                .ok_or(Error::UnexpectedEnd)?;
            let vec = std::mem::ManuallyDrop::new(vec_from::<T>(reader.take(size)?));
            // SAFETY: `V::Value` is `Vec<T>`, which has no lifetimes, so they are one type; the
            // original is not dropped.
            Ok(Some(unsafe {
                std::ptr::read((&*vec as *const Vec<T>).cast::<V::Value>())
            }))
        }
        if cfg!(target_endian = "big") {
            return Ok(None);
        }
        let mut found = as_vec::<V, f64>(self, len)?;
        if found.is_none() {
            found = as_vec::<V, f32>(self, len)?;
        }
        if found.is_none() {
            found = as_vec::<V, u8>(self, len)?;
        }
        if found.is_none() {
            found = as_vec::<V, i8>(self, len)?;
        }
        #[cfg(test)]
        if found.is_some() {
            PLAIN_RUNS.with(|n| n.set(n.get() + 1));
        }
        Ok(found)
    }
}

/// Integers wider than a byte are varints, signed ones zigzag-mapped first.
macro_rules! varint_int {
    ($($method:ident => $visit:ident: $ty:ty, $from:expr);*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let n = self.varint(<$ty>::BITS)?;
            visitor.$visit($from(n) as $ty)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::NotSelfDescribing(
            "a value whose type is not known in advance",
        ))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::NotSelfDescribing("a field named in the data"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::NotSelfDescribing("skipping an unknown value"))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(Error::BadBool(other)),
        }
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.byte()?)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(self.byte()? as i8)
    }
    varint_int!(
        deserialize_u16 => visit_u16: u16, std::convert::identity;
        deserialize_u32 => visit_u32: u32, std::convert::identity;
        deserialize_u64 => visit_u64: u64, std::convert::identity;
        deserialize_u128 => visit_u128: u128, std::convert::identity;
        deserialize_i16 => visit_i16: i16, unzigzag;
        deserialize_i32 => visit_i32: i32, unzigzag;
        deserialize_i64 => visit_i64: i64, unzigzag;
        deserialize_i128 => visit_i128: i128, unzigzag
    );
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.take(4)?;
        visitor.visit_f32(f32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let bytes = self.take(8)?;
        visitor.visit_f64(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let s = self.str()?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Error::BadChar),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.len()?;
        visitor.visit_borrowed_bytes(self.take(len)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            other => Err(Error::BadOption(other)),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.len()?;
        if let Some(v) = self.plain_vec::<V>(len)? {
            return Ok(v);
        }
        visitor.visit_seq(Parts { reader: self, len })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Parts { reader: self, len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.len()?;
        visitor.visit_map(Parts { reader: self, len })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(fields.len(), visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }
}

/// The remaining `len` elements of a sequence, tuple or struct, or entries of a map.
struct Parts<'a, 'de> {
    reader: &'a mut Reader<'de>,
    len: usize,
}

impl<'de> de::SeqAccess<'de> for Parts<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // A claimed length beyond the input is not believed (no huge allocation from a bad byte).
        (self.len <= self.reader.input.len()).then_some(self.len)
    }
}

impl<'de> de::MapAccess<'de> for Parts<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.reader)
    }
    fn size_hint(&self) -> Option<usize> {
        (self.len <= self.reader.input.len()).then_some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let index = self.varint(32)? as u32;
        let value = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}
