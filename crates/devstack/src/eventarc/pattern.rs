//! Eventarc document path patterns (`posts/{postId}`, `candles/{i}/{g}/data/{ts}`) and the
//! routing of a document change to the event types a trigger asked for. Pure.
//!
//! Supported locally: literal segments and single-segment wildcards `{name}`, on a document
//! path (an even number of segments). The bridge listens to the collection group of the last
//! collection id, or, when that segment is a wildcard (`candles/{instrument}/{granularity}/{ts}`),
//! to every document of the database. Anything else (`{name=**}`, partial-segment wildcards) is
//! refused at start-up with a message that names the pattern, rather than silently never firing.

use std::collections::BTreeMap;
use std::fmt;

use gcp::eventarc::{FirestoreEventKind, FirestoreEventType};

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Wildcard(String),
}

/// A parsed document path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentPattern {
    raw: String,
    segments: Vec<Segment>,
}

/// Why a pattern cannot be served by the local bridge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("document pattern `{0}` is empty or has an empty segment")]
    Empty(String),
    #[error(
        "document pattern `{0}` names a collection, not a document (it needs an even number of segments)"
    )]
    NotADocument(String),
    #[error(
        "document pattern `{0}`: only whole-segment wildcards like `{{postId}}` are supported locally"
    )]
    UnsupportedWildcard(String),
}

impl DocumentPattern {
    /// Parses and checks a pattern.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let trimmed = raw.trim_matches('/');
        if trimmed.is_empty() {
            return Err(PatternError::Empty(raw.to_owned()));
        }
        let mut segments = Vec::new();
        for part in trimmed.split('/') {
            if part.is_empty() {
                return Err(PatternError::Empty(raw.to_owned()));
            }
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => {
                    let ok = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        return Err(PatternError::UnsupportedWildcard(raw.to_owned()));
                    }
                    Segment::Wildcard(name.to_owned())
                }
                None if part.contains(['{', '}', '*']) => {
                    return Err(PatternError::UnsupportedWildcard(raw.to_owned()));
                }
                None => Segment::Literal(part.to_owned()),
            };
            segments.push(segment);
        }
        if segments.len() % 2 != 0 {
            return Err(PatternError::NotADocument(raw.to_owned()));
        }
        Ok(Self { raw: raw.to_owned(), segments })
    }

    /// The collection id the bridge listens to (as a collection group); empty when the last
    /// collection id is a wildcard, meaning every document.
    pub fn collection_group(&self) -> &str {
        match &self.segments[self.segments.len() - 2] {
            Segment::Literal(id) => id,
            Segment::Wildcard(_) => "",
        }
    }

    /// The wildcard values when `path` (relative, `posts/p1`) matches.
    pub fn captures(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut captures = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Wildcard(name) => {
                    captures.insert(name.clone(), part.to_owned());
                }
            }
        }
        Some(captures)
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        self.captures(path).is_some()
    }

    /// A short name for the watched documents: the last literal segment.
    pub fn label(&self) -> &str {
        self.segments
            .iter()
            .rev()
            .find_map(|s| if let Segment::Literal(l) = s { Some(l.as_str()) } else { None })
            .unwrap_or("documents")
    }

    /// A concrete path for samples: each wildcard replaced by `sample-<name>`.
    pub fn sample_path(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Wildcard(name) => format!("sample-{}", name.to_ascii_lowercase()),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for DocumentPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether a trigger for `wanted` fires on a change of kind `happened` (a `written` trigger
/// fires on all three).
pub fn fires(wanted: FirestoreEventType, happened: FirestoreEventKind) -> bool {
    wanted.kind == happened || wanted.kind == FirestoreEventKind::Written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_only() {
        let p = DocumentPattern::parse("posts/{postId}").unwrap();
        assert_eq!(p.collection_group(), "posts");
        assert_eq!(p.captures("posts/p1").unwrap()["postId"], "p1");
        assert!(!p.matches("posts"));
        assert!(!p.matches("posts/p1/comments/c1"));
        assert!(!p.matches("users/p1"));
        let deep = DocumentPattern::parse("tenants/{t}/users/{uid}").unwrap();
        assert_eq!(deep.collection_group(), "users");
        let c = deep.captures("tenants/acme/users/u1").unwrap();
        assert_eq!((c["t"].as_str(), c["uid"].as_str()), ("acme", "u1"));
        assert!(!deep.matches("tenants/acme/other/u1"));
        let any = DocumentPattern::parse("candles/{instrument}/{granularity}/{ts}").unwrap();
        assert_eq!(any.collection_group(), "", "a wildcard collection listens to everything");
        assert_eq!(any.label(), "candles");
        assert!(any.matches("candles/EURUSD/M1/1700000000"));
        assert!(!any.matches("posts/EURUSD/M1/1700000000"));
        assert_eq!(any.sample_path(), "candles/sample-instrument/sample-granularity/sample-ts");
        assert!(DocumentPattern::parse("config/signup").unwrap().matches("config/signup"));
    }

    #[test]
    fn unsupported_patterns_are_refused_with_the_reason() {
        assert!(matches!(DocumentPattern::parse(""), Err(PatternError::Empty(_))));
        assert!(matches!(DocumentPattern::parse("a//b"), Err(PatternError::Empty(_))));
        assert!(matches!(DocumentPattern::parse("posts"), Err(PatternError::NotADocument(_))));
        assert!(matches!(
            DocumentPattern::parse("posts/{id=**}"),
            Err(PatternError::UnsupportedWildcard(_))
        ));
        assert!(matches!(
            DocumentPattern::parse("posts/p-{id}"),
            Err(PatternError::UnsupportedWildcard(_))
        ));
        assert!(matches!(DocumentPattern::parse("{c}/{id}/x"), Err(PatternError::NotADocument(_))));
    }

    #[test]
    fn written_triggers_fire_on_every_kind() {
        use FirestoreEventKind::*;
        let t = |k| FirestoreEventType::new(k);
        assert!(fires(t(Created), Created));
        assert!(!fires(t(Created), Updated));
        assert!(!fires(t(Deleted), Created));
        for k in [Created, Updated, Deleted] {
            assert!(fires(t(Written), k));
        }
    }
}
