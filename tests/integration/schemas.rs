//! `input_schema` and `output_schema` (issue 9 §7, first half): the context is checked
//! before and after `execute`, errors name the JSON pointer, and a schema that does not
//! compile is refused when the manifest is read (inline) or the plugin loads (a file).

use plg_loader::{Context, ExecError, LoadError, Manifest, ManifestError, PluginManager, Reload};
use plg_tests::TempPluginsDir;

#[test]
fn the_context_is_checked_before_and_after_execute_with_json_pointers() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| {
        m["input_schema"] = serde_json::json!({
            "type": "object",
            "properties": { "name": { "type": "string", "maxLength": 10 } },
            "required": ["name"]
        });
        // hello sets `greeting`; this schema wants a number there, so every output fails.
        m["output_schema"] = "out.schema.json".into();
    });
    std::fs::write(
        dir.path().join("hello/1.2.0/out.schema.json"),
        r#"{"properties": {"greeting": {"type": "integer"}}}"#,
    )
    .unwrap();
    let manager = PluginManager::new(dir.path());
    let hello = manager.load_matching("hello", None).unwrap();

    let mut ctx = Context::new();
    ctx.set("name", 5);
    match hello.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::InvalidInput { plugin, message }) => {
            assert_eq!(plugin, "hello@1.2.0");
            assert!(message.contains("input_schema: at /name:"), "{message}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(
        ctx.get_value("greeting").is_none(),
        "the plugin was not called"
    );

    let mut ctx = Context::new();
    assert!(matches!(
        hello.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::InvalidInput { ref message, .. }) if message.contains("\"name\" is a required property")
    ));

    let mut ctx = Context::new();
    ctx.set("name", "Ada");
    match hello.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::InvalidOutput { message, .. }) => {
            assert!(
                message.contains("output_schema: at /greeting:"),
                "{message}"
            );
        }
        other => panic!("expected InvalidOutput, got {other:?}"),
    }
}

#[test]
fn a_schema_that_does_not_compile_is_refused() {
    // Inline: when the manifest is read, naming the field.
    let json = r#"{"name":"x","version":"1.0.0","source":{"mode":"local_so","path":"libx"},
                  "input_schema":{"type":12}}"#;
    match Manifest::from_json(json, "x/plugin.json") {
        Err(ManifestError::Invalid { field, problem, .. }) => {
            assert_eq!(field, "input_schema");
            assert!(problem.contains("not a valid JSON Schema"), "{problem}");
        }
        other => panic!("expected an invalid input_schema, got {other:?}"),
    }
    // Neither a schema nor a file name.
    let json = json.replace(r#"{"type":12}"#, "5");
    assert!(matches!(
        Manifest::from_json(&json, "x/plugin.json"),
        Err(ManifestError::Invalid { ref field, .. }) if field == "input_schema"
    ));

    // In a file: when the plugin loads.
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| {
        m["output_schema"] = "bad.json".into();
    });
    std::fs::write(dir.path().join("hello/1.2.0/bad.json"), r#"{"type": 12}"#).unwrap();
    match PluginManager::new(dir.path()).load_matching("hello", None) {
        Err(LoadError::Schema { field, problem, .. }) => {
            assert_eq!(field, "output_schema");
            assert!(problem.contains("not a valid JSON Schema"), "{problem}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    // A file path may not leave the plugin's directory.
    let json = r#"{"name":"x","version":"1.0.0","source":{"mode":"local_so","path":"libx"},
                  "input_schema":"../../etc/schema.json"}"#;
    assert!(matches!(
        Manifest::from_json(json, "x/plugin.json"),
        Err(ManifestError::Invalid { ref field, .. }) if field == "input_schema"
    ));
}

/// A schema kept in a file next to the manifest is part of the plugin: editing it is an
/// upgrade, as editing the library is, and a broken edit keeps the old schema serving.
#[test]
fn a_reload_takes_an_edited_schema_file() {
    let dir = TempPluginsDir::default();
    dir.stage_with("hello", "hello", |m| {
        m["input_schema"] = "in.schema.json".into();
    });
    let schema = dir.path().join("hello/1.2.0/in.schema.json");
    let allow_up_to = |n: usize| {
        let text =
            format!(r#"{{"properties": {{"name": {{"type": "string", "maxLength": {n}}}}}}}"#);
        std::fs::write(&schema, text).unwrap();
    };
    allow_up_to(10);
    let manager = PluginManager::new(dir.path());
    manager.load_matching("hello", None).unwrap();
    let hello = manager.get("hello").unwrap();
    let call = |name: &str| {
        let mut ctx = Context::new();
        ctx.set("name", name);
        hello.execute(&mut ctx)
    };
    call("Ada").unwrap();

    allow_up_to(2);
    assert!(
        matches!(manager.reload("hello"), Ok(Reload::Upgraded { .. })),
        "an edited schema file is an upgrade"
    );
    assert!(
        matches!(call("Ada").map_err(|e| *e), Err(ExecError::InvalidInput { ref message, .. }) if message.contains("at /name")),
        "the new schema applies"
    );
    assert!(matches!(
        manager.reload("hello"),
        Ok(Reload::Unchanged { .. })
    ));

    std::fs::write(&schema, r#"{"type": 12}"#).unwrap();
    match manager.reload("hello") {
        Err(e) => assert!(
            matches!(
                *e,
                LoadError::Schema {
                    field: "input_schema",
                    ..
                }
            ),
            "{e:?}"
        ),
        Ok(r) => panic!("a schema that does not compile was taken: {r:?}"),
    }
    assert!(
        matches!(
            call("Ada").map_err(|e| *e),
            Err(ExecError::InvalidInput { .. })
        ),
        "the old version, with its schema, keeps serving"
    );
    call("Al").unwrap();
}
