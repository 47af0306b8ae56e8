//! A small per-instance cache with a time to live, for answers that may be a little stale
//! (trending posts, stories): a warm instance serves them from memory instead of Firestore.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries older than the TTL are misses; past `capacity` entries the cache starts over.
#[derive(Debug, Clone)]
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Arc<Mutex<HashMap<K, (Instant, V)>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity: capacity.max(1), entries: Arc::default() }
    }

    /// The cached value of `key`, if fresh.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock();
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    /// Forgets `key` (after a change this instance made).
    pub(crate) fn remove(&self, key: &K) {
        self.entries.lock().remove(key);
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.remove(&"a");
        assert_eq!(cache.get(&"a"), None);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        assert!(cache.entries.lock().len() <= 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"c"), None);
        let off = TtlCache::new(Duration::ZERO, 2);
        off.insert("a", 1);
        assert_eq!(off.get(&"a"), None);
    }
}
