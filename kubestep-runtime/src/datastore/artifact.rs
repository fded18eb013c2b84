//! The artifact envelope: a small header, then the payload, compressed when that pays.
//!
//! ```text
//! "KSA1" | compression (0 raw, 1 zstd) | payload length (u64 LE) | BLAKE3 of the payload (32) | bytes
//! ```
//! The address is the BLAKE3 of the uncompressed payload, so identity does not depend on the
//! compression; reads decompress and check it.

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

/// The content address of a payload.
pub fn address(payload: &[u8]) -> String {
    blake3::hash(payload).to_hex().to_string()
}

/// Wraps a payload; returns its address and the stored bytes.
pub fn seal(payload: &[u8]) -> (String, Vec<u8>) {
    let hash = blake3::hash(payload);
    let sample = &payload[..payload.len().min(SAMPLE)];
    let compressed = (sample.len() >= 512)
        .then(|| zstd::bulk::compress(sample, 1).ok())
        .flatten()
        .filter(|c| sample.len() as f64 / c.len().max(1) as f64 >= WORTH_IT)
        .and_then(|_| zstd::bulk::compress(payload, 1).ok());
    let (kind, body) = match &compressed {
        Some(c) => (1u8, c.as_slice()),
        None => (0u8, payload),
    };
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(body);
    (hash.to_hex().to_string(), out)
}

/// Unwraps stored bytes and checks them against `expected` (the address).
pub fn open(stored: &[u8], expected: &str) -> Result<Vec<u8>, Error> {
    if stored.len() < HEADER || &stored[..4] != MAGIC {
        return Err(Error::Header);
    }
    let len = u64::from_le_bytes(stored[5..13].try_into().map_err(|_| Error::Header)?) as usize;
    let body = &stored[HEADER..];
    let payload = match stored[4] {
        0 => body.to_vec(),
        1 => zstd::bulk::decompress(body, len).map_err(Error::Decompress)?,
        _ => return Err(Error::Header),
    };
    let actual = address(&payload);
    if payload.len() != len
        || actual != expected
        || stored[13..HEADER]
            != *blake3::Hash::from_hex(expected)
                .map_err(|_| Error::Header)?
                .as_bytes()
    {
        return Err(Error::Hash {
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_raw_and_compressed() {
        let text = "abc".repeat(100_000).into_bytes();
        let (id, stored) = seal(&text);
        assert!(stored.len() < text.len() / 10, "text compresses");
        assert_eq!(open(&stored, &id).unwrap(), text);
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
        let (id, stored) = seal(&noise);
        assert_eq!(stored[4], 0, "noise is stored raw");
        assert_eq!(open(&stored, &id).unwrap(), noise);
    }

    #[test]
    fn corruption_is_detected() {
        let (id, mut stored) = seal(b"hello world, this is an artifact");
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert!(matches!(open(&stored, &id), Err(Error::Hash { .. })));
        assert!(matches!(open(&stored[..10], &id), Err(Error::Header)));
    }
}
