//! `Headers`: call metadata as every transport carries it — an ordered list of (key, value)
//! pairs with lower-case keys. Keys ending in `-bin` hold arbitrary bytes; other values are
//! expected to be visible ASCII (gRPC enforces that; UCX carries any bytes).

use bytes::Bytes;

/// Ordered, multi-valued call metadata with lower-case keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Bytes)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Appends a value (the key is lower-cased). Existing values of the key are kept.
    pub fn append(&mut self, key: impl AsRef<str>, value: impl Into<Bytes>) {
        self.entries
            .push((key.as_ref().to_ascii_lowercase(), value.into()));
    }

    /// Replaces all values of the key with this one.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<Bytes>) {
        let key = key.as_ref().to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, value.into()));
    }

    /// Builder form of [`Headers::append`].
    pub fn with(mut self, key: impl AsRef<str>, value: impl Into<Bytes>) -> Self {
        self.append(key, value);
        self
    }

    /// The first value of the key (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// The first value of the key as UTF-8 text, if it is text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the key, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Removes every value of the key; returns whether any was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        before != self.entries.len()
    }

    /// Appends every entry of `other`.
    pub fn extend(&mut self, other: Headers) {
        self.entries.extend(other.entries);
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True for keys whose values are binary (`-bin` suffix, the gRPC convention).
    pub fn is_binary_key(key: &str) -> bool {
        key.ends_with("-bin")
    }
}

impl<K: AsRef<str>, V: Into<Bytes>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (k, v) in iter {
            headers.append(k, v);
        }
        headers
    }
}

impl IntoIterator for Headers {
    type Item = (String, Bytes);
    type IntoIter = std::vec::IntoIter<(String, Bytes)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_ordered() {
        let mut h = Headers::new();
        h.append("X-Foo", "a");
        h.append("x-foo", "b");
        h.append("auth-token-bin", &b"\x00\x01"[..]);
        assert_eq!(h.get_str("x-FOO"), Some("a"));
        assert_eq!(h.get_all("x-foo").count(), 2);
        h.insert("x-foo", "c");
        assert_eq!(h.get_all("x-foo").collect::<Vec<_>>(), vec!["c"]);
        assert!(Headers::is_binary_key("auth-token-bin"));
        assert!(h.remove("auth-token-bin"));
        assert_eq!(h.len(), 1);
    }
}
