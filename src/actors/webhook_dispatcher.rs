//! Delivers queued webhook events (placeholder until delivery lands).

use std::sync::Weak;

use actix::prelude::*;

use crate::engine::core::Core;

/// New events are queued.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

/// The dispatcher actor.
pub struct Dispatcher {
    #[allow(dead_code)]
    core: Weak<Core>,
}

impl Dispatcher {
    /// A dispatcher over `core`.
    pub fn new(core: Weak<Core>) -> Self {
        Dispatcher { core }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;
}

impl Handler<Wake> for Dispatcher {
    type Result = ();
    fn handle(&mut self, _: Wake, _: &mut Context<Self>) {}
}
