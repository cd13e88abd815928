//! Lock paths: absolute, `/`-separated, segments of `[A-Za-z0-9._-]`, no empty segment,
//! no trailing `/`, bounded in bytes and segments. A [`LockPath`] is valid by
//! construction, so the state machine never sees a malformed one.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The configurable bounds on a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRules {
    pub bytes_max: usize,
    pub segments_max: usize,
}

impl PathRules {
    /// The bounds of `docs/semantics.md` (Paths): 512 bytes, 32 segments.
    pub const DEFAULT: PathRules = PathRules { bytes_max: 512, segments_max: 32 };
    /// No configuration may allow more than this; decoding a log entry or a snapshot
    /// checks against it, since those were validated against the configuration once.
    pub const CEILING: PathRules = PathRules { bytes_max: 4096, segments_max: 256 };
}

impl Default for PathRules {
    fn default() -> Self {
        PathRules::DEFAULT
    }
}

/// The rule a rejected path broke. The `Display` text names it for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("invalid path: it is empty; a lock path looks like /service/resource")]
    Empty,
    #[error("invalid path {path:?}: it must be absolute (start with '/')")]
    NotAbsolute { path: String },
    #[error("invalid path {path:?}: it must not end with '/'")]
    TrailingSlash { path: String },
    #[error("invalid path {path:?}: empty segment (\"//\") at byte {offset}")]
    EmptySegment { path: String, offset: usize },
    #[error(
        "invalid path {path:?}: character {ch:?} at byte {offset} is not allowed; \
         segments may contain only A-Z a-z 0-9 . _ -"
    )]
    InvalidChar { path: String, ch: char, offset: usize },
    #[error("invalid path: it is {len} bytes long; the limit is {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error("invalid path: it has {count} segments; the limit is {max} segments")]
    TooManySegments { count: usize, max: usize },
}

/// A validated lock path. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockPath(Arc<str>);

impl LockPath {
    /// Validates `path` against `rules`.
    pub fn parse(path: &str, rules: PathRules) -> Result<LockPath, PathError> {
        check(path, rules)?;
        Ok(LockPath(Arc::from(path)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path equals `prefix` or lies below it, on a segment boundary
    /// (`/db` covers `/db` and `/db/users`, not `/dbx`). `""` and `"/"` cover everything.
    pub fn is_under(&self, prefix: &str) -> bool {
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        let path = self.as_str();
        path == prefix
            || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

/// Checks a watch or list prefix: empty, `/`, or a valid path.
pub fn check_prefix(prefix: &str, rules: PathRules) -> Result<(), PathError> {
    if prefix.is_empty() || prefix == "/" {
        return Ok(());
    }
    check(prefix, rules)
}

fn check(path: &str, rules: PathRules) -> Result<(), PathError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > rules.bytes_max {
        return Err(PathError::TooLong { len: path.len(), max: rules.bytes_max });
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute { path: owned() });
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Err(PathError::TrailingSlash { path: owned() });
    }
    let mut count = 0;
    let mut offset = 1;
    for segment in rest.split('/') {
        count += 1;
        if segment.is_empty() {
            return Err(PathError::EmptySegment { path: owned(), offset });
        }
        if let Some((at, ch)) = segment.char_indices().find(|(_, ch)| !allowed(*ch)) {
            return Err(PathError::InvalidChar { path: owned(), ch, offset: offset + at });
        }
        offset += segment.len() + 1;
    }
    if count > rules.segments_max {
        return Err(PathError::TooManySegments { count, max: rules.segments_max });
    }
    Ok(())
}

fn allowed(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')
}

impl fmt::Display for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

// Ordering, equality and hashing are the string's, so maps keyed by paths can be
// searched with a `&str`.
impl std::borrow::Borrow<str> for LockPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LockPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for LockPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LockPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let path = String::deserialize(deserializer)?;
        LockPath::parse(&path, PathRules::CEILING).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Result<LockPath, PathError> {
        LockPath::parse(path, PathRules::DEFAULT)
    }

    #[test]
    fn accepts_well_formed_paths() {
        for path in ["/a", "/db/users/schema-migration", "/A.b_c-9/x", "/.."] {
            assert_eq!(parse(path).unwrap().as_str(), path);
        }
    }

    #[test]
    fn names_the_rule_each_bad_path_breaks() {
        assert_eq!(parse(""), Err(PathError::Empty));
        assert!(matches!(parse("db/x"), Err(PathError::NotAbsolute { .. })));
        assert!(matches!(parse("/"), Err(PathError::TrailingSlash { .. })));
        assert!(matches!(parse("/db/"), Err(PathError::TrailingSlash { .. })));
        assert_eq!(
            parse("/db//x"),
            Err(PathError::EmptySegment { path: "/db//x".into(), offset: 4 })
        );
        assert_eq!(
            parse("/db/us er"),
            Err(PathError::InvalidChar { path: "/db/us er".into(), ch: ' ', offset: 6 })
        );
        assert!(matches!(parse("/é"), Err(PathError::InvalidChar { ch: 'é', .. })));
        let long = format!("/{}", "a".repeat(512));
        assert_eq!(parse(&long), Err(PathError::TooLong { len: 513, max: 512 }));
        let deep = "/a".repeat(33);
        assert_eq!(parse(&deep), Err(PathError::TooManySegments { count: 33, max: 32 }));
        assert!(parse(&"/a".repeat(32)).is_ok());
        let message = parse("/db/us er").unwrap_err().to_string();
        assert!(message.contains("A-Z a-z 0-9 . _ -"), "{message}");
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let path = parse("/db/users").unwrap();
        assert!(path.is_under(""));
        assert!(path.is_under("/"));
        assert!(path.is_under("/db"));
        assert!(path.is_under("/db/"));
        assert!(path.is_under("/db/users"));
        assert!(!path.is_under("/d"));
        assert!(!path.is_under("/db/users/x"));
        assert!(check_prefix("/", PathRules::DEFAULT).is_ok());
        assert!(check_prefix("/db//", PathRules::DEFAULT).is_err());
    }

    #[test]
    fn decoding_revalidates() {
        let bytes = postcard::to_stdvec(&"not/absolute").unwrap();
        assert!(postcard::from_bytes::<LockPath>(&bytes).is_err());
        let bytes = postcard::to_stdvec(&"/ok").unwrap();
        assert_eq!(postcard::from_bytes::<LockPath>(&bytes).unwrap().as_str(), "/ok");
    }
}
