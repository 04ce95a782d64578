//! The stored form of one record, and its check on the way back.
//!
//! A value is `[version: u8 = 1][crc32: u32 little-endian][payload]`, where the
//! CRC32 covers the seq (8 bytes, little-endian) followed by the payload, so a
//! value moved under another key fails its check as surely as a flipped bit.

use warden_journal::{JournalError, Seq};

/// The only format version written and accepted.
pub(crate) const VERSION: u8 = 1;
/// Version byte plus checksum.
const HEADER_LEN: usize = 5;

/// Writes the stored form of `payload` at `seq` into `out`, replacing its
/// contents (the buffer is reused across a batch).
pub(crate) fn encode_into(seq: Seq, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payload stored at `seq`, or [`JournalError::Corrupt`] if the value is
/// short, of another version, or fails its checksum.
pub(crate) fn decode(seq: Seq, stored: &[u8]) -> Result<Vec<u8>, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { seq, reason };
    let Some((header, payload)) = stored.split_first_chunk::<HEADER_LEN>() else {
        return Err(corrupt(format!("value is {} bytes, shorter than its {HEADER_LEN}-byte header", stored.len())));
    };
    let [version, crc @ ..] = *header;
    if version != VERSION {
        return Err(corrupt(format!("format version `{version}` is not the supported version `{VERSION}`")));
    }
    let stored_crc = u32::from_le_bytes(crc);
    let actual_crc = checksum(seq, payload);
    if stored_crc != actual_crc {
        return Err(corrupt(format!("checksum mismatch: stored `{stored_crc:#010x}`, computed `{actual_crc:#010x}`")));
    }
    Ok(payload.to_vec())
}

fn checksum(seq: Seq, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(seq: Seq, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA; 3];
        encode_into(seq, payload, &mut out);
        out
    }

    fn reason(result: Result<Vec<u8>, JournalError>) -> String {
        match result {
            Err(JournalError::Corrupt { seq: 7, reason }) => reason,
            other => panic!("expected corrupt record 7, got {other:?}"),
        }
    }

    #[test]
    fn round_trips() {
        for payload in [&b""[..], b"x", &[0u8; 4096]] {
            assert_eq!(decode(7, &encode(7, payload)).expect("decode"), payload);
        }
    }

    #[test]
    fn short_value_is_corrupt() {
        for len in 0..HEADER_LEN {
            let stored = &encode(7, b"")[..len];
            assert!(reason(decode(7, stored)).contains("shorter"));
        }
    }

    #[test]
    fn unknown_version_is_corrupt() {
        let mut stored = encode(7, b"payload");
        stored[0] = 2;
        assert!(reason(decode(7, &stored)).contains("version `2`"));
    }

    #[test]
    fn flipped_bit_is_corrupt() {
        let mut stored = encode(7, b"payload");
        stored[HEADER_LEN] ^= 1;
        assert!(reason(decode(7, &stored)).contains("checksum"));
        let mut stored = encode(7, b"payload");
        stored[2] ^= 1;
        assert!(reason(decode(7, &stored)).contains("checksum"));
    }

    #[test]
    fn value_under_another_seq_is_corrupt() {
        assert!(reason(decode(7, &encode(8, b"payload"))).contains("checksum"));
    }
}
