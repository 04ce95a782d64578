//! Append throughput by batch size and commit (logged, or a redb two-phase
//! commit per batch), beside this machine's fsync floor; the
//! cost of redb's commit strategies, which the crate docs weigh; and the time
//! to open and scan a journal of a million records.
//!
//! Run with `cargo bench -p warden-redb` (a few minutes; building the
//! million-record journal takes a few seconds of it).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redb::{Database, Durability, TableDefinition};
use warden_journal::Journal;
use warden_redb::{Commit, RedbJournal};

/// Size of one record's payload: about that of a journaled activity.
const PAYLOAD_LEN: usize = 200;
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
const SCAN_RECORDS: usize = 1_000_000;
/// Records per commit while building the scanned journal.
const BUILD_BATCH: usize = 1000;

fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut payload = format!("record {i} ").into_bytes();
            payload.resize(PAYLOAD_LEN, b'x');
            payload
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("append");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    // The floor: one 8-byte write and fsync of a plain file, what any
    // durable commit pays at least once.
    group.throughput(Throughput::Elements(1));
    group.bench_function("file_write_sync_all", |b| {
        let mut file = File::create(dir.path().join("floor")).expect("create file");
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(b"12345678").expect("write");
            file.sync_all().expect("sync_all");
        });
    });

    // The default logged commit (checkpoints included, as they fall), and a
    // redb two-phase commit per batch.
    for (name, commit) in [("logged", Commit::Logged), ("two_phase", Commit::TwoPhase)] {
        for size in BATCH_SIZES {
            let path = dir.path().join(format!("append-{name}-{size}.redb"));
            let journal = RedbJournal::open_with(path, commit).expect("open");
            let batch = payloads(size);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &batch, |b, batch| {
                b.iter(|| journal.append(batch).expect("append"));
            });
        }
    }
    group.finish();
}

/// Sets a write transaction's commit strategy.
type Configure = fn(&mut redb::WriteTransaction);

/// A commit of raw redb under each strategy the crate docs weigh, with
/// values of the size the journal stores (payload plus 5-byte header).
fn commit_strategy(c: &mut Criterion) {
    const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("bench");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("commit_strategy");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let value = [b'x'; PAYLOAD_LEN + 5];
    let strategies: [(&str, Configure); 3] = [
        ("one_phase", |txn| txn.set_two_phase_commit(false)),
        ("two_phase", |txn| txn.set_two_phase_commit(true)),
        ("quick_repair", |txn| txn.set_quick_repair(true)),
    ];
    for (name, configure) in strategies {
        for size in [1_u64, 1000] {
            let db = Database::create(dir.path().join(format!("{name}-{size}.redb"))).expect("create database");
            let mut next = 0_u64;
            group.throughput(Throughput::Elements(size));
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter(|| {
                    let mut txn = db.begin_write().expect("begin write");
                    txn.set_durability(Durability::Immediate).expect("durability");
                    configure(&mut txn);
                    {
                        let mut table = txn.open_table(TABLE).expect("table");
                        for key in next..next + size {
                            table.insert(key, &value[..]).expect("insert");
                        }
                    }
                    txn.commit().expect("commit");
                    next += size;
                });
            });
        }
    }
    group.finish();
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("scan.redb");
    {
        let journal = RedbJournal::open(&path).expect("open");
        let batch = payloads(BUILD_BATCH);
        for _ in 0..SCAN_RECORDS / BUILD_BATCH {
            journal.append(&batch).expect("append");
        }
    }

    let mut group = c.benchmark_group("recovery_1m");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(SCAN_RECORDS as u64));

    // Opening verifies every page of the file (see the crate docs).
    group.bench_function("open", |b| {
        b.iter(|| RedbJournal::open(&path).expect("open"));
    });

    let journal = RedbJournal::open(&path).expect("open");
    group.bench_function("scan", |b| {
        b.iter(|| {
            let mut bytes = 0;
            journal
                .scan(1, &mut |record| {
                    bytes += record.payload.len();
                    Ok(())
                })
                .expect("scan");
            assert_eq!(bytes, SCAN_RECORDS * PAYLOAD_LEN);
        });
    });
    group.finish();
}

criterion_group!(benches, append, commit_strategy, scan);
criterion_main!(benches);
