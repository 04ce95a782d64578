//! Reading facts back from the journal: the whole journal, in order
//! (recovery), or a few known records (an activity, a resolved approval, the
//! records holding a window's counts).

use warden_journal::{Journal, JournalError, Seq};

use crate::error::Error;

use super::facts::Fact;

/// The fact journaled at `seq`; a missing record is corrupt (the engine
/// knew of it).
pub(crate) fn read_fact(journal: &dyn Journal, seq: Seq) -> Result<Fact, Error> {
    let record = journal
        .read(seq)?
        .ok_or_else(|| Error::Journal(JournalError::Corrupt { seq, reason: "record is missing".into() }))?;
    Ok(decode(seq, &record.payload)?)
}

/// The error of a record that is not what the index said it is.
pub(crate) fn unexpected(seq: Seq, what: impl Into<String>) -> Error {
    Error::Journal(JournalError::Corrupt { seq, reason: what.into() })
}

fn decode(seq: Seq, payload: &[u8]) -> Result<Fact, JournalError> {
    Fact::decode(payload).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
}

/// Records handed from the reading thread to the folding one at a time.
const RECOVERY_BATCH: usize = 1024;

/// Every record of the journal in two stages: `prepare` runs on a reading
/// thread as records are read and decoded, `fold` on the caller's thread, in
/// journal order, so a restart uses two cores.
pub(crate) fn for_each_fact_pipelined<P: Send>(
    journal: &dyn Journal,
    mut prepare: impl FnMut(Seq, Fact) -> P + Send,
    mut fold: impl FnMut(P),
) -> Result<(), Error> {
    type Batch<P> = Vec<Result<P, JournalError>>;
    let (batches, inbox) = std::sync::mpsc::sync_channel::<Batch<P>>(8);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut batch: Batch<P> = Vec::with_capacity(RECOVERY_BATCH);
            journal.scan(1, &mut |record| {
                batch.push(decode(record.seq, &record.payload).map(|fact| prepare(record.seq, fact)));
                if batch.len() == RECOVERY_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(RECOVERY_BATCH));
                    // The folding side stopped at an error: stop reading.
                    batches.send(full).map_err(|_| JournalError::Storage("recovery stopped".into()))?;
                }
                Ok(())
            })?;
            let _ = batches.send(batch);
            Ok::<(), JournalError>(())
        });
        let folded = (|| {
            for batch in inbox {
                for prepared in batch {
                    fold(prepared?);
                }
            }
            Ok::<(), JournalError>(())
        })();
        let read = reader.join().unwrap_or_else(|_| Err(JournalError::Storage("recovery reader panicked".into())));
        // A corrupt record is reported by the folding side; a storage error
        // by the reader.
        folded.and(read).map_err(Error::from)
    })
}
