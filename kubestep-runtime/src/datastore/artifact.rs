//! The artifact envelope: a small header, then the payload, compressed when that pays.
//!
//! ```text
//! "KSA1" | compression (0 raw, 1 zstd) | payload length (u64 LE) | BLAKE3 of the payload (32) | bytes
//! ```
//! The address is the BLAKE3 of the uncompressed payload, so identity does not depend on the
//! compression; reads decompress and check it.

use bytes::Bytes;

/// Bytes before the payload.
const HEADER: usize = 4 + 1 + 8 + 32;
const MAGIC: &[u8; 4] = b"KSA1";
/// Compress only when a sample shrinks by at least this factor: numeric arrays barely compress.
const WORTH_IT: f64 = 1.2;
const SAMPLE: usize = 1 << 20;

/// An artifact that does not decode to what its address promises.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not an artifact at all, or cut short.
    #[error("not a kubestep artifact (bad or truncated header)")]
    Header,
    /// Decompression failed.
    #[error("the compressed payload is damaged: {0}")]
    Decompress(std::io::Error),
    /// Length or hash differ from the header or the address.
    #[error("content does not match its hash: expected {expected}, found {actual}")]
    Hash {
        /// The hash the address and header promise.
        expected: String,
        /// The hash of what was read.
        actual: String,
    },
}

/// BLAKE3 of a payload, on every core for large ones.
fn hash(payload: &[u8]) -> blake3::Hash {
    if payload.len() >= 1 << 20 {
        blake3::Hasher::new().update_rayon(payload).finalize()
    } else {
        blake3::hash(payload)
    }
}

/// A payload ready to store: its address, the header, and the (maybe compressed) body, which
/// is the payload's own chunks, uncopied, when it is stored raw.
pub struct Sealed {
    /// The content address.
    pub id: String,
    /// The envelope header.
    pub header: Vec<u8>,
    /// What follows the header, in order.
    pub body: Vec<Bytes>,
}

/// Wraps a payload given as chunks (a step's output arrives as a small prefix and its data's
/// own buffer, so 256 MiB are never copied to be stored).
pub fn seal(chunks: Vec<Bytes>) -> Sealed {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let mut hasher = blake3::Hasher::new();
    for c in &chunks {
        if c.len() >= 1 << 20 {
            hasher.update_rayon(c);
        } else {
            hasher.update(c);
        }
    }
    let digest = hasher.finalize();
    let mut sample = Vec::with_capacity(len.min(SAMPLE));
    for c in &chunks {
        let room = SAMPLE - sample.len();
        sample.extend_from_slice(&c[..c.len().min(room)]);
        if sample.len() == SAMPLE {
            break;
        }
    }
    let compressed = (sample.len() >= 512)
        .then(|| zstd::bulk::compress(&sample, 1).ok())
        .flatten()
        .filter(|c| sample.len() as f64 / c.len().max(1) as f64 >= WORTH_IT)
        .and_then(|_| zstd::bulk::compress(&chunks.concat(), 1).ok());
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.push(u8::from(compressed.is_some()));
    header.extend_from_slice(&(len as u64).to_le_bytes());
    header.extend_from_slice(digest.as_bytes());
    let body = match compressed {
        Some(c) => vec![Bytes::from(c)],
        None => chunks,
    };
    Sealed {
        id: digest.to_hex().to_string(),
        header,
        body,
    }
}

/// Unwraps stored bytes and checks them against `expected` (the address).
pub fn open(stored: Bytes, expected: &str) -> Result<Bytes, Error> {
    if stored.len() < HEADER || &stored[..4] != MAGIC {
        return Err(Error::Header);
    }
    let len = u64::from_le_bytes(stored[5..13].try_into().map_err(|_| Error::Header)?) as usize;
    let promised = blake3::Hash::from_hex(expected).map_err(|_| Error::Header)?;
    let payload = match stored[4] {
        0 => stored.slice(HEADER..),
        1 => {
            Bytes::from(zstd::bulk::decompress(&stored[HEADER..], len).map_err(Error::Decompress)?)
        }
        _ => return Err(Error::Header),
    };
    let actual = hash(&payload);
    if payload.len() != len || actual != promised || stored[13..HEADER] != *promised.as_bytes() {
        return Err(Error::Hash {
            expected: expected.to_string(),
            actual: actual.to_hex().to_string(),
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(payload: Vec<u8>) -> (String, Bytes) {
        // In two chunks, as a step's block output arrives.
        let at = payload.len() / 3;
        let payload = Bytes::from(payload);
        let s = seal(vec![payload.slice(..at), payload.slice(at..)]);
        let mut stored = s.header;
        for c in s.body {
            stored.extend_from_slice(&c);
        }
        (s.id, Bytes::from(stored))
    }

    #[test]
    fn round_trip_raw_and_compressed() {
        let text = "abc".repeat(100_000).into_bytes();
        let (id, stored) = sealed(text.clone());
        assert!(stored.len() < text.len() / 10, "text compresses");
        assert_eq!(open(stored, &id).unwrap(), text);
        // xorshift64: bytes no compressor can shrink.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let (id, stored) = sealed(noise.clone());
        assert_eq!(stored[4], 0, "noise is stored raw");
        assert_eq!(open(stored, &id).unwrap(), noise);
    }

    #[test]
    fn corruption_is_detected() {
        let (id, stored) = sealed(b"hello world, this is an artifact".to_vec());
        let mut damaged = stored.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            open(Bytes::from(damaged), &id),
            Err(Error::Hash { .. })
        ));
        assert!(matches!(open(stored.slice(..10), &id), Err(Error::Header)));
    }
}
