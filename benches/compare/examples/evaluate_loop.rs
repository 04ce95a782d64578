//! `Engine::evaluate` in a loop, for counting its instructions: the engine
//! bench's `K=1` case (one matching policy, a memory journal, 64 in flight,
//! requests made 500 at a time) without timing, so that callgrind can count
//! it. A count does not move with the machine's load, as times do on a
//! shared two-core VM; BENCHMARKS.md (section 12) gives the figures.
//!
//! ```text
//! cargo build --release -p warden-compare --features mimalloc --example evaluate_loop
//! for n in 2000 12000; do
//!   valgrind --tool=callgrind --callgrind-out-file=eval.$n target/release/examples/evaluate_loop $n
//! done
//! # instructions per evaluation: (total of 12000 - total of 2000) / 10000
//! ```
//!
//! The difference of two runs leaves out the start (building the engine,
//! creating the policy); the harness's own copies of its requests stay in.

use std::cell::RefCell;

use futures_util::future::join_all;
use warden::Engine;
use warden_compare::{transfer, warden_policies, MATCHING_TAG};

#[global_allocator]
static GLOBAL: warden::allocator::Mimalloc = warden::allocator::Mimalloc;

const IN_FLIGHT: usize = 64;
const BATCH: usize = 500;

fn main() {
    let activities: usize = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 20_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: evaluate_loop [activities]");
            std::process::exit(2);
        }
    };
    let sys = actix::System::new();
    let engine = sys.block_on(async {
        let engine = Engine::builder().journal(warden::MemoryJournal::new()).build().await.expect("engine builds");
        let admin = warden::Principal::user("us-alice", &[warden::Role::Admin]);
        for policy in warden_policies(1) {
            engine.create_policy(&admin, policy.spec).await.expect("policy is created");
        }
        engine
    });
    let request = transfer("wa-1", MATCHING_TAG, "4500.00");
    for _ in 0..activities.div_ceil(BATCH) {
        let requests = RefCell::new(vec![request.clone(); BATCH]);
        sys.block_on(join_all((0..IN_FLIGHT).map(|_| async {
            loop {
                let Some(request) = requests.borrow_mut().pop() else { break };
                engine.evaluate(request).await.expect("activity is evaluated");
            }
        })));
    }
    engine.shutdown();
}
