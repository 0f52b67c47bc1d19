//! Conversions between [`Value`] and Rust types: `From`/`TryFrom` for the common ones
//! ([`into`](self), `out`), and any serde type through [`to_value`] and [`from_value`],
//! the way `serde_json::to_value` and `from_value` work.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Value, ValueError};

mod de;
mod into;
pub(crate) mod out;
mod ser;

/// Converts any serde-serializable value into a [`Value`].
///
/// Struct fields and map entries keep their order; bytes (`serde_bytes`) become
/// [`Value::Bytes`]; an integer that does not fit an `i64`, or a map key that is not a
/// string or an integer, is an error.
///
/// ```
/// use std::collections::BTreeMap;
///
/// #[derive(serde::Serialize)]
/// struct Stats { words: usize, top: Vec<String>, counts: BTreeMap<String, i64> }
///
/// let stats = Stats { words: 3, top: vec!["a".into()], counts: BTreeMap::from([("a".into(), 2)]) };
/// let v = plg_api::to_value(&stats)?;
/// assert_eq!(v.as_map().unwrap().get("words").and_then(|w| w.as_i64()), Some(3));
/// assert!(plg_api::to_value(&u64::MAX).is_err());
/// # Ok::<(), plg_api::ValueError>(())
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(ser::ValueSerializer)
}

/// Converts a [`Value`] into any serde-deserializable type.
///
/// ```
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// let v: plg_api::Value = [("x", 1), ("y", 2)].into_iter().collect::<plg_api::ValueMap>().into();
/// assert_eq!(plg_api::from_value::<Point>(v)?, Point { x: 1, y: 2 });
/// # Ok::<(), plg_api::ValueError>(())
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ValueError> {
    T::deserialize(value)
}
