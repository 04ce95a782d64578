//! Running a state change to its end, whether or not its caller still
//! waits for it.

use std::task::Poll;

use futures_util::future::BoxFuture;

use crate::error::{Error, Unavailable};

/// Runs a state change to its end even if the caller stops waiting (a
/// dropped HTTP connection, a timeout): once its facts may be committed, the
/// in-memory state, the windows and the idempotency keys must follow them.
///
/// The change is polled once here first: one that finishes without waiting
/// (an activity no window checks, on a journal appended in place) has no
/// point at which its caller could stop waiting, and needs no task. One that
/// waits is handed, as it stands, to a task of its own (it is boxed, so it
/// does not move) before this function can be cancelled. A panic of the
/// change answers `TaskFailed` on either way, as a task's would, and never
/// unwinds into the caller.
///
/// The runtime that will run the rest is found before the first poll: a
/// caller outside a tokio runtime is refused before the change has done
/// anything (a commit handed to the writer by that poll, then a failed
/// spawn, would leave facts journaled and never applied).
pub(super) async fn detached<T: Send + 'static>(mut change: BoxFuture<'static, Result<T, Error>>) -> Result<T, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| Unavailable::TaskFailed {
        reason: format!("the engine's calls run on a tokio runtime (actix's included): {e}"),
    })?;
    let first = std::future::poll_fn(|cx| {
        let poll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.as_mut().poll(cx)));
        Poll::Ready(poll)
    })
    .await;
    match first {
        Ok(Poll::Ready(done)) => return done,
        Ok(Poll::Pending) => {}
        Err(panic) => return Err(Unavailable::TaskFailed { reason: panic_message(panic.as_ref()) }.into()),
    }
    runtime.spawn(change).await.map_err(|e| Unavailable::TaskFailed { reason: e.to_string() })?
}

/// What a panic said, as a task's `JoinError` would tell it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let said = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    format!("a change panicked: {}", said.unwrap_or("(no message)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    fn is_task_failed(answer: &Result<(), Error>, says: &str) -> bool {
        matches!(answer, Err(Error::Unavailable(Unavailable::TaskFailed { reason })) if reason.contains(says))
    }

    #[test]
    fn a_change_that_panics_at_once_answers_task_failed() {
        let answer: Result<(), Error> = runtime().block_on(detached(Box::pin(async { panic!("at once") })));
        assert!(is_task_failed(&answer, "at once"), "{answer:?}");
    }

    #[test]
    fn a_change_that_panics_after_waiting_answers_task_failed() {
        let answer: Result<(), Error> = runtime().block_on(detached(Box::pin(async {
            tokio::task::yield_now().await;
            panic!("after waiting")
        })));
        assert!(is_task_failed(&answer, "after waiting"), "{answer:?}");
    }

    #[test]
    fn a_caller_outside_a_runtime_is_refused_before_the_change_does_anything() {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = started.clone();
        let change = detached(Box::pin(async move {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(())
        }));
        // Polled on this plain thread, outside any runtime.
        let answer: Result<(), Error> = futures_util::FutureExt::now_or_never(change).expect("refused at once");
        assert!(is_task_failed(&answer, "tokio runtime"), "{answer:?}");
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst), "the change was not polled");
    }

    #[test]
    fn a_change_finishes_even_when_its_caller_stops_waiting_after_the_first_poll() {
        let runtime = runtime();
        let (done, finished) = tokio::sync::oneshot::channel();
        runtime.block_on(async {
            let change = detached(Box::pin(async move {
                tokio::task::yield_now().await;
                let _ = done.send(());
                Ok(())
            }));
            // Polled once (the change waits and is handed to its task), then dropped.
            assert!(futures_util::FutureExt::now_or_never(change).is_none());
            finished.await.expect("the abandoned change ran to its end");
        });
    }
}
