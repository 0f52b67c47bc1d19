//! Between plg-api's [`Value`] and the wire's `plg.v1.Value`.

use plg_api::{Value, ValueMap};

use crate::pb;

/// The deepest nesting of lists and maps a context may have on the wire: 64 levels. Deeper
/// values are refused ([`WireError::TooDeep`]) rather than risk the receiver's stack.
pub const MAX_DEPTH: usize = 64;

/// A wire context that does not convert to a [`ValueMap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Lists and maps nested deeper than [`MAX_DEPTH`].
    #[error("the context nests lists and maps deeper than {MAX_DEPTH} levels, at key {key:?}")]
    TooDeep {
        /// The top-level key under which it happened.
        key: String,
    },
    /// A value with no kind set.
    #[error("the value at key {key:?} has no kind set")]
    NoKind {
        /// The top-level key under which it happened.
        key: String,
    },
}

/// The wire form of `values`, in their order.
pub fn to_wire(values: &ValueMap) -> pb::ValueMap {
    pb::ValueMap {
        entries: values
            .iter()
            .map(|(k, v)| pb::Entry {
                key: k.to_owned(),
                value: Some(value_to_wire(v)),
            })
            .collect(),
    }
}

fn value_to_wire(value: &Value) -> pb::Value {
    use pb::value::Kind;
    let kind = match value {
        Value::Null => Kind::Null(true),
        Value::Bool(b) => Kind::Bool(*b),
        Value::Int(i) => Kind::Int(*i),
        Value::Float(f) => Kind::Float(*f),
        Value::Str(s) => Kind::Str(s.as_str().to_owned()),
        Value::Bytes(b) => Kind::Bytes(b.as_slice().to_vec()),
        Value::List(items) => Kind::List(pb::ValueList {
            items: items.iter().map(value_to_wire).collect(),
        }),
        Value::Map(m) => Kind::Map(to_wire(m)),
    };
    pb::Value { kind: Some(kind) }
}

/// The [`ValueMap`] a wire context holds. Later duplicates of a key replace earlier ones.
pub fn from_wire(wire: pb::ValueMap) -> Result<ValueMap, WireError> {
    let mut out = ValueMap::new();
    for entry in wire.entries {
        let value = value_from_wire(entry.value, 1, &entry.key)?;
        out.insert(entry.key, value);
    }
    Ok(out)
}

fn map_from_wire(wire: pb::ValueMap, depth: usize, key: &str) -> Result<ValueMap, WireError> {
    let mut out = ValueMap::new();
    for entry in wire.entries {
        let value = value_from_wire(entry.value, depth + 1, key)?;
        out.insert(entry.key, value);
    }
    Ok(out)
}

fn value_from_wire(wire: Option<pb::Value>, depth: usize, key: &str) -> Result<Value, WireError> {
    use pb::value::Kind;
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep {
            key: key.to_owned(),
        });
    }
    let kind = wire.and_then(|v| v.kind).ok_or_else(|| WireError::NoKind {
        key: key.to_owned(),
    })?;
    Ok(match kind {
        Kind::Null(_) => Value::Null,
        Kind::Bool(b) => Value::Bool(b),
        Kind::Int(i) => Value::Int(i),
        Kind::Float(f) => Value::Float(f),
        Kind::Str(s) => Value::from(s),
        Kind::Bytes(b) => Value::Bytes(b.into()),
        Kind::List(l) => Value::List(
            l.items
                .into_iter()
                .map(|v| value_from_wire(Some(v), depth + 1, key))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        Kind::Map(m) => Value::Map(map_from_wire(m, depth, key)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_in_order() {
        let mut inner = ValueMap::new();
        inner.insert("z", 1);
        inner.insert("a", "x");
        let mut values = ValueMap::new();
        values.insert("null", Value::Null);
        values.insert("bool", true);
        values.insert("int", -7);
        values.insert("float", 1.5);
        values.insert("str", "héllo");
        values.insert("bytes", Value::Bytes(vec![0u8, 255].into()));
        values.insert(
            "list",
            Value::List(vec![Value::from(1), Value::Null].into()),
        );
        values.insert("map", Value::Map(inner));
        let back = from_wire(to_wire(&values)).unwrap();
        assert_eq!(back, values);
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            values.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn too_deep_and_kindless_values_are_refused() {
        let mut v = Value::Null;
        for _ in 0..MAX_DEPTH + 1 {
            v = Value::List(vec![v].into());
        }
        let mut values = ValueMap::new();
        values.insert("deep", v);
        assert_eq!(
            from_wire(to_wire(&values)),
            Err(WireError::TooDeep { key: "deep".into() })
        );
        let wire = pb::ValueMap {
            entries: vec![pb::Entry {
                key: "k".into(),
                value: Some(pb::Value { kind: None }),
            }],
        };
        assert_eq!(from_wire(wire), Err(WireError::NoKind { key: "k".into() }));
    }
}
