//! The push-delivery policy of a Pub/Sub subscription, as pure code (contracts 2.3-2.6):
//! which HTTP answers acknowledge, the retry policy's exponential backoff, delivery-attempt
//! counting and dead-lettering after `max_delivery_attempts`, and the ordering gate (one
//! outstanding message per ordering key, in order). The engine feeds it pulled messages and
//! delivery results with the current time, and does what it answers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use domain::backoff::Backoff;

/// The HTTP answers a push endpoint acknowledges with (everything else is a NACK).
pub fn is_ack_status(status: u16) -> bool {
    matches!(status, 102 | 200 | 201 | 202 | 204)
}

/// A subscription's retry policy and dead-letter limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts before the message goes to the dead-letter topic.
    pub max_delivery_attempts: u32,
}

impl RetryPolicy {
    /// The wait after delivery attempt `attempt` (counted from 1) failed: `min * 2^(attempt-1)`,
    /// at most `max`. Pub/Sub documents the backoff as exponential between the two bounds.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff {
            initial: self.min_backoff,
            multiplier: 2.0,
            max: self.max_backoff,
            max_attempts: self.max_delivery_attempts,
            jitter_fraction: 0.0,
        }
        .base_delay(attempt)
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with this status.
    Status(u16),
    /// No answer: connection refused, reset, or the ack deadline passed.
    NoAnswer,
}

impl Outcome {
    pub fn is_ack(self) -> bool {
        matches!(self, Outcome::Status(s) if is_ack_status(s))
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ack,
    Retry { after: Duration },
    DeadLetter,
}

/// The verdict for attempt `attempt` (counted from 1) that ended with `outcome`.
pub fn verdict(policy: &RetryPolicy, attempt: u32, outcome: Outcome) -> Verdict {
    if outcome.is_ack() {
        Verdict::Ack
    } else if attempt >= policy.max_delivery_attempts {
        Verdict::DeadLetter
    } else {
        Verdict::Retry { after: policy.backoff(attempt) }
    }
}

/// The parts of a pulled message the scheduler needs; `M` is the rest (data, attributes...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held<M> {
    pub message_id: String,
    /// The latest ack id (a redelivery by the emulator replaces it).
    pub ack_id: String,
    pub ordering_key: Option<String>,
    pub message: M,
}

/// A message to deliver now, as attempt `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch<M> {
    pub message_id: String,
    pub attempt: u32,
    pub ordering_key: Option<String>,
    pub message: M,
}

/// What the engine must do after a delivery finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion<M> {
    /// Acknowledge `ack_id`: done.
    Ack { ack_id: String },
    /// Keep holding; deliver again after `after`, as attempt `next_attempt`.
    Retry { after: Duration, next_attempt: u32 },
    /// Publish to the dead-letter topic, then acknowledge `ack_id`.
    DeadLetter { ack_id: String, attempts: u32, message: M },
    /// The message was not in flight (should not happen); nothing to do.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Waiting { due: Instant },
    InFlight,
}

#[derive(Debug, Clone)]
struct Entry<M> {
    held: Held<M>,
    attempts: u32,
    state: State,
}

/// Messages held by one subscription's delivery loop: who is due, who waits for its ordering
/// key, how many attempts each has had.
#[derive(Debug, Clone)]
pub struct Scheduler<M> {
    policy: RetryPolicy,
    ordered: bool,
    entries: HashMap<String, Entry<M>>,
    /// Per ordering key, message ids in arrival order (only when `ordered`).
    keys: BTreeMap<String, VecDeque<String>>,
    /// Arrival order of every held message, for fair dispatch.
    arrival: VecDeque<String>,
}

impl<M: Clone> Scheduler<M> {
    /// `ordered`: the subscription has message ordering on.
    pub fn new(policy: RetryPolicy, ordered: bool) -> Self {
        Self {
            policy,
            ordered,
            entries: HashMap::new(),
            keys: BTreeMap::new(),
            arrival: VecDeque::new(),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Messages held (waiting or in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every held ack id (to extend their leases).
    pub fn ack_ids(&self) -> Vec<String> {
        self.entries.values().map(|e| e.held.ack_id.clone()).collect()
    }

    /// A pulled message. Returns false when it was already held (a redelivery of a message
    /// whose lease ran out): only its ack id is refreshed, its attempts and state are kept.
    pub fn offer(&mut self, held: Held<M>, now: Instant) -> bool {
        if let Some(entry) = self.entries.get_mut(&held.message_id) {
            entry.held.ack_id = held.ack_id;
            return false;
        }
        let id = held.message_id.clone();
        if let Some(key) = self.key_of(&held) {
            self.keys.entry(key).or_default().push_back(id.clone());
        }
        self.arrival.push_back(id.clone());
        self.entries.insert(id, Entry { held, attempts: 0, state: State::Waiting { due: now } });
        true
    }

    fn key_of(&self, held: &Held<M>) -> Option<String> {
        if self.ordered { held.ordering_key.clone().filter(|k| !k.is_empty()) } else { None }
    }

    /// Whether the ordering gate lets `id` go: unkeyed, or first of its key.
    fn gate_open(&self, entry: &Entry<M>) -> bool {
        match self.key_of(&entry.held) {
            None => true,
            Some(key) => {
                self.keys.get(&key).and_then(VecDeque::front) == Some(&entry.held.message_id)
            }
        }
    }

    /// Messages to deliver now (at most `limit`), marked in flight, their attempt counted.
    pub fn take_due(&mut self, now: Instant, limit: usize) -> Vec<Dispatch<M>> {
        let mut out = Vec::new();
        for id in &self.arrival {
            if out.len() >= limit {
                break;
            }
            let Some(entry) = self.entries.get(id) else { continue };
            let due = matches!(entry.state, State::Waiting { due } if due <= now);
            if !due || !self.gate_open(entry) {
                continue;
            }
            out.push(id.clone());
        }
        out.into_iter()
            .filter_map(|id| {
                let entry = self.entries.get_mut(&id)?;
                entry.attempts += 1;
                entry.state = State::InFlight;
                Some(Dispatch {
                    message_id: id,
                    attempt: entry.attempts,
                    ordering_key: entry.held.ordering_key.clone(),
                    message: entry.held.message.clone(),
                })
            })
            .collect()
    }

    /// When the next waiting message becomes due (ignoring ones held back by their key).
    pub fn next_due(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| self.gate_open(e))
            .filter_map(|e| match e.state {
                State::Waiting { due } => Some(due),
                State::InFlight => None,
            })
            .min()
    }

    /// A delivery of `message_id` ended with `outcome`.
    pub fn complete(&mut self, message_id: &str, outcome: Outcome, now: Instant) -> Completion<M> {
        let Some(entry) = self.entries.get_mut(message_id) else { return Completion::Unknown };
        if entry.state != State::InFlight {
            return Completion::Unknown;
        }
        match verdict(&self.policy, entry.attempts, outcome) {
            Verdict::Retry { after } => {
                entry.state = State::Waiting { due: now + after };
                Completion::Retry { after, next_attempt: entry.attempts + 1 }
            }
            Verdict::Ack => {
                let entry = self.remove(message_id);
                Completion::Ack { ack_id: entry.held.ack_id }
            }
            Verdict::DeadLetter => {
                let entry = self.remove(message_id);
                Completion::DeadLetter {
                    ack_id: entry.held.ack_id,
                    attempts: entry.attempts,
                    message: entry.held.message,
                }
            }
        }
    }

    fn remove(&mut self, message_id: &str) -> Entry<M> {
        let entry = self.entries.remove(message_id).expect("caller checked the entry exists");
        if let Some(key) = self.key_of(&entry.held)
            && let Some(queue) = self.keys.get_mut(&key)
        {
            queue.retain(|id| id != message_id);
            if queue.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.arrival.retain(|id| id != message_id);
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        min_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(600),
        max_delivery_attempts: 5,
    };

    fn held(id: &str, key: Option<&str>) -> Held<String> {
        Held {
            message_id: id.to_owned(),
            ack_id: format!("ack-{id}"),
            ordering_key: key.map(str::to_owned),
            message: format!("data-{id}"),
        }
    }

    fn ids(d: &[Dispatch<String>]) -> Vec<(&str, u32)> {
        d.iter().map(|d| (d.message_id.as_str(), d.attempt)).collect()
    }

    #[test]
    fn ack_statuses_are_exactly_the_documented_ones() {
        for s in [102, 200, 201, 202, 204] {
            assert!(is_ack_status(s), "{s}");
        }
        for s in [100, 203, 206, 301, 400, 401, 404, 409, 429, 500, 503] {
            assert!(!is_ack_status(s), "{s}");
        }
        assert!(!Outcome::NoAnswer.is_ack());
    }

    #[test]
    fn backoff_doubles_from_min_and_stops_at_max() {
        let secs: Vec<u64> = (1..=9).map(|a| POLICY.backoff(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
        let zero = RetryPolicy { min_backoff: Duration::ZERO, ..POLICY };
        assert_eq!(zero.backoff(3), Duration::ZERO);
        let flat = RetryPolicy {
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            ..POLICY
        };
        assert_eq!(flat.backoff(1), flat.backoff(4));
    }

    #[test]
    fn verdicts_count_attempts_up_to_the_dead_letter_limit() {
        assert_eq!(verdict(&POLICY, 1, Outcome::Status(204)), Verdict::Ack);
        assert_eq!(verdict(&POLICY, 5, Outcome::Status(200)), Verdict::Ack);
        assert_eq!(
            verdict(&POLICY, 1, Outcome::Status(500)),
            Verdict::Retry { after: Duration::from_secs(10) }
        );
        assert_eq!(
            verdict(&POLICY, 4, Outcome::NoAnswer),
            Verdict::Retry { after: Duration::from_secs(80) }
        );
        assert_eq!(verdict(&POLICY, 5, Outcome::Status(503)), Verdict::DeadLetter);
    }

    #[test]
    fn a_failing_message_is_retried_with_growing_attempts_then_dead_lettered() {
        let mut s = Scheduler::new(POLICY, false);
        let t0 = Instant::now();
        assert!(s.offer(held("m1", None), t0));
        let mut now = t0;
        for attempt in 1..=4 {
            let d = s.take_due(now, 10);
            assert_eq!(ids(&d), [("m1", attempt)]);
            // Not due again while in flight.
            assert!(s.take_due(now, 10).is_empty());
            match s.complete("m1", Outcome::Status(500), now) {
                Completion::Retry { after, next_attempt } => {
                    assert_eq!(after, POLICY.backoff(attempt));
                    assert_eq!(next_attempt, attempt + 1);
                    assert_eq!(s.next_due(), Some(now + after));
                    assert!(s.take_due(now + after - Duration::from_millis(1), 10).is_empty());
                    now += after;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(ids(&s.take_due(now, 10)), [("m1", 5)]);
        assert_eq!(
            s.complete("m1", Outcome::NoAnswer, now),
            Completion::DeadLetter {
                ack_id: "ack-m1".into(),
                attempts: 5,
                message: "data-m1".into()
            }
        );
        assert!(s.is_empty());
        assert_eq!(s.complete("m1", Outcome::Status(200), now), Completion::Unknown);
    }

    #[test]
    fn a_redelivered_message_keeps_its_attempts_and_takes_the_new_ack_id() {
        let mut s = Scheduler::new(POLICY, false);
        let now = Instant::now();
        s.offer(held("m1", None), now);
        s.take_due(now, 10);
        let mut again = held("m1", None);
        again.ack_id = "ack-m1-second".into();
        assert!(!s.offer(again, now));
        assert_eq!(s.ack_ids(), ["ack-m1-second"]);
        assert!(matches!(
            s.complete("m1", Outcome::Status(500), now),
            Completion::Retry { next_attempt: 2, .. }
        ));
        assert_eq!(
            s.complete("m1", Outcome::Status(200), now),
            Completion::Unknown,
            "not in flight"
        );
        let d = s.take_due(now + Duration::from_secs(10), 10);
        assert_eq!(ids(&d), [("m1", 2)]);
        assert_eq!(
            s.complete("m1", Outcome::Status(200), now),
            Completion::Ack { ack_id: "ack-m1-second".into() }
        );
    }

    #[test]
    fn one_outstanding_message_per_ordering_key() {
        let mut s = Scheduler::new(POLICY, true);
        let now = Instant::now();
        for (id, key) in [
            ("a1", Some("a")),
            ("b1", Some("b")),
            ("a2", Some("a")),
            ("u1", None),
            ("a3", Some("a")),
        ] {
            s.offer(held(id, key), now);
        }
        // Heads of each key plus unkeyed messages go; a2 and a3 wait for a1.
        assert_eq!(ids(&s.take_due(now, 10)), [("a1", 1), ("b1", 1), ("u1", 1)]);
        // a1 fails: a2 stays behind it during the backoff.
        assert!(matches!(s.complete("a1", Outcome::Status(500), now), Completion::Retry { .. }));
        assert!(s.take_due(now, 10).is_empty());
        assert_eq!(s.next_due(), Some(now + Duration::from_secs(10)));
        let later = now + Duration::from_secs(10);
        assert_eq!(ids(&s.take_due(later, 10)), [("a1", 2)]);
        assert!(matches!(s.complete("a1", Outcome::Status(200), later), Completion::Ack { .. }));
        assert_eq!(ids(&s.take_due(later, 10)), [("a2", 1)]);
        assert!(matches!(s.complete("a2", Outcome::Status(204), later), Completion::Ack { .. }));
        assert_eq!(ids(&s.take_due(later, 10)), [("a3", 1)]);
    }

    #[test]
    fn ordering_keys_are_ignored_without_message_ordering_and_limits_apply() {
        let mut s = Scheduler::new(POLICY, false);
        let now = Instant::now();
        for id in ["a1", "a2", "a3"] {
            s.offer(held(id, Some("a")), now);
        }
        assert_eq!(ids(&s.take_due(now, 2)), [("a1", 1), ("a2", 1)]);
        assert_eq!(ids(&s.take_due(now, 2)), [("a3", 1)]);
    }

    #[test]
    fn dead_lettering_the_head_of_a_key_releases_the_next() {
        let policy = RetryPolicy { max_delivery_attempts: 1, ..POLICY };
        let mut s = Scheduler::new(policy, true);
        let now = Instant::now();
        s.offer(held("k1", Some("k")), now);
        s.offer(held("k2", Some("k")), now);
        assert_eq!(ids(&s.take_due(now, 10)), [("k1", 1)]);
        assert!(matches!(
            s.complete("k1", Outcome::Status(400), now),
            Completion::DeadLetter { attempts: 1, .. }
        ));
        assert_eq!(ids(&s.take_due(now, 10)), [("k2", 1)]);
    }
}
