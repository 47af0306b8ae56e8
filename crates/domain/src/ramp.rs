//! Bulk-write ramp policy (500/50/5). Owned by the store work.
