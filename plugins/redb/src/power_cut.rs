//! Power cuts, which a `SIGKILL` cannot show: the operating system keeps a
//! killed process's writes, a machine that loses power does not.
//!
//! The journal runs on a disk model (a redb [`StorageBackend`]) that keeps
//! what has been fsynced apart from the writes since. At a chosen write or
//! fsync the power goes: that call and every later one fail, and the image
//! left on disk is what was fsynced plus a random part of the writes since
//! (each write landed whole, not at all, or torn at 512-byte sectors), landed
//! in random order, as a disk cache may leave them. One cut in three falls on
//! an fsync, where the commit under way has issued every write; half of those
//! find every write landed (the disk wrote its cache out, the fsync never
//! returned), which keeps the commit under way whole far more often than
//! random landings do. The image is then opened as a real redb file, and
//! must hold every batch whose `append` returned `Ok`, whole and in place,
//! and at most the one batch under way besides.
//!
//! A control runs the same cuts on commits that do not fsync, and must see
//! acknowledged batches lost: the check can fail.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, Durability, StorageBackend, TableDefinition};
use warden_journal::{Journal, Seq};

use crate::{Commit, RedbJournal};

/// The unit a disk writes whole: a torn write keeps some of them.
const SECTOR: usize = 512;
/// Where redb's file format keeps the god byte (after its 9-byte magic
/// number), and its bit naming the primary commit slot.
const GOD_BYTE: usize = 9;
const PRIMARY_SLOT: u8 = 1;
/// Cut points tried, each on a fresh journal.
const TRIALS: u64 = 300;
/// Batches appended in each trial after the first, large one.
const BATCHES: u64 = 24;
/// Records of the first batch: enough that the tree has several levels.
const FIRST_BATCH: u64 = 600;
/// The commit log of a trial: room for the first batch and a few more, so
/// that every trial checkpoints several times (and empties the log).
const LOG_CAPACITY: u64 = 24 * crate::log::PAGE;
/// A batch of twice the first's records, more than [`LOG_CAPACITY`] holds: a
/// logged journal commits it straight into redb.
const BATCH_LARGER_THAN_THE_LOG: u64 = 5;
/// Records held in memory before they are moved into redb without emptying
/// the log: some runs of batches do that between the log's resets.
const CHECKPOINT_RECORDS: usize = 50;

/// A small deterministic generator (xorshift64*), so a failing trial can be
/// replayed from its number.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A write the disk has accepted but not yet been told to keep.
struct Unsynced {
    offset: usize,
    data: Vec<u8>,
}

/// One file on the disk: `synced` survives a power cut; `cache` is what reads
/// see (`synced` with every write since applied).
#[derive(Default)]
struct File {
    synced: Vec<u8>,
    cache: Vec<u8>,
    unsynced: Vec<Unsynced>,
}

/// The redb file and its commit log, on one disk that loses power once.
const DATABASE: usize = 0;
const LOG: usize = 1;

struct Disk {
    files: [File; 2],
    /// Writes, length changes and fsyncs so far, of both files.
    operations: u64,
    /// Fsyncs of each file.
    syncs: [u64; 2],
    /// The operations that were fsyncs, of either file.
    fsyncs_at: Vec<u64>,
    /// Writes of the log's header page: the log emptied.
    log_emptied: u64,
    /// The operation at which the power goes (0: never).
    cut_at: u64,
    cut: bool,
}

impl Disk {
    /// Counts one mutating operation; fails it, and all after it, from the cut.
    fn operate(&mut self) -> io::Result<()> {
        self.operations += 1;
        if self.cut_at != 0 && self.operations >= self.cut_at {
            self.cut = true;
        }
        if self.cut {
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }

    /// The image of `file` after the cut: the synced bytes, then a random
    /// subset of the sectors written since, in random order; or, when
    /// `all_landed`, every write since (the disk had written its cache out
    /// when the power went, but the fsync had not returned).
    fn image(&self, file: usize, random: &mut Random, all_landed: bool) -> Vec<u8> {
        let file = &self.files[file];
        if all_landed {
            return file.cache.clone();
        }
        let mut image = file.synced.clone();
        // The file's length is metadata: either the old or the new one.
        if random.below(2) == 0 {
            image.resize(file.cache.len(), 0);
        }
        let mut sectors: Vec<(usize, &[u8])> = Vec::new();
        for write in &file.unsynced {
            // A write lands whole, not at all, or torn: each sector or not.
            let landing = random.below(3);
            for (i, chunk) in write.data.chunks(SECTOR).enumerate() {
                if landing == 0 || (landing == 2 && random.below(2) == 0) {
                    sectors.push((write.offset + i * SECTOR, chunk));
                }
            }
        }
        // Fisher-Yates: the disk may land them in any order.
        for i in (1..sectors.len()).rev() {
            sectors.swap(i, random.below(i as u64 + 1) as usize);
        }
        for (offset, chunk) in sectors {
            let end = offset + chunk.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[offset..end].copy_from_slice(chunk);
        }
        image
    }
}

/// A storage backend for one file of a shared [`Disk`].
#[derive(Clone)]
struct PowerCutBackend {
    disk: Arc<Mutex<Disk>>,
    file: usize,
}

impl std::fmt::Debug for PowerCutBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PowerCutBackend")
    }
}

impl PowerCutBackend {
    /// The redb file of a fresh disk that loses power at operation `cut_at`.
    fn new(cut_at: u64) -> Self {
        let disk = Disk {
            files: Default::default(),
            operations: 0,
            syncs: [0; 2],
            fsyncs_at: Vec::new(),
            log_emptied: 0,
            cut_at,
            cut: false,
        };
        PowerCutBackend { disk: Arc::new(Mutex::new(disk)), file: DATABASE }
    }

    /// The commit log, on the same disk.
    fn log(&self) -> Self {
        PowerCutBackend { disk: Arc::clone(&self.disk), file: LOG }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageBackend for PowerCutBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.disk().files[self.file].cache.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.disk();
        let start = offset as usize;
        let cache = &disk.files[self.file].cache;
        let bytes = cache.get(start..start + out.len()).ok_or_else(|| io::Error::other("read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        disk.files[self.file].cache.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        disk.syncs[self.file] += 1;
        let at = disk.operations;
        disk.fsyncs_at.push(at);
        let file = &mut disk.files[self.file];
        file.synced = file.cache.clone();
        file.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        if self.file == LOG && offset == 0 && data.len() == crate::log::PAGE as usize {
            disk.log_emptied += 1;
        }
        let file = &mut disk.files[self.file];
        let (start, end) = (offset as usize, offset as usize + data.len());
        if file.cache.len() < end {
            file.cache.resize(end, 0);
        }
        file.cache[start..end].copy_from_slice(data);
        file.unsynced.push(Unsynced { offset: start, data: data.to_vec() });
        Ok(())
    }
}

/// A backend whose fsyncs do nothing.
#[derive(Debug)]
struct NoSync(PowerCutBackend);

impl StorageBackend for NoSync {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}

/// The payload of record `index` of batch `batch`, of `size` records.
fn payload(batch: u64, size: u64, index: u64) -> Vec<u8> {
    format!("batch={batch};size={size};index={index};padding-to-about-a-hundred-bytes-like-a-small-fact").into_bytes()
}

/// `(batch, size, index)` of a payload written by [`payload`].
fn parse(payload: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut fields = text.split(';').map(|f| f.split_once('=').and_then(|(_, v)| v.parse().ok()));
    let parsed = (fields.next()??, fields.next()??, fields.next()??);
    (payload == self::payload(parsed.0, parsed.1, parsed.2).as_slice()).then_some(parsed)
}

/// Records in batch `batch`.
fn batch_size(batch: u64) -> u64 {
    if batch == 0 {
        FIRST_BATCH
    } else if batch == BATCH_LARGER_THAN_THE_LOG {
        2 * FIRST_BATCH
    } else {
        1 + (batch * 7919) % 40
    }
}

fn batch(batch: u64) -> Vec<Vec<u8>> {
    let size = batch_size(batch);
    (0..size).map(|i| payload(batch, size, i)).collect()
}

/// Checks a journal reopened after a cut: records contiguous from seq 1,
/// whole batches in order, every acknowledged one there, at most one more.
fn check(journal: &RedbJournal, acknowledged: u64) -> Result<u64, String> {
    let mut expected_seq: Seq = 1;
    let mut batches = 0_u64;
    let mut in_batch = 0_u64;
    journal
        .scan(1, &mut |record| {
            assert_eq!(record.seq, expected_seq, "scan reports a gap itself");
            expected_seq += 1;
            let (batch, size, index) =
                parse(&record.payload).ok_or_else(|| corrupt(record.seq, "not a payload of this test"))?;
            if batch != batches || index != in_batch || size != batch_size(batch) {
                return Err(corrupt(record.seq, &format!("batch {batch} record {index} out of place")));
            }
            in_batch += 1;
            if in_batch == size {
                batches += 1;
                in_batch = 0;
            }
            Ok(())
        })
        .map_err(|e| format!("scan after the cut: {e}"))?;
    if in_batch != 0 {
        return Err(format!("batch {batches} is partly there ({in_batch} records)"));
    }
    if batches < acknowledged {
        return Err(format!("{acknowledged} batches were acknowledged, {batches} survived"));
    }
    if batches > acknowledged + 1 {
        return Err(format!("{batches} batches survived, but only {acknowledged} (and one under way) were appended"));
    }
    Ok(batches)
}

fn corrupt(seq: Seq, reason: &str) -> warden_journal::JournalError {
    warden_journal::JournalError::Corrupt { seq, reason: reason.to_owned() }
}

/// How batches are committed in a trial.
#[derive(Clone, Copy)]
enum Committer {
    /// Through [`RedbJournal::append`], as Warden does, committing so.
    Journal(Commit),
    /// Raw redb commits that never fsync: the control.
    Unsynced,
    /// Through a logged journal whose log never fsyncs: the control of the
    /// log.
    LoggedUnsynced,
    /// Through a logged journal checkpointing on its thread, as `open`
    /// makes it: the operations of a run interleave differently each time.
    LoggedInBackground,
}

/// Appends batches on a disk that loses power at operation `cut_at`; answers
/// the disk and how many batches were acknowledged.
fn run(committer: Committer, cut_at: u64) -> (PowerCutBackend, u64) {
    let backend = PowerCutBackend::new(cut_at);
    let Ok(db) = Database::builder().create_with_backend(backend.clone()) else {
        // The power went while the file was being created: nothing acknowledged.
        return (backend, 0);
    };
    let mut acknowledged = 0;
    match committer {
        Committer::Journal(_) | Committer::LoggedUnsynced | Committer::LoggedInBackground => {
            let (commit, log): (Commit, Option<Box<dyn StorageBackend>>) = match committer {
                Committer::Journal(Commit::Logged) | Committer::LoggedInBackground => {
                    (Commit::Logged, Some(Box::new(backend.log())))
                }
                Committer::Journal(commit) => (commit, None),
                _ => (Commit::Logged, Some(Box::new(NoSync(backend.log())))),
            };
            let Ok(journal) = RedbJournal::from_storage("power-cut.redb".into(), db, commit, log, LOG_CAPACITY) else {
                // The power went while the log was being made: nothing acknowledged.
                return (backend, 0);
            };
            let journal = match committer {
                Committer::LoggedInBackground => journal.checkpointing_in_background_every(CHECKPOINT_RECORDS),
                _ => journal.checkpointing_every(CHECKPOINT_RECORDS),
            }
            .without_reopening();
            for n in 0..=BATCHES {
                if journal.append(&batch(n)).is_err() {
                    break;
                }
                acknowledged += 1;
            }
        }
        Committer::Unsynced => {
            const RECORDS: TableDefinition<u64, &[u8]> = crate::store::RECORDS;
            let mut seq = 1;
            for n in 0..=BATCHES {
                let committed = (|| -> Result<(), redb::Error> {
                    let mut txn = db.begin_write()?;
                    txn.set_durability(Durability::None)?;
                    {
                        let mut table = txn.open_table(RECORDS)?;
                        let mut stored = Vec::new();
                        crate::record::for_each_run(seq, &batch(n), &mut stored, |key, run| {
                            table.insert(key, run).map(|_| ())
                        })?;
                    }
                    txn.commit()?;
                    Ok(())
                })();
                if committed.is_err() {
                    break;
                }
                seq += batch_size(n);
                acknowledged += 1;
            }
        }
    }
    (backend, acknowledged)
}

/// Where a cut may fall: among the writes, length changes and fsyncs of a
/// whole run without a cut (the runs are deterministic).
struct CutPoints {
    operations: u64,
    /// The operations that were fsyncs.
    fsyncs: Vec<u64>,
}

fn cut_points(committer: Committer) -> CutPoints {
    let (whole_run, _) = run(committer, 0);
    let disk = whole_run.disk();
    CutPoints { operations: disk.operations, fsyncs: disk.fsyncs_at.clone() }
}

impl CutPoints {
    /// Where trial `trial` cuts: one trial in three on an fsync, where every
    /// write of the commit under way has been issued (the only place a cut
    /// can leave that commit whole); the others anywhere.
    fn pick(&self, trial: u64, random: &mut Random) -> u64 {
        if trial % 3 == 2 && !self.fsyncs.is_empty() {
            self.fsyncs[random.below(self.fsyncs.len() as u64) as usize]
        } else {
            1 + random.below(self.operations)
        }
    }
}

/// What a cut left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The batch under way survived whole.
    KeptUnderWay,
    /// Part of the writes under way landed, yet the batch under way is gone:
    /// the image's god byte names the other commit slot than at the last
    /// fsync (the switch to the new commit landed) and redb's checksums
    /// rolled the torn pages back, or sectors of a log frame landed and the
    /// frame's checksum ended the log before it.
    RolledBackTorn,
    /// Anything else: the cut fell between commits, or before a switch.
    Other,
}

/// One trial: a cut at a point chosen by `trial`, then the image reopened as a
/// real redb file and checked.
fn trial(committer: Committer, points: &CutPoints, trial: u64) -> Result<Outcome, String> {
    let mut random = Random::new(trial);
    let cut_at = points.pick(trial, &mut random);
    // Half the cuts on an fsync find every write of the commit landed.
    let all_landed = points.fsyncs.contains(&cut_at) && random.below(2) == 0;
    let operations = points.operations;
    let (backend, acknowledged) = run(committer, cut_at);
    let (image, log_image, switched, log_partly_landed) = {
        let disk = backend.disk();
        let image = disk.image(DATABASE, &mut random, all_landed);
        let log_image = disk.image(LOG, &mut random, all_landed);
        let synced = &disk.files[DATABASE].synced;
        let switched = synced.len() > GOD_BYTE && (image[GOD_BYTE] ^ synced[GOD_BYTE]) & PRIMARY_SLOT != 0;
        (image, log_image.clone(), switched, log_image != disk.files[LOG].synced)
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("after-the-cut.redb");
    std::fs::write(&path, &image).expect("write the image");
    std::fs::write(RedbJournal::log_path(&path), &log_image).expect("write the log's image");
    let commit = match committer {
        Committer::Journal(commit) => commit,
        Committer::Unsynced => Commit::OnePhase,
        Committer::LoggedUnsynced | Committer::LoggedInBackground => Commit::Logged,
    };
    let journal = match RedbJournal::open_with(&path, commit) {
        Ok(journal) => journal,
        // A cut before the file's first commit leaves nothing redb would open.
        Err(_) if acknowledged == 0 => return Ok(Outcome::Other),
        Err(e) => return Err(format!("cut at operation {cut_at} of {operations}: the image does not open: {e}")),
    };
    let survived =
        check(&journal, acknowledged).map_err(|e| format!("cut at operation {cut_at} of {operations}: {e}"))?;
    Ok(match (survived > acknowledged, switched || log_partly_landed) {
        (true, _) => Outcome::KeptUnderWay,
        (false, true) => Outcome::RolledBackTorn,
        (false, false) => Outcome::Other,
    })
}

/// Runs [`TRIALS`] cuts on journals committing with `commit`, and checks
/// that they reached the cases that matter.
fn cuts_keep_every_acknowledged_batch(commit: Commit) {
    if commit == Commit::Logged {
        let (whole_run, _) = run(Committer::Journal(commit), 0);
        let disk = whole_run.disk();
        let (checkpoints, resets) = (disk.syncs[DATABASE] / 2, disk.log_emptied);
        assert!(checkpoints >= 8, "a run checkpoints several times, so cuts fall in them; {checkpoints} did");
        assert!(resets >= 3, "a run empties its log several times, so cuts fall in that; {resets} did");
        assert!(checkpoints > resets, "some checkpoints keep the log; none did");
    }
    let outcomes: Vec<Result<Outcome, String>> = {
        let points = cut_points(Committer::Journal(commit));
        (0..TRIALS).map(|n| trial(Committer::Journal(commit), &points, n)).collect()
    };
    let failures: Vec<String> =
        outcomes.iter().enumerate().filter_map(|(n, o)| o.as_ref().err().map(|e| format!("trial {n}: {e}"))).collect();
    assert!(failures.is_empty(), "{} of {TRIALS} cuts failed:\n{}", failures.len(), failures.join("\n"));
    // The cuts reached the cases that matter: a commit whose switch landed
    // with its pages torn (rolled back), and a whole unacknowledged commit
    // (kept).
    let count = |wanted| outcomes.iter().filter(|o| o.as_ref().is_ok_and(|o| *o == wanted)).count();
    let (kept, torn) = (count(Outcome::KeptUnderWay), count(Outcome::RolledBackTorn));
    eprintln!("{commit:?}, {TRIALS} cuts: {kept} kept the batch under way, {torn} rolled back a torn commit");
    assert!(kept > 0, "no cut kept the batch under way: none landed after a switch");
    if commit != Commit::TwoPhase {
        // Two-phase commit makes the pages durable before the switch: its
        // switch never lands with torn pages.
        assert!(torn > 0, "no cut tore a commit whose switch (or log frame) had landed in part");
    }
}

#[test]
fn a_power_cut_keeps_every_acknowledged_batch_and_no_half_batch() {
    cuts_keep_every_acknowledged_batch(Commit::Logged);
}

#[test]
fn a_power_cut_keeps_every_acknowledged_batch_of_a_one_phase_journal() {
    cuts_keep_every_acknowledged_batch(Commit::OnePhase);
}

#[test]
fn a_power_cut_keeps_every_acknowledged_batch_of_a_two_phase_journal() {
    cuts_keep_every_acknowledged_batch(Commit::TwoPhase);
}

#[test]
fn a_power_cut_keeps_every_acknowledged_batch_while_a_thread_checkpoints() {
    // The thread's disk operations interleave with the appends' differently
    // in each run: a cut falls at a random point of a run like the measured
    // one, and the trial is not replayable from its number.
    let points = cut_points(Committer::LoggedInBackground);
    let failures: Vec<String> = (0..TRIALS / 2)
        .filter_map(|n| trial(Committer::LoggedInBackground, &points, n).err().map(|e| format!("trial {n}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{} cuts failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_power_cut_check_sees_acknowledged_batches_lost_without_fsync() {
    let points = cut_points(Committer::Unsynced);
    let lost = (0..40).filter(|&n| trial(Committer::Unsynced, &points, n).is_err()).count();
    assert!(lost > 0, "commits that never fsync lost nothing in 40 cuts: the disk model keeps unsynced writes");
}

#[test]
fn the_power_cut_check_sees_acknowledged_batches_lost_without_the_log_fsync() {
    let points = cut_points(Committer::LoggedUnsynced);
    let lost = (0..40).filter(|&n| trial(Committer::LoggedUnsynced, &points, n).is_err()).count();
    assert!(lost > 0, "a log that never fsyncs lost nothing in 40 cuts: the check cannot fail");
}

#[test]
fn the_disk_model_loses_unsynced_writes_and_keeps_synced_ones() {
    let backend = PowerCutBackend::new(4);
    backend.write(0, &[1; SECTOR]).expect("write");
    backend.sync_data().expect("sync");
    backend.write(0, &[2; SECTOR * 64]).expect("write");
    assert!(backend.sync_data().is_err(), "the fourth operation is the cut");
    assert!(backend.write(0, &[3; 1]).is_err(), "nothing is written after the cut");
    let disk = backend.disk();
    let images: Vec<Vec<u8>> = (0..8).map(|seed| disk.image(DATABASE, &mut Random::new(seed), false)).collect();
    assert!(images.iter().all(|image| image[..SECTOR].iter().all(|&b| b == 1 || b == 2)));
    assert!(images.iter().any(|image| image.contains(&1)), "some image lost a sector");
    assert!(images.iter().any(|image| image.contains(&2)), "some image kept a sector");
}
