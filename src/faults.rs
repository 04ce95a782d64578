//! Fault injection for tests: arm a site (`"window.reserve"`,
//! `"approval.decide"`, ...) for an actor key, and the next handler of that
//! site for that key panics, for real, where it runs. Compiled in only with
//! the `fault-injection` feature, which only the project's own tests enable;
//! otherwise [`trip`] is an empty inline function.

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::Mutex;

    static ARMED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    /// Makes the next handler of `site` for the actor keyed `key` panic.
    pub fn inject(site: &str, key: &str) {
        ARMED.lock().unwrap_or_else(|p| p.into_inner()).push((site.to_owned(), key.to_owned()));
    }

    /// Whether an injected fault is still waiting for its handler.
    pub fn pending() -> usize {
        ARMED.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Panics if `site` is armed for `key` (and disarms it).
    pub(crate) fn trip(site: &str, key: &str) {
        let hit = {
            let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
            let at = armed.iter().position(|(s, k)| s == site && k == key);
            at.map(|i| armed.remove(i))
        };
        if hit.is_some() {
            panic!("fault injected at {site} for {key}");
        }
    }
}

#[cfg(feature = "fault-injection")]
pub(crate) use armed::trip;
#[cfg(feature = "fault-injection")]
pub use armed::{inject, pending};

/// No fault can be armed in this build.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn trip(_site: &str, _key: &str) {}
