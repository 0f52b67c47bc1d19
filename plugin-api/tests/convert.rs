//! Writing Rust values into a `Value` and reading them back: `From`, `TryFrom`, and any
//! serde type through `to_value`, `from_value`, `Context::put` and `Context::get_as`.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use plg_api::{from_value, to_value, Context, ContextError, PluginError, Value, ValueError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Stats {
    words: usize,
    top: Vec<String>,
    counts: BTreeMap<String, i64>,
    ratio: f64,
    first: Option<char>,
    shape: Shape,
    kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Point,
    Circle(f64),
    Rect { w: u32, h: u32 },
    Pair(i8, i8),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Kind {
    Prose,
}

fn stats() -> Stats {
    Stats {
        words: 3,
        top: vec!["the".into(), "a".into()],
        counts: BTreeMap::from([("the".into(), 2), ("a".into(), 1)]),
        ratio: 0.5,
        first: Some('t'),
        shape: Shape::Rect { w: 2, h: 3 },
        kind: Kind::Prose,
    }
}

#[test]
fn the_common_types_convert_with_from() {
    let words = vec!["a".to_string(), "b".to_string()];
    let mut ctx = Context::new();
    ctx.set("words", words.clone());
    ctx.set("slice", words.as_slice());
    ctx.set("array", [1_i32, 2, 3]);
    ctx.set("map", BTreeMap::from([("a".to_string(), 1_i64)]));
    ctx.set("hash", HashMap::from([("k", true)]));
    ctx.set("none", None::<i32>);
    ctx.set("some", Some(4_u16));
    ctx.set("isize", -5_isize);
    ctx.set("char", 'x');
    ctx.set("bytes", vec![1_u8, 2]);
    assert_eq!(ctx.get::<Vec<Value>>("words").unwrap().len(), 2);
    assert_eq!(ctx.get_as::<Vec<String>>("slice").unwrap(), words);
    assert_eq!(ctx.get_as::<Vec<i32>>("array").unwrap(), vec![1, 2, 3]);
    assert_eq!(
        ctx.get_as::<BTreeMap<String, i64>>("map").unwrap(),
        BTreeMap::from([("a".to_string(), 1)])
    );
    assert!(ctx.get_as::<HashMap<String, bool>>("hash").unwrap()["k"]);
    assert_eq!(ctx.get_value("none"), Some(&Value::Null));
    assert_eq!(ctx.get::<u16>("some").unwrap(), 4);
    assert_eq!(ctx.get::<isize>("isize").unwrap(), -5);
    assert_eq!(ctx.get_str("char").unwrap(), "x");
    assert_eq!(ctx.get::<Vec<u8>>("bytes").unwrap(), vec![1, 2]);
}

#[test]
fn a_u64_or_usize_too_large_is_an_error_not_a_wrap() {
    assert_eq!(Value::try_from(7_usize).unwrap(), Value::Int(7));
    assert_eq!(
        Value::try_from(i64::MAX as u64).unwrap(),
        Value::Int(i64::MAX)
    );
    for err in [
        Value::try_from(u64::MAX).unwrap_err(),
        Value::try_from(i128::MIN).unwrap_err(),
        to_value(&u64::MAX).unwrap_err(),
    ] {
        assert!(matches!(err, ValueError::OutOfRange { .. }), "{err:?}");
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
    let mut ctx = Context::new();
    let err = ctx.put("n", &u64::MAX).unwrap_err();
    assert!(matches!(err, ContextError::OutOfRange { .. }), "{err:?}");
    assert!(
        ctx.get_value("n").is_none(),
        "a failed put leaves the context as it was"
    );
}

#[test]
fn a_serde_struct_goes_in_and_comes_back_out_unchanged() {
    let mut ctx = Context::new();
    ctx.put("stats", &stats()).unwrap();
    assert_eq!(ctx.get_as::<Stats>("stats").unwrap(), stats());
    // Readable field by field too, in declaration order.
    let v = ctx.get_value("stats").unwrap().as_map().unwrap();
    let keys: Vec<&str> = v.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        ["words", "top", "counts", "ratio", "first", "shape", "kind"]
    );
    assert_eq!(v.get("words"), Some(&Value::Int(3)));
    assert_eq!(v.get("kind"), Some(&Value::from("Prose")));
    // And it is the same JSON serde_json would give.
    assert_eq!(
        serde_json::to_value(ctx.get_value("stats").unwrap()).unwrap(),
        serde_json::to_value(stats()).unwrap()
    );
}

#[test]
fn every_enum_form_round_trips() {
    for shape in [
        Shape::Point,
        Shape::Circle(1.5),
        Shape::Rect { w: 1, h: 2 },
        Shape::Pair(-1, 1),
    ] {
        let v = to_value(&shape).unwrap();
        assert_eq!(from_value::<Shape>(v).unwrap(), shape);
    }
}

#[test]
fn a_value_of_the_wrong_shape_is_a_clear_error() {
    let mut ctx = Context::new();
    ctx.set("stats", "not a struct");
    let err = ctx.get_as::<Stats>("stats").unwrap_err();
    assert!(matches!(err, ContextError::Convert { .. }), "{err:?}");
    assert!(err.to_string().starts_with("context key `stats`:"), "{err}");
    ctx.put("stats", &BTreeMap::from([("words", 1)])).unwrap();
    let err = ctx.get_as::<Stats>("stats").unwrap_err();
    assert!(err.to_string().contains("missing field `top`"), "{err}");
    // A map key must be a string or an integer.
    let err = to_value(&BTreeMap::from([((1, 2), 3)])).unwrap_err();
    assert!(matches!(err, ValueError::Serde(_)), "{err:?}");
    // `?` in a plugin turns both into a PluginError.
    let _: PluginError = err.into();
}

#[test]
fn kind_errors_read_as_english() {
    let mut ctx = Context::new();
    ctx.set("n", 1);
    let err = ctx.get_str("n").unwrap_err().to_string();
    assert_eq!(
        err,
        "context key `n` holds an int, but a string was expected"
    );
    let err = bool::try_from(Value::Int(1)).unwrap_err().to_string();
    assert_eq!(err, "expected a bool, found an int");
}

#[test]
fn maps_with_integer_keys_round_trip() {
    let m: BTreeMap<u32, String> = BTreeMap::from([(1, "one".into()), (20, "twenty".into())]);
    let v = to_value(&m).unwrap();
    assert_eq!(v.as_map().unwrap().get("20"), Some(&Value::from("twenty")));
    assert_eq!(from_value::<BTreeMap<u32, String>>(v).unwrap(), m);
    let signed: HashMap<i64, bool> = HashMap::from([(-3, true)]);
    assert_eq!(
        from_value::<HashMap<i64, bool>>(to_value(&signed).unwrap()).unwrap(),
        signed
    );
}

#[test]
fn building_a_map_keeps_the_first_place_and_the_last_value_of_a_repeated_key() {
    let m: plg_api::ValueMap = vec![("a", 1), ("b", 2), ("a", 3)].into_iter().collect();
    let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(m.get("a"), Some(&Value::Int(3)));
    // A large map builds through the same linear path.
    let big: BTreeMap<String, i64> = (0..50_000).map(|i| (format!("k{i}"), i)).collect();
    let v = to_value(&big).unwrap();
    assert_eq!(v.as_map().unwrap().len(), 50_000);
}
