//! The market-data stream, as pure rules: what a valid candle is ([`candle`]), the features and
//! triple-barrier labels derived from a stream's stored candles ([`features`]), which stored
//! results a new, corrected or late candle changes ([`window`]), the priority budgets of the
//! streams ([`flow`]), and when a stream is silent ([`health`]).
//!
//! Everything derived is a function of the stored set of complete candles of a stream, never of
//! the order they arrived in: a late candle or a correction recomputes the bounded range of
//! results that depend on it ([`window::recompute`]), so out-of-order arrival ends in the same
//! stored results as in-order arrival.

pub mod candle;
pub mod features;
pub mod flow;
pub mod health;
pub mod window;

pub use candle::{Candle, CandleError, Granularity, StreamKey};
pub use features::{Derived, FeaturePolicy, Label, LabelBarrier};
pub use flow::{Admission, Budgets, FlowControl, Priority, TokenBucket};
pub use health::{HealthFacts, StreamStatus, Transition};
