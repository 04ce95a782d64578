//! The checksum stored beside each record, and its check on the way back.
//!
//! A row is `(seq, checksum, payload)`; the checksum is the CRC32 of the seq
//! (8 bytes, little-endian) followed by the payload, stored as PostgreSQL's
//! `integer` (the same 32 bits), so a payload moved under another seq fails
//! its check as surely as a flipped bit. The crate docs say why PostgreSQL's
//! own page checksums are not enough.

use warden_journal::{JournalError, Record, Seq};

/// The checksum of `payload` stored at `seq`, as the `integer` column holds it.
pub(crate) fn checksum(seq: Seq, payload: &[u8]) -> i32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    // The column is a signed 32-bit integer: the bits are kept, not the value.
    hasher.finalize() as i32
}

/// The record stored as `(seq, checksum, payload)`, or
/// [`JournalError::Corrupt`] if the checksum does not match.
pub(crate) fn verify(seq: Seq, stored: i32, payload: Vec<u8>) -> Result<Record, JournalError> {
    let actual = checksum(seq, &payload);
    if stored != actual {
        return Err(JournalError::Corrupt {
            seq,
            reason: format!("checksum mismatch: stored `{:#010x}`, computed `{:#010x}`", stored as u32, actual as u32),
        });
    }
    Ok(Record { seq, payload })
}

/// A seq as PostgreSQL's `bigint` holds it; `None` past `i64::MAX`, where no
/// record can be.
pub(crate) fn to_db(seq: Seq) -> Option<i64> {
    i64::try_from(seq).ok()
}

/// A `bigint` read from a seq column, or [`JournalError::Corrupt`] if it is
/// not a valid seq (the schema's `CHECK (seq > 0)` should make that impossible).
pub(crate) fn from_db(seq: i64) -> Result<Seq, JournalError> {
    Seq::try_from(seq)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| JournalError::Corrupt { seq: 0, reason: format!("stored seq `{seq}` is not a positive number") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for payload in [&b""[..], b"x", &[0u8; 4096]] {
            let stored = checksum(7, payload);
            assert_eq!(verify(7, stored, payload.to_vec()).expect("verify").payload, payload);
        }
    }

    #[test]
    fn flipped_bit_is_corrupt() {
        let stored = checksum(7, b"payload");
        match verify(7, stored, b"paylobd".to_vec()) {
            Err(JournalError::Corrupt { seq: 7, reason }) => assert!(reason.contains("checksum"), "{reason}"),
            other => panic!("expected corrupt record 7, got {other:?}"),
        }
        assert!(verify(7, stored ^ 1, b"payload".to_vec()).is_err());
    }

    #[test]
    fn payload_under_another_seq_is_corrupt() {
        let stored = checksum(8, b"payload");
        assert!(matches!(verify(7, stored, b"payload".to_vec()), Err(JournalError::Corrupt { seq: 7, .. })));
    }

    #[test]
    fn seqs_outside_bigint_are_refused() {
        assert_eq!(to_db(Seq::MAX), None);
        assert_eq!(to_db(5), Some(5));
        assert!(from_db(0).is_err());
        assert!(from_db(-3).is_err());
        assert_eq!(from_db(9).expect("valid"), 9);
    }
}
