//! Retry backoff policies (bounded, jittered). Owned by the store work.
