//! An embedder may drop its actix system as soon as the engine is built,
//! before the engine's actors first ran. That teardown must not panic. (A
//! file of its own: it watches every panic of the process.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use warden::Engine;

#[test]
fn dropping_the_system_right_after_build_panics_nowhere() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    for _ in 0..3 {
        let sys = actix::System::new();
        let engine = sys.block_on(Engine::builder().build()).expect("engine builds");
        drop(engine);
        drop(sys);
    }
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a panic during teardown (printed above)");
}
