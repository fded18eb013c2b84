//! Arrow record batches as step values (feature `arrow`), in Arrow's IPC stream format, the
//! format the Arrow ecosystem shares (pyarrow, Polars, DuckDB, DataFusion read it).
//!
//! A `RecordBatch` is not `Serialize`, and kubestep cannot make it so: a step returns a
//! [`Table`] (a `RecordBatch` that derefs to it), or a struct field holds a `RecordBatch` with
//! `#[serde(with = "kubestep::arrow")]`. On the wire it is a byte string holding one IPC
//! stream (schema, then the batch): the column buffers written once into the stream, and read
//! by one copy of the stream into aligned memory that the decoded columns then point into.

use super::block::huge_pages;
use arrow_array::RecordBatch;
use arrow_buffer::{Buffer, MutableBuffer};
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

/// A record batch as a step's value: `Table(batch)`, or `batch.into()`; it derefs to the
/// batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Table(pub RecordBatch);

impl std::ops::Deref for Table {
    type Target = RecordBatch;
    fn deref(&self) -> &RecordBatch {
        &self.0
    }
}

impl From<RecordBatch> for Table {
    fn from(batch: RecordBatch) -> Table {
        Table(batch)
    }
}

impl From<Table> for RecordBatch {
    fn from(table: Table) -> RecordBatch {
        table.0
    }
}

impl Serialize for Table {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        deserialize(deserializer).map(Table)
    }
}

/// Writes `batch` as one Arrow IPC stream: for `#[serde(with = "kubestep::arrow")]`.
pub fn serialize<S: Serializer>(batch: &RecordBatch, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(&ipc_stream(batch).map_err(ser::Error::custom)?)
}

/// Reads a batch written by [`serialize`]: for `#[serde(with = "kubestep::arrow")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RecordBatch, D::Error> {
    deserializer.deserialize_bytes(IpcStream)
}

/// The batch as an IPC stream, in a buffer sized for it up front.
pub(super) fn ipc_stream(batch: &RecordBatch) -> Result<Vec<u8>, String> {
    let fail = |e: arrow_schema::ArrowError| format!("writing an Arrow record batch as IPC: {e}");
    let room = batch.get_array_memory_size() + 64 * (batch.num_columns() + 16);
    let mut writer =
        StreamWriter::try_new(Vec::with_capacity(room), &batch.schema()).map_err(fail)?;
    writer.write(batch).map_err(fail)?;
    writer.into_inner().map_err(fail)
}

struct IpcStream;

impl<'de> Visitor<'de> for IpcStream {
    type Value = RecordBatch;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an Arrow IPC stream of one record batch")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<RecordBatch, E> {
        let fail = |e: arrow_schema::ArrowError| {
            E::custom(format!("not an Arrow IPC stream of one record batch: {e}"))
        };
        // One copy into an aligned buffer; the decoded columns are slices of it, where a
        // reader would copy each column again into memory it zeroed first.
        let mut aligned = MutableBuffer::with_capacity(bytes.len());
        huge_pages(aligned.as_mut_ptr(), bytes.len());
        aligned.extend_from_slice(bytes);
        let mut buffer = Buffer::from(aligned);
        let mut decoder = StreamDecoder::new();
        let mut batch = None;
        while !buffer.is_empty() {
            if let Some(b) = decoder.decode(&mut buffer).map_err(fail)?
                && batch.replace(b).is_some()
            {
                return Err(E::custom(
                    "an Arrow IPC stream of more than one record batch (a Table holds one)",
                ));
            }
        }
        decoder.finish().map_err(fail)?;
        batch.ok_or_else(|| E::custom("an Arrow IPC stream with no record batch"))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<RecordBatch, E> {
        self.visit_bytes(&bytes)
    }
}
