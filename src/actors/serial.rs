//! The registry's one-at-a-time lane: a future sent here runs alone among
//! the futures sent here (policy changes and the resolutions of governed
//! changes), so each sees every earlier one applied.

use actix::prelude::*;
use futures_util::future::BoxFuture;

/// Run this future after every earlier one sent here has finished.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Serialized(pub(crate) BoxFuture<'static, ()>);
