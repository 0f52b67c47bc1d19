//! [`Value`], the FFI-safe JSON-like value, and [`ValueMap`], its insertion-ordered map.

use std::fmt;

use abi_stable::{
    std_types::{RString, RVec, Tuple2},
    StableAbi,
};

use crate::owner::BufferOwner;

/// The kind of a [`Value`], used in error messages and for dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// [`Value::Null`]
    Null,
    /// [`Value::Bool`]
    Bool,
    /// [`Value::Int`]
    Int,
    /// [`Value::Float`]
    Float,
    /// [`Value::Str`]
    Str,
    /// [`Value::Bytes`]
    Bytes,
    /// [`Value::List`]
    List,
    /// [`Value::Map`]
    Map,
}

impl ValueKind {
    /// The kind's name with its article: "an int", "a string".
    pub fn with_article(self) -> String {
        let name = self.to_string();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {name}")
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Null => "null",
            ValueKind::Bool => "bool",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Str => "string",
            ValueKind::Bytes => "bytes",
            ValueKind::List => "list",
            ValueKind::Map => "map",
        })
    }
}

/// A JSON-like value that can cross the plugin boundary.
///
/// It is `#[repr(C, u8)]` and derives [`StableAbi`], so its layout is checked when a plugin
/// is loaded. Adding a variant changes the layout: that is an ABI break (see the crate docs).
///
/// ```
/// use plg_api::{Value, ValueMap};
///
/// let v = Value::from("hi");
/// assert_eq!(v.as_str(), Some("hi"));
/// let n: i64 = Value::from(5).try_into().unwrap();
/// assert_eq!(n, 5);
/// let m: Value = [("a", Value::from(1))].into_iter().collect::<ValueMap>().into();
/// assert_eq!(m.kind(), plg_api::ValueKind::Map);
/// ```
#[repr(C, u8)]
#[derive(StableAbi, Clone, Debug, Default)]
pub enum Value {
    /// The absence of a value (JSON `null`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(RString),
    /// Raw bytes.
    Bytes(RVec<u8>),
    /// An ordered list of values.
    List(RVec<Value>),
    /// A string-keyed map, in insertion order.
    Map(ValueMap),
}

impl Value {
    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Str(_) => ValueKind::Str,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::List(_) => ValueKind::List,
            Value::Map(_) => ValueKind::Map,
        }
    }

    /// `true` for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The boolean, if this is a [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as a float, if this is a [`Value::Float`] or a [`Value::Int`].
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The string, if this is a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The bytes, if this is a [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b.as_slice()),
            _ => None,
        }
    }

    /// The items, if this is a [`Value::List`].
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l.as_slice()),
            _ => None,
        }
    }

    /// The map, if this is a [`Value::Map`].
    pub fn as_map(&self) -> Option<&ValueMap> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Moves every heap buffer of this value into storage owned by the calling library.
    ///
    /// abi_stable's `RString`/`RVec` free their memory through a vtable that lives in the
    /// library that allocated them. A host calls this on values a plugin wrote, before the
    /// plugin may be unloaded, so that dropping them later never jumps into unmapped code.
    /// Buffers `owner` says are already the host's are left alone without a look; the rest
    /// go through abi_stable's conversion, which keeps buffers the calling library allocated
    /// itself and copies those of another library (its type identity includes the library).
    pub(crate) fn rehome<O: BufferOwner>(&mut self, owner: &O) {
        match self {
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
            Value::Str(s) => rehome_string(s, owner),
            Value::Bytes(b) => rehome_vec(b, owner),
            Value::List(items) => {
                rehome_vec(items, owner);
                items.iter_mut().for_each(|v| v.rehome(owner));
            }
            Value::Map(map) => map.rehome(owner),
        }
    }
}

/// The test inline, the conversion out of line: after most calls every buffer is the host's,
/// and the walk over a context is then a few comparisons an entry.
#[inline(always)]
pub(crate) fn rehome_string<O: BufferOwner>(s: &mut RString, owner: &O) {
    if !owner.owns_string(s) {
        convert_string(s);
    }
}

#[cold]
#[inline(never)]
fn convert_string(s: &mut RString) {
    let taken = std::mem::take(s);
    *s = RString::from(taken.into_string());
}

#[inline(always)]
pub(crate) fn rehome_vec<T, O: BufferOwner>(v: &mut RVec<T>, owner: &O) {
    if !owner.owns_vec(v) {
        convert_vec(v);
    }
}

#[cold]
#[inline(never)]
fn convert_vec<T>(v: &mut RVec<T>) {
    let taken = std::mem::take(v);
    *v = RVec::from(taken.into_vec());
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

/// A string-keyed map of [`Value`]s that keeps insertion order.
///
/// Stored as a vector of entries, which is FFI-safe and faster than hashing for the small
/// maps a plugin context usually holds. Lookups are linear; keep contexts to a few hundred
/// keys. Equality ignores order.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct ValueMap {
    entries: RVec<Tuple2<RString, Value>>,
}

impl ValueMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: RVec::with_capacity(n),
        }
    }

    #[inline]
    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| same_key(&e.0, key))
    }

    /// The value under `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|e| same_key(&e.0, key))
            .map(|e| &e.1)
    }

    /// The value under `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|e| same_key(&e.0, key))
            .map(|e| &mut e.1)
    }

    /// Sets `key` to `value`, returning the value it replaced. A replaced key keeps its place
    /// (and its string: setting a key that is present allocates nothing for the key).
    pub fn insert(
        &mut self,
        key: impl AsRef<str> + Into<String>,
        value: impl Into<Value>,
    ) -> Option<Value> {
        let value = value.into();
        match self.position(key.as_ref()) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push(Tuple2(RString::from(key.into()), value));
                None
            }
        }
    }

    /// Removes `key`, returning its value. The order of the other keys is kept.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        Some(self.entries.remove(i).1)
    }

    /// `true` if `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.0.as_str())
    }

    /// The entries, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> + '_ {
        self.entries.iter().map(|e| (e.0.as_str(), &e.1))
    }

    /// The entries with mutable values, in insertion order.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut Value)> + '_ {
        self.entries.iter_mut().map(|e| (e.0.as_str(), &mut e.1))
    }

    /// See [`Value::rehome`].
    #[inline]
    pub(crate) fn rehome<O: BufferOwner>(&mut self, owner: &O) {
        rehome_vec(&mut self.entries, owner);
        for e in self.entries.iter_mut() {
            rehome_string(&mut e.0, owner);
            // Scalars and strings, most values, without a call.
            match &mut e.1 {
                Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
                Value::Str(s) => rehome_string(s, owner),
                nested => nested.rehome(owner),
            }
        }
    }
}

/// `key == wanted`, compared inline. Keys are short, and the call to `memcmp` that `==`
/// makes for every candidate of the right length cost a lookup more than the comparison
/// itself: two overlapping loads cover any key of 4 to 16 bytes.
#[inline(always)]
fn same_key(key: &RString, wanted: &str) -> bool {
    let (a, b) = (key.as_bytes(), wanted.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn word4(s: &[u8]) -> u32 {
        u32::from_ne_bytes([s[0], s[1], s[2], s[3]])
    }
    fn word8(s: &[u8]) -> u64 {
        u64::from_ne_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
    }
    match n {
        0 => true,
        // Bytes 0, n/2 and n-1 are every byte of a key of 1 to 3 bytes.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word4(a) == word4(b) && word4(&a[n - 4..]) == word4(&b[n - 4..]),
        8..=16 => word8(a) == word8(b) && word8(&a[n - 8..]) == word8(&b[n - 8..]),
        _ => a == b,
    }
}

impl PartialEq for ValueMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for ValueMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = ValueMap::new();
        map.extend(iter);
        map
    }
}

/// Like [`ValueMap::insert`] for each entry (a repeated key replaces the earlier value in
/// its place), in time linear in the number of entries: a temporary index stands in for
/// `insert`'s linear search, so building a map of many keys is not quadratic.
impl<K: Into<String>, V: Into<Value>> Extend<(K, V)> for ValueMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let iter = iter.into_iter();
        let mut index: std::collections::HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.0.as_str().to_owned(), i))
            .collect();
        self.entries.reserve(iter.size_hint().0.min(4096));
        for (k, v) in iter {
            let (k, v) = (k.into(), v.into());
            match index.get(&k) {
                Some(&i) => self.entries[i].1 = v,
                None => {
                    index.insert(k.clone(), self.entries.len());
                    self.entries.push(Tuple2(RString::from(k), v));
                }
            }
        }
    }
}

impl IntoIterator for ValueMap {
    type Item = (String, Value);
    type IntoIter = std::iter::Map<
        abi_stable::std_types::vec::IntoIter<Tuple2<RString, Value>>,
        fn(Tuple2<RString, Value>) -> (String, Value),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter().map(|e| (e.0.into_string(), e.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_equal_only_when_every_byte_is() {
        for n in 0..=40usize {
            let key: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_key(&RString::from(key.as_str()), &key), "length {n}");
            for at in 0..n {
                let mut other = key.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert!(
                    !same_key(&RString::from(key.as_str()), &other),
                    "{n} at {at}"
                );
            }
            let longer = format!("{key}a");
            assert!(!same_key(&RString::from(key.as_str()), &longer));
        }
    }
}
