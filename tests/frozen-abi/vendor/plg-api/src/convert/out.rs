//! Conversions out of [`Value`]: [`FromValue`] (used by [`Context::get`](crate::Context::get))
//! and `TryFrom<Value>`, with [`ValueError`] saying why not.

use std::fmt;

use crate::{Value, ValueKind, ValueMap};

/// Why a [`Value`] could not be converted to a Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// The value is of another kind.
    WrongKind {
        /// The kind the conversion needs.
        expected: ValueKind,
        /// The kind the value has.
        found: ValueKind,
    },
    /// The number does not fit the target type.
    OutOfRange {
        /// The number, as written.
        value: String,
        /// The Rust type it was converted to.
        target: &'static str,
    },
    /// A serde conversion ([`to_value`](crate::to_value), [`from_value`](crate::from_value))
    /// failed: a missing field, an unknown variant, a map key that is not a string.
    Serde(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::WrongKind { expected, found } => {
                write!(
                    f,
                    "expected {}, found {}",
                    expected.with_article(),
                    found.with_article()
                )
            }
            ValueError::OutOfRange { value, target } => {
                write!(f, "{value} does not fit in {target}")
            }
            ValueError::Serde(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ValueError {}

/// Types that can be read out of a borrowed [`Value`]; used by
/// [`Context::get`](crate::Context::get).
///
/// Floats accept integers (widening); integers do not accept floats.
pub trait FromValue: Sized {
    /// Converts `value`, or says why not.
    fn from_value(value: &Value) -> Result<Self, ValueError>;
}

fn wrong(expected: ValueKind, v: &Value) -> ValueError {
    ValueError::WrongKind {
        expected,
        found: v.kind(),
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, ValueError> {
        Ok(value.clone())
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_bool().ok_or_else(|| wrong(ValueKind::Bool, v))
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_f64().ok_or_else(|| wrong(ValueKind::Float, v))
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| wrong(ValueKind::Str, v))
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_bytes()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| wrong(ValueKind::Bytes, v))
    }
}
impl FromValue for Vec<Value> {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_list()
            .map(<[Value]>::to_vec)
            .ok_or_else(|| wrong(ValueKind::List, v))
    }
}
impl FromValue for ValueMap {
    fn from_value(v: &Value) -> Result<Self, ValueError> {
        v.as_map().cloned().ok_or_else(|| wrong(ValueKind::Map, v))
    }
}

macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, ValueError> {
                let n = v.as_i64().ok_or_else(|| wrong(ValueKind::Int, v))?;
                <$t>::try_from(n).map_err(|_| ValueError::OutOfRange {
                    value: n.to_string(),
                    target: stringify!($t),
                })
            }
        }
    )*};
}
from_value_int!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

macro_rules! try_from_value {
    ($($t:ty),*) => {$(
        impl TryFrom<Value> for $t {
            type Error = ValueError;
            fn try_from(v: Value) -> Result<Self, ValueError> { <$t as FromValue>::from_value(&v) }
        }
        impl TryFrom<&Value> for $t {
            type Error = ValueError;
            fn try_from(v: &Value) -> Result<Self, ValueError> { <$t as FromValue>::from_value(v) }
        }
    )*};
}
try_from_value!(bool, i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, f64);

impl TryFrom<Value> for String {
    type Error = ValueError;
    fn try_from(v: Value) -> Result<Self, ValueError> {
        match v {
            Value::Str(s) => Ok(s.into_string()),
            other => Err(wrong(ValueKind::Str, &other)),
        }
    }
}
impl TryFrom<Value> for Vec<u8> {
    type Error = ValueError;
    fn try_from(v: Value) -> Result<Self, ValueError> {
        match v {
            Value::Bytes(b) => Ok(b.into_vec()),
            other => Err(wrong(ValueKind::Bytes, &other)),
        }
    }
}
impl TryFrom<Value> for Vec<Value> {
    type Error = ValueError;
    fn try_from(v: Value) -> Result<Self, ValueError> {
        match v {
            Value::List(l) => Ok(l.into_vec()),
            other => Err(wrong(ValueKind::List, &other)),
        }
    }
}
impl TryFrom<Value> for ValueMap {
    type Error = ValueError;
    fn try_from(v: Value) -> Result<Self, ValueError> {
        match v {
            Value::Map(m) => Ok(m),
            other => Err(wrong(ValueKind::Map, &other)),
        }
    }
}
