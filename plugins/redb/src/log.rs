//! The commit log: a preallocated file where each batch is one frame,
//! written and fdatasynced before `append` answers. The crate docs
//! (*Durability*) say why a log, and why it is safe.
//!
//! The first page is the log's header, written when the log is emptied:
//! `[magic "WJLH"][salt: u64][CRC32 of the two]`. The salt is drawn afresh
//! at each emptying. Frames follow from the second page on; each starts on a
//! page boundary and fills whole pages:
//!
//! ```text
//! [magic "WJL1"][body length: u32][CRC32 of the body: u32][body][zeros to the page end]
//! body = [salt: u64][first seq: u64][record count: u32] then, per record, [length: u32][payload]
//! ```
//!
//! All integers are little-endian. The log is read from its second page:
//! frames follow each other while each is whole (magic, length, checksum),
//! carries the header's salt, and its first seq follows the last record of
//! the frame before. The first that is not ends the log: a torn frame, zeros,
//! or anything left from before the last emptying. Bytes left from before
//! cannot pass for a frame, even bytes a payload chose: they would need a
//! salt drawn after they were written.

use std::hash::{BuildHasher, Hasher};
use std::io;

use redb::StorageBackend;
use warden_journal::Seq;

/// A frame starts on a page and fills whole pages, so a frame being written
/// never shares a page (or a sector) with an acknowledged one.
pub(crate) const PAGE: u64 = 4096;
/// The size of the log file, its header page included. The log reads no
/// further: a frame never ends past it.
pub(crate) const CAPACITY: u64 = 16 * 1024 * 1024;

const HEADER_MAGIC: [u8; 4] = *b"WJLH";
const FRAME_MAGIC: [u8; 4] = *b"WJL1";
/// Magic, body length, checksum.
const FRAME_HEADER_LEN: usize = 12;
/// Salt, first seq and record count.
const BODY_HEADER_LEN: usize = 20;

/// One batch read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub first: Seq,
    pub payloads: Vec<Vec<u8>>,
}

/// The log file, written at its end by `append` and emptied by `reset`.
#[derive(Debug)]
pub(crate) struct Log {
    storage: Box<dyn StorageBackend>,
    capacity: u64,
    /// The salt of the current header; every frame carries it.
    salt: u64,
    /// Where the next frame starts.
    end: u64,
    /// The frame being written, reused across appends.
    frame: Vec<u8>,
}

impl Log {
    /// A log over `storage` of `capacity` bytes (a multiple of [`PAGE`], at
    /// least two pages). Nothing is written until [`reset`](Self::reset),
    /// which must come before the first `append`.
    pub(crate) fn new(storage: Box<dyn StorageBackend>, capacity: u64) -> Self {
        debug_assert!(capacity >= 2 * PAGE && capacity.is_multiple_of(PAGE));
        Log { storage, capacity, salt: 0, end: capacity, frame: Vec::new() }
    }

    /// The batches in the log, in order, up to its first frame that is not
    /// whole, not of this header's salt, or does not follow.
    pub(crate) fn read(&self) -> io::Result<Vec<Batch>> {
        // At most `capacity` bytes, whatever the file's length: no frame of
        // this log ends past it, and a damaged file must not size a read.
        let len = self.storage.len()?.min(self.capacity);
        let mut bytes = vec![0; len as usize];
        self.storage.read(0, &mut bytes)?;
        let Some(salt) = bytes.get(..PAGE as usize).and_then(parse_header) else {
            return Ok(Vec::new());
        };
        let mut batches: Vec<Batch> = Vec::new();
        let mut at = PAGE as usize;
        while let Some((batch, frame_len)) = bytes.get(at..).and_then(|rest| parse_frame(rest, salt)) {
            let follows = batches
                .last()
                .is_none_or(|last| last.first.checked_add(last.payloads.len() as Seq) == Some(batch.first));
            if !follows {
                break;
            }
            batches.push(batch);
            at += frame_len;
        }
        Ok(batches)
    }

    /// Empties the log, durably: the file is made its full size (written
    /// with zeros, so that later frames overwrite blocks already on disk and
    /// their fdatasync carries no metadata), a header with a fresh salt is
    /// written over the first page, which puts every frame before it out of
    /// reach, and both are fsynced.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        if self.storage.len()? != self.capacity {
            self.storage.set_len(self.capacity)?;
            // Written, not only sized: a sized file is sparse, and the first
            // write to each of its blocks would be metadata to sync.
            let zeros = vec![0; (1 << 20).min(self.capacity) as usize];
            let mut at = 0;
            while at < self.capacity {
                let n = zeros.len().min((self.capacity - at) as usize);
                self.storage.write(at, &zeros[..n])?;
                at += n as u64;
            }
        }
        let salt = fresh_salt(self.salt);
        self.storage.write(0, &encode_header(salt))?;
        self.storage.sync_data()?;
        self.salt = salt;
        self.end = PAGE;
        Ok(())
    }

    /// Whether a frame of `payloads` fits in an empty log at all.
    pub(crate) fn could_hold(&self, payloads: &[Vec<u8>]) -> bool {
        PAGE + frame_len(payloads) <= self.capacity
    }

    /// Whether a frame of `payloads` fits after the frames already written.
    pub(crate) fn has_room_for(&self, payloads: &[Vec<u8>]) -> bool {
        self.end.checked_add(frame_len(payloads)).is_some_and(|end| end <= self.capacity)
    }

    /// Writes `payloads`, the records from `first` on, as one frame and
    /// fdatasyncs it. The caller checked [`has_room_for`](Self::has_room_for).
    /// On error the frame may be on disk in part or whole: the caller must
    /// [`erase_failed`](Self::erase_failed) it or read the log back and reset
    /// it before the next append.
    pub(crate) fn append(&mut self, first: Seq, payloads: &[Vec<u8>]) -> io::Result<()> {
        encode_frame(self.salt, first, payloads, &mut self.frame);
        self.storage.write(self.end, &self.frame)?;
        // INVARIANT (answered means durable): the frame is acknowledged only
        // after this fdatasync.
        self.storage.sync_data()?;
        self.end += self.frame.len() as u64;
        Ok(())
    }

    /// After a failed `append`: zeros the first page of the frame it was
    /// writing, durably, so that no later read finds the frame, even if it
    /// reached the disk whole. The page is past every acknowledged frame.
    pub(crate) fn erase_failed(&mut self) -> io::Result<()> {
        self.storage.write(self.end, &[0; PAGE as usize])?;
        self.storage.sync_data()
    }
}

/// A salt unlike `previous`, that nobody outside this process can foresee:
/// std's `RandomState` keys come from the operating system's randomness.
fn fresh_salt(previous: u64) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(previous);
    let salt = hasher.finish();
    if salt == previous {
        salt.wrapping_add(1)
    } else {
        salt
    }
}

/// The header page for `salt`.
fn encode_header(salt: u64) -> Vec<u8> {
    let mut page = vec![0; PAGE as usize];
    page[..4].copy_from_slice(&HEADER_MAGIC);
    page[4..12].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&page[..12]);
    page[12..16].copy_from_slice(&crc.to_le_bytes());
    page
}

/// The salt of a header page, `None` if the page is not a whole header.
fn parse_header(page: &[u8]) -> Option<u64> {
    let header = page.get(..16)?;
    if header[..4] != HEADER_MAGIC || crc32fast::hash(&header[..12]).to_le_bytes() != header[12..16] {
        return None;
    }
    Some(u64::from_le_bytes(header[4..12].try_into().ok()?))
}

/// The bytes a frame of `payloads` takes in the log, whole pages.
fn frame_len(payloads: &[Vec<u8>]) -> u64 {
    let body: u64 = BODY_HEADER_LEN as u64 + payloads.iter().map(|p| 4 + p.len() as u64).sum::<u64>();
    (FRAME_HEADER_LEN as u64 + body).div_ceil(PAGE) * PAGE
}

/// Writes the frame of `payloads` into `out`, padded with zeros to its page
/// end.
fn encode_frame(salt: u64, first: Seq, payloads: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(frame_len(payloads) as usize);
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&[0; 8]); // body length and checksum, below
    out.extend_from_slice(&salt.to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    // A batch has at most a few thousand records (the engine's writer caps
    // it) and a frame at most `CAPACITY` bytes: both fit in a u32.
    out.extend_from_slice(&(payloads.len() as u32).to_le_bytes());
    for payload in payloads {
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }
    let body_len = (out.len() - FRAME_HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[FRAME_HEADER_LEN..]);
    out[4..8].copy_from_slice(&body_len.to_le_bytes());
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out.resize(out.len().div_ceil(PAGE as usize) * PAGE as usize, 0);
}

/// The bytes of a frame, for tests that put one on disk themselves.
#[cfg(test)]
pub(crate) fn frame(salt: u64, first: Seq, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(salt, first, payloads, &mut out);
    out
}

/// The frame of `salt` at the start of `bytes` and the bytes it takes, or
/// `None` if there is no whole frame of that salt there.
fn parse_frame(bytes: &[u8], salt: u64) -> Option<(Batch, usize)> {
    let (header, rest) = bytes.split_first_chunk::<FRAME_HEADER_LEN>()?;
    if header[..4] != FRAME_MAGIC {
        return None;
    }
    let body_len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let body = rest.get(..body_len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let (frame_salt, body) = body.split_first_chunk::<8>()?;
    if u64::from_le_bytes(*frame_salt) != salt {
        return None;
    }
    let (first, body) = body.split_first_chunk::<8>()?;
    let (count, mut body) = body.split_first_chunk::<4>()?;
    let count = u32::from_le_bytes(*count) as usize;
    // Each record takes at least its 4-byte length: a count beyond that is
    // not a frame this log wrote, and must not size an allocation.
    if count > body.len() / 4 {
        return None;
    }
    let mut payloads = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, rest) = body.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        payloads.push(rest.get(..len)?.to_vec());
        body = &rest[len..];
    }
    if !body.is_empty() {
        return None;
    }
    let frame_len = (FRAME_HEADER_LEN + body_len).div_ceil(PAGE as usize) * PAGE as usize;
    Some((Batch { first: Seq::from_le_bytes(*first), payloads }, frame_len))
}

#[cfg(test)]
mod tests {
    use redb::backends::InMemoryBackend;

    use super::*;

    fn log(capacity: u64) -> Log {
        let mut log = Log::new(Box::new(InMemoryBackend::new()), capacity);
        log.reset().expect("reset");
        log
    }

    fn payloads(tag: &str, n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
    }

    /// Damages the byte at `at`: every bit flipped, so that it differs
    /// whatever it held (a constant could equal a random salt's byte).
    fn flip_byte(log: &Log, at: u64) {
        let mut byte = [0];
        log.storage.read(at, &mut byte).unwrap();
        log.storage.write(at, &[!byte[0]]).unwrap();
    }

    fn firsts(log: &Log) -> Vec<Seq> {
        log.read().expect("read").iter().map(|b| b.first).collect()
    }

    #[test]
    fn frames_read_back_in_order_and_start_on_pages() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 3)).unwrap();
        log.append(4, &[vec![7; 5000]]).unwrap();
        log.append(5, &payloads("c", 1)).unwrap();
        assert_eq!(log.end, 5 * PAGE, "the header, then one page, two pages, one page");
        let read = log.read().unwrap();
        assert_eq!(firsts(&log), [1, 4, 5]);
        assert_eq!(read[0].payloads, payloads("a", 3));
        assert_eq!(read[1].payloads, [vec![7; 5000]]);
    }

    #[test]
    fn reset_ends_the_log_before_what_it_held() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 2)).unwrap();
        log.append(3, &payloads("b", 2)).unwrap();
        log.reset().unwrap();
        assert_eq!(log.read().unwrap(), []);
        // The frame of seq 3 is still on disk, right after the new first
        // frame, and would follow it, but it carries the old salt.
        log.append(2, &payloads("c", 1)).unwrap();
        assert_eq!(log.read().unwrap(), [Batch { first: 2, payloads: payloads("c", 1) }]);
    }

    #[test]
    fn a_frame_hidden_in_a_payload_is_not_read_after_a_reset() {
        let mut log = log(16 * PAGE);
        // A payload that holds, where the next page starts, a whole frame of
        // the current salt: inside its frame, it is only payload.
        let mut forged = Vec::new();
        encode_frame(log.salt, 3, &[b"FORGED".to_vec()], &mut forged);
        let lead = PAGE as usize - FRAME_HEADER_LEN - BODY_HEADER_LEN - 4;
        let mut payload = vec![b'x'; lead];
        payload.extend_from_slice(&forged);
        log.append(1, &[payload]).unwrap();
        assert_eq!(firsts(&log), [1], "a frame inside a payload is skipped with it");
        // After a reset, one small frame, then the forged bytes on the next
        // page; seq 3 would follow seq 1 and 2.
        log.reset().unwrap();
        log.append(2, &payloads("b", 1)).unwrap();
        assert_eq!(firsts(&log), [2], "the forged frame carries the salt from before the reset");
    }

    #[test]
    fn an_erased_failed_frame_is_not_read() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 2)).unwrap();
        // As if the frame of seq 3 reached the disk and its fdatasync failed.
        let end = log.end;
        log.append(3, &payloads("lost", 2)).unwrap();
        log.end = end;
        assert_eq!(firsts(&log), [1, 3]);
        log.erase_failed().unwrap();
        assert_eq!(firsts(&log), [1]);
    }

    #[test]
    fn a_damaged_frame_ends_the_log() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 2)).unwrap();
        log.append(3, &payloads("b", 2)).unwrap();
        log.append(5, &payloads("c", 2)).unwrap();
        // A torn second frame: one byte of its body changed.
        flip_byte(&log, 2 * PAGE + FRAME_HEADER_LEN as u64 + 24);
        assert_eq!(firsts(&log), [1]);
    }

    #[test]
    fn a_damaged_header_empties_the_log() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 2)).unwrap();
        flip_byte(&log, 5);
        assert_eq!(firsts(&log), Vec::<Seq>::new());
    }

    #[test]
    fn a_file_of_any_length_reads_without_panic() {
        // The first frame's bytes end 39 bytes into the second page, the
        // second frame's 1036 bytes into the third; padding may be missing.
        let cases = [(0, 0), (7, 0), (PAGE - 1, 0), (PAGE + 38, 0), (PAGE + 39, 1), (2 * PAGE + 1035, 1)];
        for (len, whole) in cases.into_iter().chain([(2 * PAGE + 1036, 2), (40 * PAGE, 2)]) {
            let mut log = log(16 * PAGE);
            log.append(1, &payloads("a", 1)).unwrap();
            log.append(2, &[vec![1; 1000]]).unwrap();
            log.storage.set_len(len).unwrap();
            assert_eq!(firsts(&log).len(), whole, "file of {len} bytes");
        }
    }

    #[test]
    fn room_is_counted_in_whole_pages() {
        let mut log = log(3 * PAGE);
        assert!(log.has_room_for(&payloads("a", 1)));
        log.append(1, &payloads("a", 1)).unwrap();
        log.append(2, &payloads("b", 1)).unwrap();
        assert!(!log.has_room_for(&payloads("c", 1)), "the header and two one-page frames fill three pages");
        assert!(log.could_hold(&payloads("c", 1)));
        assert!(!log.could_hold(&[vec![0; 2 * PAGE as usize]]));
    }

    #[test]
    fn garbage_is_not_a_frame() {
        assert_eq!(parse_frame(&[0; 64], 0), None);
        let mut frame = Vec::new();
        encode_frame(9, 1, &payloads("a", 2), &mut frame);
        assert!(parse_frame(&frame, 9).is_some());
        assert_eq!(parse_frame(&frame, 10), None, "another salt");
        // A record count too large for the body, under a checksum that
        // matches, is refused before any allocation.
        let mut lying = frame.clone();
        lying[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        let body_len = u32::from_le_bytes(lying[4..8].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&lying[FRAME_HEADER_LEN..FRAME_HEADER_LEN + body_len]);
        lying[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_frame(&lying, 9), None);
        assert_eq!(parse_frame(&frame[..20], 9), None);
    }

    #[test]
    fn salts_differ_at_each_reset() {
        let mut log = log(4 * PAGE);
        let salts: Vec<u64> = (0..8)
            .map(|_| {
                log.reset().unwrap();
                log.salt
            })
            .collect();
        assert!(salts.windows(2).all(|w| w[0] != w[1]), "{salts:?}");
    }
}
