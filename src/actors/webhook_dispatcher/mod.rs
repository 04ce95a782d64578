//! The webhook dispatcher: delivers queued events, signed, retried, durably.
//!
//! Events are queued in the same journal commit as the state change that
//! causes them (the outbox, see `engine::notices`), with `next_attempt` set to
//! their date. The dispatcher keeps a schedule of the pending events by due
//! time, filled from a scan of the delivery log when it starts (which covers
//! every event recovery brought back), from [`Wake`] as events are queued, and
//! from a slow rescan kept as a safety net. Every [`TICK`] (and on every wake
//! and every finished try) it starts the events that are due, at most
//! [`MAX_IN_FLIGHT`] at a time and [`MAX_IN_FLIGHT_PER_WEBHOOK`] to one
//! webhook; an event in flight is never started twice.
//!
//! One try POSTs the event (see [`signing`] for the body and its signature)
//! with bounded connect and answer times and no redirects. Any 2xx delivers;
//! anything else (another status, a refused connection, a timeout) is retried
//! on the schedule of [`backoff`] for at least a day after the event's date,
//! then the event is `Failed`. Each try's outcome is journaled as
//! `DeliveryTried` (with when it was sent) before the delivery log in memory
//! shows it; `attempts`
//! counts every try, the first included, and `last_error` keeps the last
//! failure (also once a later try delivered).
//!
//! Delivery is at least once. A try that reached the receiver but whose
//! outcome was not journaled (a crash, a journal error) leaves the event
//! `Pending`, and it is sent again, after the restart if need be. The event id
//! (body `id` and `X-Warden-Event-Id`) never changes between tries, so
//! receivers dedupe on it. Events of one webhook may arrive out of order.
//!
//! An event whose webhook was deleted is dropped: it is journaled `Failed`
//! with `last_error` "webhook deleted" and no try (deleting a webhook drops its
//! pending deliveries).
//!
//! `https://` URLs are delivered over rustls (ring) and must present a
//! certificate chain to one of Mozilla's root certificates (webpki-roots; the
//! system store is not read): a self-signed receiver fails each try.
//!
//! Metric: `warden_webhook_deliveries_total{outcome}`, one count per journaled
//! try, labelled with the contract's name of the event's delivery status after
//! it: `Delivered`, `Pending` (a failed try that will be retried) or `Failed`
//! (given up).

pub mod address;
pub mod backoff;
mod delivery;
pub(crate) use delivery::ping;
mod schedule;
pub mod signing;

use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

use crate::error::Error;
use crate::journal::facts::Fact;
use crate::model::webhook::{DeliveryStatus, Webhook, WebhookEvent};

use self::schedule::Schedule;

/// How often due events are looked for: a retry is at most this late.
pub const TICK: Duration = Duration::from_millis(250);

/// Most deliveries in flight at once: enough to keep many receivers busy, few
/// enough that a flood of events cannot exhaust sockets.
pub const MAX_IN_FLIGHT: usize = 16;

/// Most deliveries in flight to one webhook: a slow or unreachable receiver
/// holds at most this many of the [`MAX_IN_FLIGHT`] slots, so the others'
/// events still go out.
pub const MAX_IN_FLIGHT_PER_WEBHOOK: usize = 4;

/// Longest wait for a TCP connection (and TLS handshake) to a receiver.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for a receiver's answer (its status line and headers), the
/// connection included: a receiver should answer at once and work later; a
/// slow one holds an in-flight slot at most this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the whole delivery log is scanned for pending events. Wakes
/// already bring every new event; the rescan only makes a lost one late, not
/// lost.
pub const RESCAN: Duration = Duration::from_secs(60);

/// What the dispatcher reads and records, given when it starts.
pub(crate) trait DeliveryLog: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
    /// Whether outcomes can be journaled (recovered, not stopping).
    fn is_ready(&self) -> bool;
    /// Every pending event: id, webhook, when due.
    fn pending_events(&self) -> Vec<(String, String, DateTime<Utc>)>;
    /// One event of the delivery log.
    fn event(&self, id: &str) -> Option<WebhookEvent>;
    /// A webhook, with its secret.
    fn webhook(&self, id: &str) -> Option<Webhook>;
    /// Journals a delivery's outcome (one commit), then applies it.
    fn record(self: Arc<Self>, facts: Vec<Fact>) -> BoxFuture<'static, Result<(), Error>>;
}

/// Events were queued (and are in the delivery log): schedule them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake {
    /// The queued events' ids.
    pub events: Vec<String>,
}

/// The dispatcher actor.
pub struct Dispatcher {
    log: Weak<dyn DeliveryLog>,
    client: awc::Client,
    allow_private: bool,
    schedule: Schedule,
}

impl Dispatcher {
    /// A dispatcher over a delivery log; receivers at private addresses are
    /// refused unless `allow_private`.
    pub(crate) fn new(log: Weak<dyn DeliveryLog>, allow_private: bool) -> Self {
        Dispatcher {
            log,
            client: delivery::client(MAX_IN_FLIGHT, allow_private),
            allow_private,
            schedule: Schedule::new(MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_WEBHOOK),
        }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    /// Schedules every pending event, then looks for due ones every [`TICK`].
    fn started(&mut self, ctx: &mut Context<Self>) {
        if crate::actors::system_is_gone() {
            return;
        }
        for outcome in DeliveryStatus::ALL {
            metrics::counter!("warden_webhook_deliveries_total", "outcome" => outcome.as_str()).increment(0);
        }
        self.rescan();
        self.dispatch(ctx);
        ctx.run_interval(TICK, |dispatcher, ctx| dispatcher.dispatch(ctx));
        ctx.run_interval(RESCAN, |dispatcher, ctx| {
            dispatcher.rescan();
            dispatcher.dispatch(ctx);
        });
    }
}

impl Handler<Wake> for Dispatcher {
    type Result = ();

    /// Schedules the new events and starts those that are due.
    fn handle(&mut self, msg: Wake, ctx: &mut Context<Self>) {
        let Some(log) = self.log(ctx) else { return };
        for id in msg.events {
            let Some(event) = log.event(&id).filter(|e| e.status == DeliveryStatus::Pending) else { continue };
            self.schedule.insert(id, event.webhook_id, event.next_attempt.unwrap_or(event.date));
        }
        self.dispatch(ctx);
    }
}

impl Dispatcher {
    fn log(&self, ctx: &mut Context<Self>) -> Option<Arc<dyn DeliveryLog>> {
        let log = self.log.upgrade();
        if log.is_none() {
            // The engine is gone: nothing left to deliver for.
            ctx.stop();
        }
        log
    }

    /// Schedules every pending event of the delivery log.
    fn rescan(&mut self) {
        let Some(log) = self.log.upgrade() else { return };
        for (id, webhook, at) in log.pending_events() {
            self.schedule.insert(id, webhook, at);
        }
    }

    /// Starts the due events there is room for.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        let Some(log) = self.log(ctx) else { return };
        if !log.is_ready() {
            // Not started yet, or shut down: no try could be journaled.
            return;
        }
        for id in self.schedule.take_due(log.now()) {
            self.start(ctx, &log, id);
        }
    }

    /// Starts one try of `id` (in flight in the schedule), if it is still
    /// pending.
    fn start(&mut self, ctx: &mut Context<Self>, log: &Arc<dyn DeliveryLog>, id: String) {
        let Some(event) = log.event(&id).filter(|e| e.status == DeliveryStatus::Pending) else {
            self.schedule.finish(&id);
            return;
        };
        let target = match log.webhook(&event.webhook_id) {
            None => Err("webhook deleted"),
            Some(webhook) => match webhook.secret {
                Some(secret) => Ok(delivery::Endpoint { url: webhook.url, secret, allow_private: self.allow_private }),
                None => Err("webhook has no signing secret"),
            },
        };
        let webhook_id = event.webhook_id.clone();
        let probe = self.schedule.is_probe(&webhook_id, &id);
        let attempt = delivery::attempt(self.client.clone(), self.log.clone(), event, target, probe);
        // INVARIANT (one try at a time): the event stays in flight until its
        // outcome is journaled (or could not be), and only then is queued anew.
        ctx.spawn(attempt.into_actor(self).map(move |tried, dispatcher, ctx| {
            dispatcher.schedule.finish(&id);
            if tried.reached {
                dispatcher.schedule.reached(&webhook_id);
            } else if tried.next.is_some() {
                dispatcher.schedule.failed(&webhook_id, &id);
            }
            if let Some(at) = tried.next {
                dispatcher.schedule.insert(id, webhook_id, at);
            }
            dispatcher.dispatch(ctx);
        }));
    }
}
