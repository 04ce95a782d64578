//! Running a state change to its end, whether or not its caller still
//! waits for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::runtime::Handle;

use crate::error::{Error, Unavailable};

/// Runs a state change to its end even if the caller stops waiting (a
/// dropped HTTP connection, a timeout): once its facts may be committed, the
/// in-memory state, the windows and the idempotency keys must follow them.
///
/// The caller polls the change itself while it waits, so that the usual
/// change (whose caller waits to the end) costs no task: no spawn, no second
/// task to wake when the journal answers, no join. If the caller stops
/// waiting first, the change, as it stands (it is boxed, so it does not
/// move), is handed to a task of its own on the runtime it started on, which
/// runs the rest. A panic of the change answers `TaskFailed`, as a task's
/// would, and never unwinds into the caller.
///
/// The runtime that would run the rest is found before the first poll: a
/// caller outside a tokio runtime is refused before the change has done
/// anything (a commit handed to the writer by that poll, then no runtime to
/// finish it on, would leave facts journaled and never applied).
pub(super) async fn detached<T: Send + 'static>(change: BoxFuture<'static, Result<T, Error>>) -> Result<T, Error> {
    let runtime = Handle::try_current().map_err(|e| Unavailable::TaskFailed {
        reason: format!("the engine's calls run on a tokio runtime (actix's included): {e}"),
    })?;
    RunToEnd { change: Some(change), runtime }.await
}

/// A change polled by its caller; `None` once it has ended (or panicked).
struct RunToEnd<T: Send + 'static> {
    change: Option<BoxFuture<'static, Result<T, Error>>>,
    runtime: Handle,
}

impl<T: Send + 'static> Future for RunToEnd<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(change) = this.change.as_mut() else {
            return Poll::Ready(Err(
                Unavailable::TaskFailed { reason: "a change was polled after its end".into() }.into()
            ));
        };
        let poll = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.as_mut().poll(cx)));
        let done = match poll {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(done)) => done,
            Err(panic) => Err(Unavailable::TaskFailed { reason: panic_message(panic.as_ref()) }.into()),
        };
        this.change = None;
        Poll::Ready(done)
    }
}

impl<T: Send + 'static> Drop for RunToEnd<T> {
    fn drop(&mut self) {
        if let Some(change) = self.change.take() {
            // The caller stopped waiting before the end: the rest runs on a
            // task of its own, which nobody joins (a panic there is the
            // runtime's to report).
            drop(self.runtime.spawn(change));
        }
    }
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

    #[test]
    fn a_change_its_caller_waits_for_runs_on_the_callers_task() {
        let answer = runtime().block_on(detached(Box::pin(async {
            tokio::task::yield_now().await;
            // `block_on` is no task: a spawned change would count one.
            Ok(Handle::current().metrics().num_alive_tasks())
        })));
        assert_eq!(answer.expect("the change ends"), 0, "no task was spawned for it");
    }

    #[test]
    fn a_change_finishes_even_when_its_caller_stops_waiting_after_several_polls() {
        let runtime = runtime();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        runtime.block_on(async {
            let mut change = Box::pin(detached(Box::pin(async move {
                tokio::task::yield_now().await;
                wait.await.expect("told to go on");
                let _ = done.send(());
                Ok(())
            })));
            // Polled until it waits on `wait` (after its yield), then dropped.
            for _ in 0..3 {
                assert!(futures_util::FutureExt::now_or_never(change.as_mut()).is_none());
                tokio::task::yield_now().await;
            }
            drop(change);
            go.send(()).expect("the change still holds its receiver");
            finished.await.expect("the abandoned change ran to its end");
        });
    }
}
