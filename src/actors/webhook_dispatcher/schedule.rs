//! The dispatcher's schedule: each webhook's pending events by due time, and
//! the tries in flight, within a total cap and a cap per webhook (so that a
//! slow receiver holds back only its own events).
//!
//! A webhook whose last try failed is *failing*: only one of its events, its
//! probe, is tried (on the probe's own backoff), and the rest wait until a
//! try reaches the receiver again. A dead receiver's backlog thus costs one
//! try per backoff step, not one per event.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

/// Pending events and tries in flight.
#[derive(Debug)]
pub(crate) struct Schedule {
    max_in_flight: usize,
    max_per_webhook: usize,
    /// Each webhook's queued events, by due time.
    queues: HashMap<String, BTreeSet<(DateTime<Utc>, String)>>,
    /// Due time and webhook of each queued event.
    queued: HashMap<String, (DateTime<Utc>, String)>,
    /// The webhook of each event in flight.
    in_flight: HashMap<String, String>,
    /// Tries in flight per webhook.
    busy: HashMap<String, usize>,
    /// Failing webhooks and their probe event.
    failing: HashMap<String, String>,
}

impl Schedule {
    /// An empty schedule with at most `max_in_flight` tries at once, and
    /// `max_per_webhook` to one webhook.
    pub(crate) fn new(max_in_flight: usize, max_per_webhook: usize) -> Self {
        Schedule {
            max_in_flight,
            max_per_webhook,
            queues: HashMap::new(),
            queued: HashMap::new(),
            in_flight: HashMap::new(),
            busy: HashMap::new(),
            failing: HashMap::new(),
        }
    }

    /// A try of `event` to `webhook` failed: the webhook is failing, and
    /// `event` its probe unless it has one.
    pub(crate) fn failed(&mut self, webhook: &str, event: &str) {
        self.failing.entry(webhook.to_owned()).or_insert_with(|| event.to_owned());
    }

    /// A try reached `webhook`'s receiver: all its events may go again.
    pub(crate) fn reached(&mut self, webhook: &str) {
        self.failing.remove(webhook);
    }

    /// Whether `event` is the probe of its failing webhook.
    pub(crate) fn is_probe(&self, webhook: &str, event: &str) -> bool {
        self.failing.get(webhook).is_some_and(|probe| probe == event)
    }

    /// Queues `event` of `webhook` to be tried at `at`. An event in flight is
    /// left alone; an event already queued keeps the later of its two times
    /// (a try whose outcome could not be journaled waits its backoff).
    pub(crate) fn insert(&mut self, event: String, webhook: String, at: DateTime<Utc>) {
        // INVARIANT (one try at a time): an event in flight is not queued.
        if self.in_flight.contains_key(&event) {
            return;
        }
        if let Some((old, old_webhook)) = self.queued.get(&event) {
            if *old >= at {
                return;
            }
            if let Some(queue) = self.queues.get_mut(old_webhook) {
                queue.remove(&(*old, event.clone()));
            }
        }
        self.queues.entry(webhook.clone()).or_default().insert((at, event.clone()));
        self.queued.insert(event, (at, webhook));
    }

    /// Takes the events due at `now` that may start within the caps, and
    /// marks them in flight. Webhooks whose oldest due event has waited
    /// longest go first; each webhook's events go oldest first.
    pub(crate) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut webhooks: Vec<(DateTime<Utc>, String)> = self
            .queues
            .iter()
            .filter_map(|(webhook, queue)| queue.first().map(|(at, _)| (*at, webhook.clone())))
            .filter(|(at, _)| *at <= now)
            .collect();
        webhooks.sort();
        let mut started = Vec::new();
        for (_, webhook) in webhooks {
            if let Some(probe) = self.failing.get(&webhook).cloned() {
                match self.queued.get(&probe) {
                    Some((at, _)) if *at <= now && self.in_flight.len() < self.max_in_flight => {
                        let at = *at;
                        if let Some(queue) = self.queues.get_mut(&webhook) {
                            queue.remove(&(at, probe.clone()));
                            if queue.is_empty() {
                                self.queues.remove(&webhook);
                            }
                        }
                        self.queued.remove(&probe);
                        self.in_flight.insert(probe.clone(), webhook.clone());
                        *self.busy.entry(webhook.clone()).or_default() += 1;
                        started.push(probe);
                    }
                    Some(_) => {}
                    // The probe settled (or was dropped) without reaching the
                    // receiver: the next failure picks another.
                    None if !self.in_flight.contains_key(&probe) => {
                        self.failing.remove(&webhook);
                    }
                    None => {}
                }
                continue;
            }
            let Some(queue) = self.queues.get_mut(&webhook) else { continue };
            let busy = self.busy.entry(webhook.clone()).or_default();
            while self.in_flight.len() < self.max_in_flight && *busy < self.max_per_webhook {
                match queue.first() {
                    Some((at, _)) if *at <= now => {}
                    _ => break,
                }
                let Some((_, event)) = queue.pop_first() else { break };
                self.queued.remove(&event);
                self.in_flight.insert(event.clone(), webhook.clone());
                *busy += 1;
                started.push(event);
            }
            if *busy == 0 {
                self.busy.remove(&webhook);
            }
            if queue.is_empty() {
                self.queues.remove(&webhook);
            }
        }
        started
    }

    /// The try of `event` ended (its next time, if any, is inserted anew).
    pub(crate) fn finish(&mut self, event: &str) {
        let Some(webhook) = self.in_flight.remove(event) else { return };
        if let Some(busy) = self.busy.get_mut(&webhook) {
            *busy -= 1;
            if *busy == 0 {
                self.busy.remove(&webhook);
            }
        }
    }

    /// Tries in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn queue(schedule: &mut Schedule, webhook: &str, events: &[(&str, i64)]) {
        for (event, at) in events {
            schedule.insert(event.to_string(), webhook.into(), t(*at));
        }
    }

    #[test]
    fn only_due_events_start_oldest_first() {
        let mut s = Schedule::new(16, 4);
        queue(&mut s, "wh-a", &[("e3", 3), ("e1", 1), ("e9", 9)]);
        assert_eq!(s.take_due(t(5)), ["e1", "e3"]);
        assert!(s.take_due(t(5)).is_empty(), "in flight is not started twice");
        assert_eq!(s.take_due(t(9)), ["e9"]);
    }

    #[test]
    fn an_event_in_flight_is_not_queued_again() {
        let mut s = Schedule::new(16, 4);
        queue(&mut s, "wh-a", &[("e1", 0)]);
        assert_eq!(s.take_due(t(0)), ["e1"]);
        queue(&mut s, "wh-a", &[("e1", 0)]);
        assert!(s.take_due(t(10)).is_empty());
        s.finish("e1");
        queue(&mut s, "wh-a", &[("e1", 2)]);
        assert_eq!(s.take_due(t(10)), ["e1"]);
    }

    #[test]
    fn a_queued_event_keeps_its_later_time() {
        let mut s = Schedule::new(16, 4);
        queue(&mut s, "wh-a", &[("e1", 5), ("e1", 1)]);
        assert!(s.take_due(t(3)).is_empty());
        queue(&mut s, "wh-a", &[("e1", 8)]);
        assert!(s.take_due(t(6)).is_empty());
        assert_eq!(s.take_due(t(8)), ["e1"]);
    }

    #[test]
    fn a_failing_webhook_tries_only_its_probe_until_a_try_reaches_it() {
        let mut s = Schedule::new(16, 4);
        queue(&mut s, "wh-dead", &[("e1", 0), ("e2", 0), ("e3", 0)]);
        queue(&mut s, "wh-ok", &[("k1", 0)]);
        assert_eq!(s.take_due(t(0)), ["e1", "e2", "e3", "k1"]);
        for e in ["e1", "e2", "e3"] {
            s.failed("wh-dead", e);
            s.finish(e);
        }
        s.finish("k1");
        queue(&mut s, "wh-dead", &[("e1", 10), ("e2", 3), ("e3", 4)]);
        assert!(s.take_due(t(9)).is_empty(), "only the probe goes, at its own time");
        assert_eq!(s.take_due(t(10)), ["e1"]);
        assert!(s.is_probe("wh-dead", "e1"));
        s.reached("wh-dead");
        s.finish("e1");
        assert_eq!(s.take_due(t(10)), ["e2", "e3"], "the receiver is back: the backlog flows");
    }

    #[test]
    fn a_busy_webhook_does_not_hold_back_the_others() {
        let mut s = Schedule::new(6, 4);
        let slow: Vec<(String, i64)> = (0..100).map(|i| (format!("slow{i:03}"), 0)).collect();
        let slow: Vec<(&str, i64)> = slow.iter().map(|(e, at)| (e.as_str(), *at)).collect();
        queue(&mut s, "wh-slow", &slow);
        queue(&mut s, "wh-b", &[("b1", 1), ("b2", 1), ("b3", 1)]);
        let started = s.take_due(t(2));
        assert_eq!(started, ["slow000", "slow001", "slow002", "slow003", "b1", "b2"]);
        assert_eq!(s.in_flight(), 6);
        s.finish("b1");
        s.finish("slow000");
        assert_eq!(s.take_due(t(2)), ["slow004", "b3"]);
        s.finish("b2");
        assert!(s.take_due(t(2)).is_empty(), "wh-slow is at its cap, wh-b is empty");
    }
}
