//! Conversions into [`Value`].
//!
//! - Every integer type that always fits an `i64` converts with `From`: `i8`–`i64`, `isize`,
//!   `u16`, `u32`. `u64`, `usize`, `i128` and `u128` convert with `TryFrom`, and a number too
//!   large is [`ValueError::OutOfRange`], never a wrap. (A single `u8` is left out so that
//!   `Vec<u8>` and `&[u8]` stay [`Value::Bytes`]; write `u32::from(b)`, or use
//!   [`to_value`](crate::to_value), which makes every `u8` an `Int`.)
//! - `Vec<T>`, `&[T]` and arrays of any `T: Into<Value>` become a [`Value::List`];
//!   `Option<T>` becomes `T` or `Null`; `HashMap` and `BTreeMap` with string keys become a
//!   [`Value::Map`] (a `HashMap`'s order is its iteration order).
//! - Anything serde can serialize converts with [`to_value`](crate::to_value) (and
//!   [`Context::put`](crate::Context::put)).

use std::collections::{BTreeMap, HashMap};

use abi_stable::std_types::{RString, RVec};

use crate::{Value, ValueError, ValueMap};

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self { Value::Int(i64::from(n)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u16, u32);

impl From<isize> for Value {
    fn from(n: isize) -> Self {
        // `isize` is at most 64 bits on every target Rust supports.
        Value::Int(n as i64)
    }
}

macro_rules! try_from_int {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for Value {
            type Error = ValueError;
            fn try_from(n: $t) -> Result<Self, ValueError> {
                i64::try_from(n).map(Value::Int).map_err(|_| ValueError::OutOfRange {
                    value: n.to_string(),
                    target: "i64 (a plg Value's integer)",
                })
            }
        }
    )*};
}
try_from_int!(u64, usize, i128, u128);

impl From<()> for Value {
    fn from((): ()) -> Self {
        Value::Null
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<f32> for Value {
    fn from(x: f32) -> Self {
        Value::Float(f64::from(x))
    }
}
impl From<char> for Value {
    fn from(c: char) -> Self {
        Value::from(c.to_string())
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(RString::from(s))
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::from(s.as_str())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(RString::from(s))
    }
}
impl From<RString> for Value {
    fn from(s: RString) -> Self {
        Value::Str(s)
    }
}
impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        Value::Bytes(RVec::from(b))
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(RVec::from(b))
    }
}
impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}
impl<T: Into<Value> + Clone> From<&[T]> for Value {
    fn from(items: &[T]) -> Self {
        Value::List(items.iter().cloned().map(Into::into).collect())
    }
}
impl<T: Into<Value>, const N: usize> From<[T; N]> for Value {
    fn from(items: [T; N]) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}
impl From<ValueMap> for Value {
    fn from(m: ValueMap) -> Self {
        Value::Map(m)
    }
}
impl<K: Into<String>, T: Into<Value>, S> From<HashMap<K, T, S>> for Value {
    fn from(m: HashMap<K, T, S>) -> Self {
        Value::Map(m.into_iter().collect())
    }
}
impl<K: Into<String>, T: Into<Value>> From<BTreeMap<K, T>> for Value {
    fn from(m: BTreeMap<K, T>) -> Self {
        Value::Map(m.into_iter().collect())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}
impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Value::List(iter.into_iter().collect())
    }
}
