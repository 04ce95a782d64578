//! Append latency and throughput by batch size on PostgreSQL, beside redb on
//! the same disk, and the time to scan the journal back.
//!
//! PostgreSQL is a throwaway local server (`TempPostgres`: loopback TCP,
//! `fsync` and `synchronous_commit` on, the package's other defaults); redb is
//! a file in a temp dir. Run with `cargo bench -p warden-postgres` (about two
//! minutes).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use warden_journal::Journal;
use warden_postgres::testing::TempPostgres;
use warden_postgres::PostgresJournal;
use warden_redb::RedbJournal;

/// Size of one record's payload: about that of a journaled activity.
const PAYLOAD_LEN: usize = 200;
const BATCH_SIZES: [usize; 5] = [1, 4, 16, 64, 256];
const SCAN_RECORDS: usize = 100_000;

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
    let server = TempPostgres::start().expect("start postgres");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    // The floor: one 8-byte write and fsync of a plain file on this disk,
    // what any durable commit pays at least once.
    group.throughput(Throughput::Elements(1));
    group.bench_function("file_write_sync_all", |b| {
        let mut file = File::create(dir.path().join("floor")).expect("create file");
        b.iter(|| {
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(b"12345678").expect("write");
            file.sync_all().expect("sync_all");
        });
    });
    for size in BATCH_SIZES {
        let batch = payloads(size);
        group.throughput(Throughput::Elements(size as u64));
        let url = server.create_database(&format!("append_{size}")).expect("database");
        let postgres = PostgresJournal::open(&url).expect("open postgres");
        group.bench_with_input(BenchmarkId::new("postgres", size), &batch, |b, batch| {
            b.iter(|| postgres.append(batch).expect("append"));
        });
        let redb = RedbJournal::open(dir.path().join(format!("append-{size}.redb"))).expect("open redb");
        group.bench_with_input(BenchmarkId::new("redb", size), &batch, |b, batch| {
            b.iter(|| redb.append(batch).expect("append"));
        });
    }
    group.finish();
}

fn scan(c: &mut Criterion) {
    let server = TempPostgres::start().expect("start postgres");
    let url = server.create_database("scan").expect("database");
    let journal = PostgresJournal::open(&url).expect("open");
    let batch = payloads(1000);
    for _ in 0..SCAN_RECORDS / batch.len() {
        journal.append(&batch).expect("append");
    }
    let mut group = c.benchmark_group("scan_100k");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(SCAN_RECORDS as u64));
    group.bench_function("postgres", |b| {
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

criterion_group!(benches, append, scan);
criterion_main!(benches);
