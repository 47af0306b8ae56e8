//! Typed Pub/Sub messages: one type per topic. Owned by the bus work.
