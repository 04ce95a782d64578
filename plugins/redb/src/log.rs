//! The commit log: a preallocated file where each batch is one frame,
//! written and fdatasynced before `append` answers. The crate docs
//! (*Durability*) say why a log, and why it is safe.
//!
//! A frame starts on a page boundary and fills whole pages:
//!
//! ```text
//! [magic "WJL1"][body length: u32][CRC32 of the body: u32][body][zeros to the page end]
//! body = [first seq: u64][record count: u32] then, per record, [length: u32][payload]
//! ```
//!
//! All integers are little-endian. The log is read from its first page:
//! frames follow each other while each is whole (magic, length, checksum)
//! and its first seq follows the last record of the frame before. The first
//! frame that is not, ends the log: a torn frame, zeros, or an older frame
//! left from before the last checkpoint.

use std::io;

use redb::StorageBackend;
use warden_journal::Seq;

/// A frame starts on a page and fills whole pages, so a frame being written
/// never shares a page (or a sector) with an acknowledged one.
pub(crate) const PAGE: u64 = 4096;
/// The size of the log file: every frame since the last checkpoint fits in
/// it, and the records of those frames are kept in memory until then.
pub(crate) const CAPACITY: u64 = 16 * 1024 * 1024;

const MAGIC: [u8; 4] = *b"WJL1";
/// Magic, body length, checksum.
const HEADER_LEN: usize = 12;
/// First seq and record count.
const BODY_HEADER_LEN: usize = 12;

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
    /// Where the next frame starts.
    end: u64,
    /// The frame being written, reused across appends.
    frame: Vec<u8>,
}

impl Log {
    /// A log over `storage` of `capacity` bytes (a multiple of [`PAGE`]).
    /// Nothing is written until [`reset`](Self::reset), which must come
    /// before the first `append`.
    pub(crate) fn new(storage: Box<dyn StorageBackend>, capacity: u64) -> Self {
        debug_assert!(capacity >= PAGE && capacity.is_multiple_of(PAGE));
        Log { storage, capacity, end: capacity, frame: Vec::new() }
    }

    /// The batches in the log, in order, up to its first frame that is not
    /// whole or does not follow.
    pub(crate) fn read(&self) -> io::Result<Vec<Batch>> {
        // The whole file: one made with another capacity is read through.
        let len = self.storage.len()?;
        let mut bytes = vec![0; len as usize];
        self.storage.read(0, &mut bytes)?;
        let mut batches: Vec<Batch> = Vec::new();
        let mut at = 0;
        while let Some((batch, frame_len)) = parse_frame(&bytes[at..]) {
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
    /// their fdatasync carries no metadata), its first page is zeroed, which
    /// ends the log before anything it held, and both are fsynced.
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
        } else {
            self.storage.write(0, &[0; PAGE as usize])?;
        }
        self.storage.sync_data()?;
        self.end = 0;
        Ok(())
    }

    /// Whether a frame of `payloads` fits in an empty log at all.
    pub(crate) fn could_hold(&self, payloads: &[Vec<u8>]) -> bool {
        frame_len(payloads) <= self.capacity
    }

    /// Whether a frame of `payloads` fits after the frames already written.
    pub(crate) fn has_room_for(&self, payloads: &[Vec<u8>]) -> bool {
        self.end.checked_add(frame_len(payloads)).is_some_and(|end| end <= self.capacity)
    }

    /// Writes `payloads`, the records from `first` on, as one frame and
    /// fdatasyncs it. The caller checked [`has_room_for`](Self::has_room_for).
    /// On error the frame may be on disk in part or whole: the caller must
    /// not write after it before the log is read back and reset.
    pub(crate) fn append(&mut self, first: Seq, payloads: &[Vec<u8>]) -> io::Result<()> {
        encode_frame(first, payloads, &mut self.frame);
        self.storage.write(self.end, &self.frame)?;
        // INVARIANT (answered means durable): the frame is acknowledged only
        // after this fdatasync.
        self.storage.sync_data()?;
        self.end += self.frame.len() as u64;
        Ok(())
    }
}

/// The bytes a frame of `payloads` takes in the log, whole pages.
fn frame_len(payloads: &[Vec<u8>]) -> u64 {
    let body: u64 = BODY_HEADER_LEN as u64 + payloads.iter().map(|p| 4 + p.len() as u64).sum::<u64>();
    (HEADER_LEN as u64 + body).div_ceil(PAGE) * PAGE
}

/// Writes the frame of `payloads` into `out`, padded with zeros to its page
/// end.
fn encode_frame(first: Seq, payloads: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(frame_len(payloads) as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]); // body length and checksum, below
    out.extend_from_slice(&first.to_le_bytes());
    // A batch has at most a few thousand records (the engine's writer caps
    // it) and a frame at most `CAPACITY` bytes: both fit in a u32.
    out.extend_from_slice(&(payloads.len() as u32).to_le_bytes());
    for payload in payloads {
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
    }
    let body_len = (out.len() - HEADER_LEN) as u32;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[4..8].copy_from_slice(&body_len.to_le_bytes());
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out.resize(out.len().div_ceil(PAGE as usize) * PAGE as usize, 0);
}

/// The frame at the start of `bytes` and the bytes it takes, or `None` if
/// there is no whole frame there.
fn parse_frame(bytes: &[u8]) -> Option<(Batch, usize)> {
    let (header, rest) = bytes.split_first_chunk::<HEADER_LEN>()?;
    if header[..4] != MAGIC {
        return None;
    }
    let body_len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let body = rest.get(..body_len)?;
    if crc32fast::hash(body) != crc {
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
    let frame_len = (HEADER_LEN + body_len).div_ceil(PAGE as usize) * PAGE as usize;
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

    #[test]
    fn frames_read_back_in_order_and_start_on_pages() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 3)).unwrap();
        log.append(4, &[vec![7; 5000]]).unwrap();
        log.append(5, &payloads("c", 1)).unwrap();
        assert_eq!(log.end, 4 * PAGE, "one page, two pages, one page");
        let read = log.read().unwrap();
        assert_eq!(read.iter().map(|b| b.first).collect::<Vec<_>>(), [1, 4, 5]);
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
        // A new frame at the start is followed by an older one (seq 3), which
        // does not follow it: the log ends there.
        log.append(5, &payloads("c", 1)).unwrap();
        assert_eq!(log.read().unwrap(), [Batch { first: 5, payloads: payloads("c", 1) }]);
    }

    #[test]
    fn a_damaged_frame_ends_the_log() {
        let mut log = log(16 * PAGE);
        log.append(1, &payloads("a", 2)).unwrap();
        log.append(3, &payloads("b", 2)).unwrap();
        log.append(5, &payloads("c", 2)).unwrap();
        // A torn second frame: one byte of its body changed.
        log.storage.write(PAGE + HEADER_LEN as u64 + 14, b"X").unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.iter().map(|b| b.first).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn room_is_counted_in_whole_pages() {
        let mut log = log(2 * PAGE);
        assert!(log.has_room_for(&payloads("a", 1)));
        log.append(1, &payloads("a", 1)).unwrap();
        log.append(2, &payloads("b", 1)).unwrap();
        assert!(!log.has_room_for(&payloads("c", 1)), "two one-page frames fill a two-page log");
        assert!(log.could_hold(&payloads("c", 1)));
        assert!(!log.could_hold(&[vec![0; 2 * PAGE as usize]]));
    }

    #[test]
    fn garbage_is_not_a_frame() {
        assert_eq!(parse_frame(&[0; 64]), None);
        let mut frame = Vec::new();
        encode_frame(9, &payloads("a", 2), &mut frame);
        assert!(parse_frame(&frame).is_some());
        // A record count too large for the body, under a checksum that
        // matches, is refused before any allocation.
        let mut lying = frame.clone();
        lying[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let body_len = u32::from_le_bytes(lying[4..8].try_into().unwrap()) as usize;
        let crc = crc32fast::hash(&lying[HEADER_LEN..HEADER_LEN + body_len]);
        lying[8..12].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_frame(&lying), None);
        assert_eq!(parse_frame(&frame[..20]), None);
    }
}
