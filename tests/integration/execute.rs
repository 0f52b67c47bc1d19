//! Executing: values in and out, every Value kind, panics, cancellation, deadlines and
//! concurrency.

use std::{sync::Arc, time::Duration};

use plg_loader::{Context, ExecError, Value, ValueMap};

use crate::load_one;

#[test]
fn hello_reads_name_and_sets_greeting() {
    let (_m, hello, _d) = load_one("hello");
    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    hello.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, Ada!"));
    assert_eq!(ctx.get_str("name"), Ok("Ada"));
}

#[test]
fn a_wrong_kind_of_input_is_invalid_input() {
    let (_m, hello, _d) = load_one("hello");
    let mut ctx = Context::new();
    ctx.set("name", 5);
    match hello.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::InvalidInput { plugin, message }) => {
            assert_eq!(plugin, "hello@1.2.0");
            assert!(message.contains("holds an int"), "{message}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn kinds_round_trips_every_value_kind() {
    let (_m, kinds, _d) = load_one("kinds");
    let mut ctx = Context::new();
    ctx.set("n", ());
    ctx.set("b", false);
    ctx.set("i", 1);
    ctx.set("f", 0.5);
    ctx.set("s", "x");
    ctx.set("y", vec![9u8]);
    ctx.set("l", vec![Value::Null]);
    ctx.set("m", ValueMap::new());
    kinds.execute(&mut ctx).unwrap();
    let seen: ValueMap = ctx.get("seen").unwrap();
    let seen: Vec<(&str, &str)> = seen.iter().map(|(k, v)| (k, v.as_str().unwrap())).collect();
    assert_eq!(
        seen,
        [
            ("n", "null"),
            ("b", "bool"),
            ("i", "int"),
            ("f", "float"),
            ("s", "string"),
            ("y", "bytes"),
            ("l", "list"),
            ("m", "map")
        ]
    );
    assert_eq!(ctx.get_value("out_null"), Some(&Value::Null));
    assert_eq!(ctx.get::<bool>("out_bool"), Ok(true));
    assert_eq!(ctx.get::<i64>("out_int"), Ok(-42));
    assert_eq!(ctx.get::<f64>("out_float"), Ok(2.5));
    assert_eq!(ctx.get_str("out_str"), Ok("text"));
    assert_eq!(ctx.get::<Vec<u8>>("out_bytes"), Ok(vec![0, 1, 255]));
    assert_eq!(
        ctx.get::<Vec<Value>>("out_list"),
        Ok(vec![Value::from(1), Value::from("two")])
    );
    let inner: ValueMap = ctx.get("out_map").unwrap();
    assert_eq!(
        inner.get("inner"),
        Some(&Value::from(vec![Value::from(false)]))
    );
}

#[test]
fn values_written_by_a_plugin_outlive_its_unloading() {
    let (manager, kinds, _d) = load_one("kinds");
    let mut ctx = Context::new();
    kinds.execute(&mut ctx).unwrap();
    let reports = manager.unload("kinds", None).unwrap();
    assert_eq!(reports[0].unmapped, Some(true), "{reports:?}");
    // Every buffer the plugin allocated must be host-owned now: touching and dropping them
    // after the library is gone must not crash.
    let json = serde_json::to_string(ctx.values()).unwrap();
    assert!(json.contains("\"out_str\":\"text\""), "{json}");
    ctx.set("out_str", "replaced");
    drop(ctx);
}

#[test]
fn a_panic_is_an_error_and_everything_keeps_working() {
    let dir = plg_tests::TempPluginsDir::default();
    dir.stage("fixture-panic");
    dir.stage("hello");
    let manager = plg_loader::PluginManager::new(dir.path());
    assert!(manager.load_all().failed.is_empty());
    let panicky = manager.get("fixture-panic").unwrap();
    for _ in 0..3 {
        match panicky.execute(&mut Context::new()).map_err(|e| *e) {
            Err(ExecError::Panicked { plugin, message }) => {
                assert_eq!(plugin, "fixture-panic@0.1.0");
                assert_eq!(message, "fixture-panic was told to panic (n = 7)");
            }
            other => panic!("expected Panicked, got {other:?}"),
        }
    }
    // The same plugin still serves calls that do not panic, and so do the others.
    let mut ctx = Context::new().with_label("ok");
    panicky.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<bool>("survived"), Ok(true));
    let mut ctx = Context::new();
    manager.get("hello").unwrap().execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_str("greeting"), Ok("Hello, world!"));
}

#[test]
fn a_deadline_stops_a_looping_plugin() {
    let (_m, hang, _d) = load_one("fixture-hang");
    let mut ctx = Context::new();
    ctx.set_timeout(Duration::from_millis(50));
    assert_eq!(
        hang.execute(&mut ctx),
        Err(Box::new(ExecError::DeadlineExceeded {
            plugin: "fixture-hang@0.1.0".into()
        }))
    );
    assert!(ctx.get::<i64>("iterations").unwrap() >= 1);
}

#[test]
fn a_cancel_token_stops_a_looping_plugin_from_another_thread() {
    let (_m, hang, _d) = load_one("fixture-hang");
    let mut ctx = Context::new();
    let token = ctx.cancel_token().clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        token.cancel();
    });
    assert_eq!(
        hang.execute(&mut ctx),
        Err(Box::new(ExecError::Cancelled {
            plugin: "fixture-hang@0.1.0".into()
        }))
    );
    canceller.join().unwrap();
}

#[test]
fn concurrent_calls_share_thread_safe_state() {
    let (_m, counter, _d) = load_one("counter");
    let counter = Arc::new(counter);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let mut ctx = Context::new();
                for _ in 0..500 {
                    ctx.set("by", 2);
                    counter.execute(&mut ctx).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut ctx = Context::new().with_label("get");
    counter.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<i64>("count"), Ok(8 * 500 * 2));
    let mut ctx = Context::new().with_label("bogus");
    assert!(matches!(
        counter.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::InvalidInput { .. })
    ));
}

#[test]
fn wordstats_writes_usize_vec_map_and_struct_values_with_serde() {
    use std::collections::BTreeMap;

    let (_m, wordstats, _d) = load_one("wordstats");
    let mut ctx = Context::new();
    ctx.set("text", "the cat saw The kitten");
    ctx.put("options", &BTreeMap::from([("lowercase", true)]))
        .unwrap();
    wordstats.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get::<usize>("words").unwrap(), 5);
    assert_eq!(
        ctx.get_as::<Vec<String>>("distinct").unwrap(),
        ["cat", "kitten", "saw", "the"]
    );
    assert_eq!(
        ctx.get_as::<BTreeMap<String, i64>>("counts").unwrap(),
        BTreeMap::from([
            ("cat".into(), 1),
            ("kitten".into(), 1),
            ("saw".into(), 1),
            ("the".into(), 2)
        ])
    );
    let stats = ctx.get_value("stats").unwrap().as_map().unwrap();
    let keys: Vec<&str> = stats.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["words", "longest", "mean_length"]);
    assert_eq!(stats.get("words").and_then(Value::as_i64), Some(5));
    assert_eq!(stats.get("longest").and_then(Value::as_str), Some("kitten"));

    // Options of the wrong shape reach the host as InvalidInput, naming the key.
    let mut ctx = Context::new();
    ctx.set("text", "x");
    ctx.set("options", "loud");
    let err = wordstats.execute(&mut ctx).unwrap_err();
    assert!(err.to_string().contains("options"), "{err}");
}
