//! Reading records: one session's prepared queries, and the scan that pages
//! through the journal with them.

use postgres::{Config, Statement};
use warden_journal::{JournalError, Record, Seq};

use crate::record;
use crate::session::{self, storage, Session};

/// Records per page of a scan: large enough that a recovery scan of a million
/// records makes a thousand round trips, not a million.
const PAGE_RECORDS: i64 = 1024;
/// Payload bytes per page, past which a page stops early (it always holds at
/// least one record): a scan holds at most this much at once, however large
/// the records.
const PAGE_BYTES: i64 = 16 << 20;

/// A session with the read queries prepared once.
pub(crate) struct ReadSession {
    pub(crate) client: Session,
    page: Statement,
    one: Statement,
    last: Statement,
}

impl ReadSession {
    /// Connects and prepares the read queries.
    pub(crate) fn connect(config: &Config) -> Result<Self, JournalError> {
        Self::on(session::connect(config)?)
    }

    /// Prepares the read queries on `client`.
    pub(crate) fn on(mut client: Session) -> Result<Self, JournalError> {
        // The window sums payload sizes in seq order, so the page stops at
        // `PAGE_BYTES`; `octet_length` reads the stored size without
        // decompressing the value.
        let page = client
            .prepare(
                "SELECT seq, checksum, payload FROM (
                    SELECT seq, checksum, payload,
                           sum(octet_length(payload)) OVER (ORDER BY seq) - octet_length(payload) AS before
                    FROM warden_journal WHERE seq >= $1 ORDER BY seq LIMIT $2
                 ) page WHERE before < $3 ORDER BY seq",
            )
            .map_err(storage("prepare the scan"))?;
        let one = client
            .prepare("SELECT checksum, payload FROM warden_journal WHERE seq = $1")
            .map_err(storage("prepare the read"))?;
        let last = client.prepare("SELECT max(seq) FROM warden_journal").map_err(storage("prepare last_seq"))?;
        Ok(Self { client, page, one, last })
    }

    /// The records from `from` on, at most one page, as `(seq, checksum, payload)`.
    fn page(&mut self, from: i64) -> Result<Vec<(i64, i32, Vec<u8>)>, JournalError> {
        let rows =
            self.client.query(&self.page, &[&from, &PAGE_RECORDS, &PAGE_BYTES]).map_err(storage("scan the journal"))?;
        Ok(rows.into_iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect())
    }

    /// The record at `seq`, checked.
    pub(crate) fn read(&mut self, seq: Seq) -> Result<Option<Record>, JournalError> {
        let Some(key) = record::to_db(seq) else {
            return Ok(None);
        };
        let row = self.client.query_opt(&self.one, &[&key]).map_err(storage("read a record"))?;
        row.map(|row| record::verify(seq, row.get(0), row.get(1))).transpose()
    }

    /// The seq of the last committed record.
    pub(crate) fn last_seq(&mut self) -> Result<Option<Seq>, JournalError> {
        let last: Option<i64> = self.client.query_one(&self.last, &[]).map_err(storage("read the last seq"))?.get(0);
        last.map(record::from_db).transpose()
    }
}

/// A scan in progress: where the next page starts and which seq must come
/// next. Pages are fetched one at a time, so the caller can give its session
/// back between pages and let `visit` call into the journal.
pub(crate) struct Scan {
    /// Where the next page starts; `None` once past the last possible seq.
    next: Option<i64>,
    /// The seq the next record must have; `None` until the first record
    /// when the scan does not start at 1 (anything may come first then).
    expected: Option<Seq>,
}

impl Scan {
    /// A scan of the records from `from` on.
    pub(crate) fn from(from: Seq) -> Self {
        let start = from.max(1);
        Self { next: record::to_db(start), expected: (start == 1).then_some(1) }
    }

    /// The next page, checked: contiguous seqs, matching checksums. A page
    /// with no records and no error means the scan is done.
    pub(crate) fn next_page(&mut self, session: &mut ReadSession) -> Result<Page, JournalError> {
        let Some(from) = self.next else {
            return Ok(Page::default());
        };
        let rows = session.page(from)?;
        let mut page = Page { records: Vec::with_capacity(rows.len()), error: None };
        for (seq, checksum, payload) in rows {
            match self.check(seq, checksum, payload) {
                Ok(record) => page.records.push(record),
                Err(error) => {
                    // The records before it are still good: they are visited,
                    // then the scan stops here.
                    self.next = None;
                    page.error = Some(error);
                    break;
                }
            }
        }
        Ok(page)
    }

    fn check(&mut self, seq: i64, checksum: i32, payload: Vec<u8>) -> Result<Record, JournalError> {
        let seq = record::from_db(seq)?;
        if let Some(expected) = self.expected.filter(|&e| e != seq) {
            return Err(JournalError::Corrupt {
                seq: expected,
                reason: format!("record is missing: the next stored record is seq `{seq}`"),
            });
        }
        let record = record::verify(seq, checksum, payload)?;
        self.expected = seq.checked_add(1);
        self.next = self.expected.and_then(record::to_db);
        Ok(record)
    }
}

/// One page of a scan: its good records, then the error that stopped it.
#[derive(Default)]
pub(crate) struct Page {
    pub(crate) records: Vec<Record>,
    pub(crate) error: Option<JournalError>,
}

impl Page {
    /// Whether the scan is over with nothing more to report.
    pub(crate) fn is_end(&self) -> bool {
        self.records.is_empty() && self.error.is_none()
    }
}
