//! Calling a provider: per-request timeouts, retries with jittered exponential backoff on
//! transient failures (network errors, timeouts, 429 and 5xx; never on other 4xx), and a
//! circuit breaker per provider so a provider that is down is not hammered and callers fail
//! fast.
//!
//! Circuit breaker (pure state, the clock is passed in):
//!
//! ```text
//! closed  --(failure_threshold consecutive failures)--> open
//! open    --(open_for elapsed)--> half-open: ONE trial call is let through
//! half-open trial succeeds --> closed        trial fails --> open again
//! ```
//! A 4xx answer is a success for the breaker: the provider is up and said no.
//!
//! Each time the circuit opens, one WARNING line is logged with the message
//! [`CIRCUIT_OPENED_MESSAGE`] and the fields `provider` and `open_for_secs`; the alert policy in
//! `infra/monitoring.tf` counts these lines (a log-based metric), so the message is stable.

use std::time::{Duration, Instant};

use domain::backoff::Backoff;
use parking_lot::Mutex;
use std::sync::Arc;

/// The message of the log line written when a provider's circuit opens. `infra/monitoring.tf`
/// filters on it: change both together.
pub const CIRCUIT_OPENED_MESSAGE: &str = "provider circuit breaker opened";

/// Why a provider call failed. The messages are safe to show to operators, not to buyers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider's circuit is open: it failed repeatedly, calls are refused for a while.
    #[error("{provider} is unavailable (circuit open)")]
    CircuitOpen {
        /// `stripe` / `pesapal`.
        provider: &'static str,
    },
    /// Transient failures until the retry budget ran out.
    #[error("{provider} did not answer successfully after {attempts} attempts: {last}")]
    Unavailable {
        /// `stripe` / `pesapal`.
        provider: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The provider refused the request (4xx other than 429): retrying cannot help.
    #[error("{provider} refused the request ({status}): {message}")]
    Rejected {
        /// `stripe` / `pesapal`.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider answered something we cannot read.
    #[error("{provider} answered unexpectedly: {message}")]
    Invalid {
        /// `stripe` / `pesapal`.
        provider: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl ProviderError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::CircuitOpen { .. } | Self::Unavailable { .. })
    }
}

impl domain::status::Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        ProviderError::is_retryable(self)
    }
}

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed calls (after their retries) that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a trial call.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: Duration::from_secs(30) }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When a trial may go.
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// A circuit breaker.
#[derive(Debug, Clone, Copy)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: BreakerState,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: BreakerState::Closed { failures: 0 } }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Whether a call may go now (moves open -> half-open when the wait is over).
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    /// Records a call's outcome. Returns whether this outcome opened the circuit (closed or
    /// half-open before, open now).
    pub fn record(&mut self, success: bool, now: Instant) -> bool {
        let was_open = matches!(self.state, BreakerState::Open { .. });
        self.state = match (self.state, success) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false)
                if failures + 1 < self.policy.failure_threshold =>
            {
                BreakerState::Closed { failures: failures + 1 }
            }
            (_, false) => BreakerState::Open { until: now + self.policy.open_for },
        };
        !was_open && matches!(self.state, BreakerState::Open { .. })
    }
}

/// How to call one provider.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: Backoff,
    /// The breaker.
    pub breaker: BreakerPolicy,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            retry: Backoff {
                initial: Duration::from_millis(200),
                multiplier: 2.0,
                max: Duration::from_secs(2),
                max_attempts: 3,
                jitter_fraction: 0.5,
            },
            breaker: BreakerPolicy::default(),
        }
    }
}

/// An HTTP client for one provider, with its breaker (shared by clones).
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    provider: &'static str,
    client: reqwest::Client,
    policy: CallPolicy,
    breaker: Arc<Mutex<Breaker>>,
}

impl ProviderHttp {
    /// A client for `provider` (`stripe` / `pesapal`).
    pub fn new(provider: &'static str, policy: CallPolicy) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(policy.request_timeout.min(Duration::from_secs(5)))
            .no_proxy()
            .build()
            .map_err(|e| ProviderError::Invalid { provider, message: e.to_string() })?;
        Ok(Self {
            provider,
            client,
            policy,
            breaker: Arc::new(Mutex::new(Breaker::new(policy.breaker))),
        })
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.lock().state()
    }

    /// The underlying client (to build requests).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes (called once per attempt), retrying transient failures,
    /// and returns the body of a 2xx answer.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<bytes_body::Body, ProviderError> {
        if !self.breaker.lock().admit(Instant::now()) {
            return Err(ProviderError::CircuitOpen { provider: self.provider });
        }
        let retry = self.policy.retry;
        let mut attempt = 0u32;
        let outcome = loop {
            attempt += 1;
            let last = match build(&self.client).send().await {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        break Ok(bytes_body::Body(text));
                    }
                    if status.is_client_error() && status.as_u16() != 429 {
                        break Err(ProviderError::Rejected {
                            provider: self.provider,
                            status: status.as_u16(),
                            message: text.chars().take(300).collect(),
                        });
                    }
                    format!("HTTP {status}")
                }
                Err(error) if error.is_timeout() => "timed out".to_owned(),
                Err(error) => format!("request failed: {error}"),
            };
            if !retry.should_retry(attempt) {
                break Err(ProviderError::Unavailable {
                    provider: self.provider,
                    attempts: attempt,
                    last,
                });
            }
            let delay = retry.delay(attempt, rand::random());
            tracing::debug!(provider = self.provider, attempt, ?delay, %last, "provider call failed; retrying");
            tokio::time::sleep(delay).await;
        };
        let healthy = !matches!(outcome, Err(ProviderError::Unavailable { .. }));
        let opened = self.breaker.lock().record(healthy, Instant::now());
        if opened {
            tracing::warn!(
                provider = self.provider,
                open_for_secs = self.policy.breaker.open_for.as_secs(),
                "{CIRCUIT_OPENED_MESSAGE}"
            );
        }
        outcome
    }
}

/// The body of a successful answer.
pub mod bytes_body {
    /// Response text of a 2xx answer.
    #[derive(Debug, Clone)]
    pub struct Body(pub String);

    impl Body {
        /// Parses it as JSON.
        pub fn json<T: serde::de::DeserializeOwned>(
            &self,
            provider: &'static str,
        ) -> Result<T, super::ProviderError> {
            serde_json::from_str(&self.0)
                .map_err(|e| super::ProviderError::Invalid { provider, message: e.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_the_threshold_and_lets_one_trial_through() {
        let policy = BreakerPolicy { failure_threshold: 3, open_for: Duration::from_secs(10) };
        let mut b = Breaker::new(policy);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.admit(t0));
            b.record(false, t0);
        }
        assert!(matches!(b.state(), BreakerState::Closed { failures: 2 }));
        b.record(false, t0);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(!b.admit(t0 + Duration::from_secs(9)));
        assert!(b.admit(t0 + Duration::from_secs(10)));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.admit(t0 + Duration::from_secs(10)), "one trial at a time");
        b.record(false, t0 + Duration::from_secs(10));
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.admit(t0 + Duration::from_secs(20)));
        b.record(true, t0 + Duration::from_secs(20));
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b =
            Breaker::new(BreakerPolicy { failure_threshold: 2, open_for: Duration::from_secs(1) });
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(true, t0);
        b.record(false, t0);
        assert!(matches!(b.state(), BreakerState::Closed { failures: 1 }));
    }

    #[test]
    fn record_says_when_the_circuit_opens_and_only_then() {
        let mut b =
            Breaker::new(BreakerPolicy { failure_threshold: 2, open_for: Duration::from_secs(5) });
        let t0 = Instant::now();
        assert!(!b.record(false, t0), "one failure: still closed");
        assert!(b.record(false, t0), "threshold reached: opened");
        assert!(!b.record(false, t0), "already open: not opened again");
        let later = t0 + Duration::from_secs(5);
        assert!(b.admit(later));
        assert!(b.record(false, later), "the half-open trial failed: opened again");
        let again = later + Duration::from_secs(5);
        assert!(b.admit(again));
        assert!(!b.record(true, again), "the trial succeeded: closed");
    }

    #[test]
    fn the_logged_message_is_the_one_monitoring_counts() {
        let monitoring = include_str!("../../../infra/locals.tf");
        let line = monitoring
            .lines()
            .find(|l| l.trim_start().starts_with("circuit_breaker_log_message"))
            .expect("infra/locals.tf defines circuit_breaker_log_message");
        assert!(
            line.ends_with(&format!("\"{CIRCUIT_OPENED_MESSAGE}\"")),
            "infra/locals.tf must filter on the message crates/providers logs: {line}"
        );
    }
}
