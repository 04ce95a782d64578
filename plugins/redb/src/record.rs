//! The stored form of records, and their check on the way back.
//!
//! A value of the table holds the records from its key on, in one of two
//! forms, told apart by its first byte:
//!
//! ```text
//! version 1 (one record; written by earlier versions, still read):
//!   [1][crc32: u32][payload]
//! version 2 (a run of consecutive records, written now):
//!   [2][count: u32] then, per record, [length: u32][crc32: u32][payload]
//! ```
//!
//! Integers are little-endian. Each record's CRC32 covers its seq (8 bytes,
//! little-endian) followed by its payload, so a record read under another
//! seq fails its check as surely as a flipped bit. A run holds at most
//! [`RUN_RECORDS`] records and, unless it holds one, at most [`RUN_BYTES`]
//! bytes. Why runs: a redb insert costs about as much whatever the value's
//! size, and a checkpoint of 2048 records made 2048 of them.

use warden_journal::{JournalError, Seq};

/// One record per value: read, no longer written.
const SINGLE: u8 = 1;
/// A run of records per value.
const RUN: u8 = 2;
/// Version byte plus checksum.
const SINGLE_HEADER_LEN: usize = 5;
/// Version byte plus record count.
const RUN_HEADER_LEN: usize = 5;
/// Length plus checksum, before each record of a run.
const RECORD_HEADER_LEN: usize = 8;

/// The most records a run holds.
pub(crate) const RUN_RECORDS: usize = 64;
/// The most bytes a run of two records or more holds: with the header of
/// redb's leaf around it, a run fits a 32 KiB page (redb sizes a page that
/// holds a large value to a power of two; a run just over 32 KiB would take
/// 64). A journal of 20,000 records of 650 bytes took as many pages as with
/// one record per value (3,288 against 3,395).
pub(crate) const RUN_BYTES: usize = 32 * 1024 - 256;

/// Splits the records from `first` on into runs, and hands each run's key
/// and stored form to `put`, in order. `out` is reused across the runs.
pub(crate) fn for_each_run<E>(
    first: Seq,
    payloads: &[impl AsRef<[u8]>],
    out: &mut Vec<u8>,
    mut put: impl FnMut(Seq, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = payloads;
    let mut key = first;
    while !rest.is_empty() {
        let mut size = RUN_HEADER_LEN;
        let mut count = 0;
        for payload in rest.iter().take(RUN_RECORDS) {
            let grown = size + RECORD_HEADER_LEN + payload.as_ref().len();
            if count > 0 && grown > RUN_BYTES {
                break;
            }
            size = grown;
            count += 1;
        }
        let (run, after) = rest.split_at(count);
        // The caller made sure the records' seqs end by `Seq::MAX`.
        let run_last = key.saturating_add(count as Seq - 1);
        out.clear();
        out.reserve(size);
        out.push(RUN);
        out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
        for (payload, seq) in run.iter().zip(key..=run_last) {
            let payload = payload.as_ref();
            // redb refuses values over 3 GiB: a length always fits.
            out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
            out.extend_from_slice(payload);
        }
        put(key, out)?;
        rest = after;
        if rest.is_empty() {
            break;
        }
        key = run_last.saturating_add(1);
    }
    Ok(())
}

/// How many records the value stored at `key` holds, from its header only;
/// [`JournalError::Corrupt`] if the header is short, of another version, or
/// counts no record.
pub(crate) fn count(key: Seq, stored: &[u8]) -> Result<Seq, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt { seq: key, reason };
    match stored.first() {
        Some(&SINGLE) if stored.len() >= SINGLE_HEADER_LEN => Ok(1),
        Some(&RUN) => {
            let count = stored
                .get(1..RUN_HEADER_LEN)
                .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| corrupt(shorter(stored.len(), "run header", RUN_HEADER_LEN)))?;
            if count == 0 {
                return Err(corrupt("the run holds no record".into()));
            }
            Ok(Seq::from(count))
        }
        Some(&SINGLE) | None => Err(corrupt(shorter(stored.len(), "header", SINGLE_HEADER_LEN))),
        Some(version) => {
            Err(corrupt(format!("format version `{version}` is not a supported version (`{SINGLE}` or `{RUN}`)")))
        }
    }
}

/// The seq of the last record of the value stored at `key`.
pub(crate) fn last(key: Seq, stored: &[u8]) -> Result<Seq, JournalError> {
    key.checked_add(count(key, stored)? - 1)
        .ok_or_else(|| JournalError::Corrupt { seq: key, reason: "the run counts records past the last seq".into() })
}

/// The records of the value stored at `key`, each checked, in order. After
/// an error the iterator ends.
pub(crate) fn records(key: Seq, stored: &[u8]) -> Records<'_> {
    records_from(key, stored, key)
}

/// [`records`] from `from` on: the records before it are passed over by
/// their lengths, neither checked nor given.
pub(crate) fn records_from(key: Seq, stored: &[u8], from: Seq) -> Records<'_> {
    Records { next: key, from, left: None, last_read: key, rest: stored, done: false }
}

/// The payload of `seq` in the value stored at `key`, checking only that
/// record; `None` if the value ends before `seq`.
pub(crate) fn find(key: Seq, stored: &[u8], seq: Seq) -> Result<Option<Vec<u8>>, JournalError> {
    if seq < key || seq > last(key, stored)? {
        return Ok(None);
    }
    let found = records_from(key, stored, seq).next().transpose()?;
    Ok(found.map(|(_, payload)| payload.to_vec()))
}

/// The seq of the last record of the value stored at `key`, every record
/// of it checked: what comes after a journal is read from its last value,
/// so its count is not taken on trust.
pub(crate) fn checked_last(key: Seq, stored: &[u8]) -> Result<Seq, JournalError> {
    let mut last_seq = key;
    for record in records(key, stored) {
        last_seq = record?.0;
    }
    Ok(last_seq)
}

/// See [`records`].
pub(crate) struct Records<'a> {
    next: Seq,
    /// The first record given; those before it are only passed over.
    from: Seq,
    /// Records left in a run, once its header is read.
    left: Option<Seq>,
    /// The seq of the record read last.
    last_read: Seq,
    rest: &'a [u8],
    done: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(Seq, &'a [u8]), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl<'a> Records<'a> {
    fn step(&mut self) -> Option<Result<(Seq, &'a [u8]), JournalError>> {
        let mut seq = self.next;
        let mut left = match self.left {
            Some(left) => left,
            None => {
                // `last` reads the header and checks that the run ends by `Seq::MAX`.
                let last = match last(seq, self.rest) {
                    Ok(last) => last,
                    Err(e) => return Some(Err(e)),
                };
                if self.rest[0] == SINGLE {
                    self.done = true;
                    return Some(single(seq, self.rest).map(|payload| (seq, payload)));
                }
                self.rest = &self.rest[RUN_HEADER_LEN..];
                last - seq + 1
            }
        };
        loop {
            if left == 0 {
                if self.rest.is_empty() {
                    return None;
                }
                let reason = format!("{} bytes follow the run's last record", self.rest.len());
                return Some(Err(JournalError::Corrupt { seq: self.last_read, reason }));
            }
            let (length, crc, after) = match record_header(seq, self.rest) {
                Ok(header) => header,
                Err(e) => return Some(Err(e)),
            };
            let Some((payload, after)) = after.split_at_checked(length) else {
                return Some(Err(JournalError::Corrupt { seq, reason: shorter(after.len(), "payload", length) }));
            };
            self.rest = after;
            left -= 1;
            self.left = Some(left);
            self.last_read = seq;
            // No overflow: `last` checked that the run ends by `Seq::MAX`.
            self.next = seq.saturating_add(1);
            if seq >= self.from {
                return Some(checked(seq, crc, payload).map(|payload| (seq, payload)));
            }
            seq = self.next;
        }
    }
}

/// The payload of a version-1 value, checked.
fn single(seq: Seq, stored: &[u8]) -> Result<&[u8], JournalError> {
    let crc = u32::from_le_bytes([stored[1], stored[2], stored[3], stored[4]]);
    checked(seq, crc, &stored[SINGLE_HEADER_LEN..])
}

/// A run's record header at `seq`: its length, its checksum and what follows.
fn record_header(seq: Seq, rest: &[u8]) -> Result<(usize, u32, &[u8]), JournalError> {
    let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(JournalError::Corrupt { seq, reason: shorter(rest.len(), "record header", RECORD_HEADER_LEN) });
    };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    Ok((length, crc, after))
}

fn checked(seq: Seq, stored_crc: u32, payload: &[u8]) -> Result<&[u8], JournalError> {
    let actual_crc = checksum(seq, payload);
    if stored_crc != actual_crc {
        let reason = format!("checksum mismatch: stored `{stored_crc:#010x}`, computed `{actual_crc:#010x}`");
        return Err(JournalError::Corrupt { seq, reason });
    }
    Ok(payload)
}

fn shorter(have: usize, what: &str, need: usize) -> String {
    format!("the value has {have} bytes left, shorter than its {need}-byte {what}")
}

fn checksum(seq: Seq, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The version-1 form of one record, as earlier versions wrote it (tests of
/// the path that still reads it).
#[cfg(test)]
pub(crate) fn single_record(seq: Seq, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![SINGLE];
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs of `payloads` from `first`: (key, stored form).
    fn runs(first: Seq, payloads: &[Vec<u8>]) -> Vec<(Seq, Vec<u8>)> {
        let mut out = vec![0xAA; 3];
        let mut runs = Vec::new();
        for_each_run(first, payloads, &mut out, |key, stored| {
            runs.push((key, stored.to_vec()));
            Ok::<(), ()>(())
        })
        .expect("encode");
        runs
    }

    fn decoded(key: Seq, stored: &[u8]) -> Result<Vec<(Seq, Vec<u8>)>, JournalError> {
        records(key, stored).map(|r| r.map(|(seq, payload)| (seq, payload.to_vec()))).collect()
    }

    fn reason(result: Result<impl std::fmt::Debug, JournalError>, seq: Seq) -> String {
        match result {
            Err(JournalError::Corrupt { seq: s, reason }) if s == seq => reason,
            other => panic!("expected corrupt record {seq}, got {other:?}"),
        }
    }

    fn payloads(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes.iter().enumerate().map(|(i, &size)| vec![i as u8; size]).collect()
    }

    #[test]
    fn runs_round_trip_and_respect_their_limits() {
        let cases = [
            payloads(&[0]),
            payloads(&[3, 0, 4096]),
            payloads(&[10; 200]),
            payloads(&[20_000, 20_000, 20_000]),
            payloads(&[100_000, 1, 1]),
        ];
        for all in cases {
            let runs = runs(7, &all);
            let mut seen = Vec::new();
            let mut expected_key = 7;
            for (key, stored) in &runs {
                assert_eq!(*key, expected_key, "runs follow each other");
                let count = count(*key, stored).expect("count");
                assert!(count as usize <= RUN_RECORDS);
                assert!(count == 1 || stored.len() <= RUN_BYTES, "{} bytes in {count} records", stored.len());
                assert_eq!(last(*key, stored).expect("last"), key + count - 1);
                let records = decoded(*key, stored).expect("decode");
                assert_eq!(records.len() as Seq, count);
                for (seq, payload) in &records {
                    assert_eq!(find(*key, stored, *seq).expect("find").as_ref(), Some(payload));
                }
                assert_eq!(find(*key, stored, key + count).expect("past the run"), None);
                assert_eq!(find(*key, stored, key - 1).expect("before the run"), None);
                expected_key += count;
                seen.extend(records);
            }
            let expected: Vec<(Seq, Vec<u8>)> = (7..).zip(all.iter().cloned()).collect();
            assert_eq!(seen, expected);
        }
        assert_eq!(runs(1, &payloads(&[10; 200])).len(), 200usize.div_ceil(RUN_RECORDS));
    }

    #[test]
    fn single_records_of_earlier_versions_still_read() {
        let stored = single_record(5, b"payload");
        assert_eq!(count(5, &stored).expect("count"), 1);
        assert_eq!(decoded(5, &stored).expect("decode"), [(5, b"payload".to_vec())]);
        assert_eq!(find(5, &stored, 5).expect("find"), Some(b"payload".to_vec()));
        assert!(reason(decoded(6, &stored), 6).contains("checksum"), "a value under another seq");
    }

    #[test]
    fn a_flipped_bit_is_corrupt_at_its_record_only() {
        let (key, mut stored) = runs(1, &payloads(&[5, 5, 5])).remove(0);
        // The second record's payload is the run's bytes 5 + 13 + 8 ..+5.
        stored[5 + 13 + 8 + 2] ^= 1;
        let mut records = records(key, &stored);
        assert_eq!(records.next().expect("first").expect("first is whole").0, 1);
        assert!(reason(records.next().expect("second"), 2).contains("checksum"));
        assert!(records.next().is_none(), "the iterator ends at an error");
        assert_eq!(find(key, &stored, 3).expect("the third is whole"), Some(vec![2; 5]));
        assert!(reason(find(key, &stored, 2), 2).contains("checksum"));
    }

    #[test]
    fn runs_may_end_at_the_last_seq() {
        let all = payloads(&[5; 200]);
        let first = Seq::MAX - 199;
        let runs = runs(first, &all);
        let (key, stored) = runs.last().expect("a last run");
        assert_eq!(last(*key, stored).expect("last"), Seq::MAX);
        assert_eq!(checked_last(*key, stored).expect("checked last"), Seq::MAX);
        assert_eq!(decoded(*key, stored).expect("decode").last().map(|r| r.0), Some(Seq::MAX));
        assert_eq!(find(*key, stored, Seq::MAX).expect("find"), Some(all[199].clone()));
    }

    #[test]
    fn records_before_from_are_passed_over_unchecked() {
        let (key, mut stored) = runs(1, &payloads(&[5, 5, 5])).remove(0);
        stored[RUN_HEADER_LEN + RECORD_HEADER_LEN] ^= 1; // record 1's payload
        let from_2: Vec<Seq> = records_from(key, &stored, 2).map(|r| r.expect("whole").0).collect();
        assert_eq!(from_2, [2, 3]);
        assert!(reason(checked_last(key, &stored), 1).contains("checksum"));
        assert_eq!(last(key, &stored).expect("the header alone"), 3);
    }

    #[test]
    fn a_record_under_another_seq_is_corrupt() {
        let (_, stored) = runs(1, &payloads(&[5, 5])).remove(0);
        assert!(reason(decoded(2, &stored), 2).contains("checksum"));
    }

    #[test]
    fn damaged_headers_are_corrupt() {
        let (_, stored) = runs(1, &payloads(&[5, 5])).remove(0);
        for len in 0..RUN_HEADER_LEN {
            assert!(reason(count(1, &stored[..len]), 1).contains("shorter"), "{len} bytes");
        }
        let mut other = stored.clone();
        other[0] = 9;
        assert!(reason(count(1, &other), 1).contains("version `9`"));
        let mut empty = stored.clone();
        empty[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert!(reason(count(1, &empty), 1).contains("no record"));
        let mut more = stored.clone();
        more[1..5].copy_from_slice(&3u32.to_le_bytes());
        assert!(reason(decoded(1, &more), 3).contains("shorter"), "counts a record it does not hold");
        let mut fewer = stored.clone();
        fewer[1..5].copy_from_slice(&1u32.to_le_bytes());
        assert!(reason(decoded(1, &fewer), 1).contains("follow"), "holds a record it does not count");
        let cut = &stored[..stored.len() - 1];
        assert!(reason(decoded(1, cut), 2).contains("shorter"));
        assert!(reason(find(1, cut, 2), 2).contains("shorter"));
        let mut long = stored.clone();
        long[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(reason(decoded(1, &long), 1).contains("shorter"));
        assert!(reason(find(1, &long, 2), 1).contains("shorter"));
        assert!(reason(last(Seq::MAX, &more), Seq::MAX).contains("past"));
    }
}
