//! Eventarc document path patterns (`posts/{postId}`, `candles/{i}/{g}/data/{ts}`) and the
//! routing of a document change to the event types a trigger asked for. Pure.
//!
//! Supported locally: literal segments and single-segment wildcards `{name}`, on a document
//! path (an even number of segments). [`DocumentPattern::scope`] says which documents the
//! bridge watches for a pattern: as few as the pattern allows, so that its cost does not grow
//! with unrelated documents (the feed entries `feeds/{uid}/posts/{postId}` share the collection
//! id of `posts/{postId}`). Anything else (`{name=**}`, partial-segment wildcards) is refused at
//! start-up with a message that names the pattern, rather than silently never firing.

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

/// The documents the bridge watches for a pattern: a superset of the pattern's matches, as
/// small as Firestore's queries allow. Paths are relative to the database's documents root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// One collection: every segment before the last collection id is literal
    /// (`posts/{postId}` watches `posts`; `users/u1/settings/{id}` watches `users/u1/settings`).
    /// Writes anywhere else never reach the target.
    Collection {
        /// The document the collection hangs under; empty for a top-level collection.
        parent: String,
        collection: String,
    },
    /// Every collection named `collection` below `parent` (a collection-group query), when a
    /// wildcard precedes it (`tenants/{t}/users/{uid}`), narrowed to the names under `prefix`.
    Group { parent: String, collection: String, prefix: Option<String> },
    /// Every document below `parent`, narrowed to the names under `prefix`, when the last
    /// collection id is a wildcard (`candles/{instrument}/{granularity}/{ts}`). The emulator
    /// does not update such listen targets, so these are polled.
    Everything { parent: String, prefix: Option<String> },
}

impl Scope {
    /// The relative path of the query's parent (empty: the documents root).
    pub fn parent(&self) -> &str {
        match self {
            Scope::Collection { parent, .. }
            | Scope::Group { parent, .. }
            | Scope::Everything { parent, .. } => parent,
        }
    }

    /// The document-name range `[low, high)` (relative paths) that holds exactly the documents
    /// below `prefix`, a collection path: from its least possible document id (`\u{0}`) to the
    /// least document of the next collection id (`prefix` + `\u{0}`). Both ends name documents
    /// (Firestore compares references, which must), and the range is exact because references
    /// are ordered segment by segment, whatever the encoding of the ids.
    pub fn name_range(&self) -> Option<(String, String)> {
        let prefix = match self {
            Scope::Collection { .. } => return None,
            Scope::Group { prefix, .. } | Scope::Everything { prefix, .. } => prefix.as_ref()?,
        };
        Some((format!("{prefix}/\u{0}"), format!("{prefix}\u{0}/\u{0}")))
    }
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

    /// The documents the bridge watches for this pattern (see [`Scope`]).
    pub fn scope(&self) -> Scope {
        // The literal segments before the first wildcard.
        let literal: Vec<&str> = self
            .segments
            .iter()
            .map_while(|s| if let Segment::Literal(l) = s { Some(l.as_str()) } else { None })
            .collect();
        let last_collection = self.segments.len() - 2;
        // The deepest literal document: the narrowest parent a query can have.
        let parent_len = (literal.len() / 2 * 2).min(last_collection);
        let parent = literal[..parent_len].join("/");
        // A literal collection id below that parent narrows the names further.
        let prefix = (literal.len() > parent_len).then(|| literal[..=parent_len].join("/"));
        match &self.segments[last_collection] {
            Segment::Literal(id) if literal.len() > last_collection => {
                Scope::Collection { parent, collection: id.clone() }
            }
            Segment::Literal(id) => Scope::Group { parent, collection: id.clone(), prefix },
            Segment::Wildcard(_) => Scope::Everything { parent, prefix },
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
        assert_eq!(p.captures("posts/p1").unwrap()["postId"], "p1");
        assert!(!p.matches("posts"));
        assert!(!p.matches("posts/p1/comments/c1"));
        assert!(!p.matches("users/p1"));
        let deep = DocumentPattern::parse("tenants/{t}/users/{uid}").unwrap();
        let c = deep.captures("tenants/acme/users/u1").unwrap();
        assert_eq!((c["t"].as_str(), c["uid"].as_str()), ("acme", "u1"));
        assert!(!deep.matches("tenants/acme/other/u1"));
        let any = DocumentPattern::parse("candles/{instrument}/{granularity}/{ts}").unwrap();
        assert_eq!(any.label(), "candles");
        assert!(any.matches("candles/EURUSD/M1/1700000000"));
        assert!(!any.matches("posts/EURUSD/M1/1700000000"));
        assert_eq!(any.sample_path(), "candles/sample-instrument/sample-granularity/sample-ts");
        assert!(DocumentPattern::parse("config/signup").unwrap().matches("config/signup"));
    }

    fn scope(pattern: &str) -> Scope {
        DocumentPattern::parse(pattern).unwrap().scope()
    }

    #[test]
    fn each_pattern_watches_as_few_documents_as_a_query_allows() {
        let collection = |parent: &str, collection: &str| Scope::Collection {
            parent: parent.into(),
            collection: collection.into(),
        };
        // The feed entries feeds/{uid}/posts/{postId} are outside posts/{postId}'s scope.
        assert_eq!(scope("posts/{postId}"), collection("", "posts"));
        assert_eq!(scope("config/signup"), collection("", "config"));
        assert_eq!(scope("users/u1/settings/{id}"), collection("users/u1", "settings"));
        assert_eq!(scope("users/u1/settings/s1"), collection("users/u1", "settings"));
        assert_eq!(
            scope("tenants/{t}/users/{uid}"),
            Scope::Group {
                parent: String::new(),
                collection: "users".into(),
                prefix: Some("tenants".into())
            }
        );
        assert_eq!(
            scope("a/b/c/{x}/d/{y}"),
            Scope::Group {
                parent: "a/b".into(),
                collection: "d".into(),
                prefix: Some("a/b/c".into())
            }
        );
        assert_eq!(
            scope("a/b/{c}/x/d/{y}"),
            Scope::Group { parent: "a/b".into(), collection: "d".into(), prefix: None }
        );
        assert_eq!(
            scope("{c}/{id}/users/{uid}"),
            Scope::Group { parent: String::new(), collection: "users".into(), prefix: None }
        );
        assert_eq!(
            scope("candles/{instrument}/{granularity}/{ts}"),
            Scope::Everything { parent: String::new(), prefix: Some("candles".into()) }
        );
        assert_eq!(scope("a/b/{c}/{id}"), Scope::Everything { parent: "a/b".into(), prefix: None });
        assert_eq!(scope("{c}/{id}"), Scope::Everything { parent: String::new(), prefix: None });
    }

    #[test]
    fn a_name_range_holds_the_prefix_and_nothing_beside_it() {
        let group = scope("tenants/{t}/users/{uid}");
        let (low, high) = group.name_range().unwrap();
        assert_eq!((low.as_str(), high.as_str()), ("tenants/\u{0}", "tenants\u{0}/\u{0}"));
        // References are ordered segment by segment.
        let segments = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
        let within =
            |name: &str| segments(&low) <= segments(name) && segments(name) < segments(&high);
        for name in [
            "tenants/acme/users/u1",
            "tenants/\u{0}/users/u",
            "tenants/\u{10FFFF}/users/u",
            "tenants/\u{FFFF}/users/u",
        ] {
            assert!(within(name), "{name}");
        }
        for name in [
            "tenant/a/users/u",
            "tenants0/a/users/u",
            "tenants-b/a/users/u",
            "tenants\u{0}/a/users/u",
            "users/u1",
            "a/b/tenants/c/users/u",
        ] {
            assert!(!within(name), "{name}");
        }
        assert_eq!(scope("posts/{postId}").name_range(), None);
        assert_eq!(scope("{c}/{id}").name_range(), None);
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
