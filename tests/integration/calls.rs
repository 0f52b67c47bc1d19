//! Calls between plugins (issue 9 §6): a plugin calls a declared dependency through
//! `Context::call`; the host routes it through the same hooks and metrics as any call, with
//! the caller's deadline and cancellation, refuses undeclared targets and calls from other
//! threads, and keeps routing while the dependency is hot-upgraded.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use plg_loader::{
    CallHook, CallInfo, Context, ExecError, Plugin, PluginManager, Rejection, Reload,
};
use plg_tests::{build_edited, TempPluginsDir};

/// A plugins directory with `fixture-caller` depending on `deps`, plus each dependency and
/// `fixture-noop` (loaded, but not declared).
fn staged(deps: serde_json::Value, also: &[&str]) -> TempPluginsDir {
    let dir = TempPluginsDir::default();
    dir.stage_with("fixture-caller", "fixture-caller", |m| {
        m["dependencies"] = deps
    });
    for package in also {
        dir.stage(package);
    }
    dir
}

fn loaded(dir: &TempPluginsDir, manager: PluginManager) -> (PluginManager, Plugin) {
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let caller = manager.get("fixture-caller").unwrap();
    let _ = dir;
    (manager, caller)
}

fn call_greet(caller: &Plugin, name: &str) -> Result<String, ExecError> {
    let mut ctx = Context::new();
    ctx.set("target", "fixture-greet");
    ctx.set("sub.name", name);
    caller.execute(&mut ctx).map_err(|e| *e)?;
    Ok(ctx.get_str("reply.greeting").unwrap().to_owned())
}

fn failure_message(result: Result<(), Box<ExecError>>) -> String {
    match result.map_err(|e| *e) {
        Err(ExecError::Failed { plugin, message }) => {
            assert_eq!(plugin, "fixture-caller@0.1.0");
            message
        }
        other => panic!("expected the caller to fail, got {other:?}"),
    }
}

#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl CallHook for Seen {
    fn name(&self) -> &str {
        "seen"
    }
    fn before(&self, call: &CallInfo<'_>, _: &mut Context) -> Result<(), Rejection> {
        self.0.lock().unwrap().push(call.plugin.to_owned());
        Ok(())
    }
}

#[test]
fn a_declared_dependency_is_called_through_the_hosts_hooks_and_metrics() {
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet", "fixture-noop"],
    );
    let seen = Arc::new(Seen::default());
    let (manager, caller) = loaded(
        &dir,
        PluginManager::new(dir.path()).with_call_hook(Arc::clone(&seen)),
    );
    assert_eq!(call_greet(&caller, "bob").unwrap(), "hello bob");
    assert_eq!(
        *seen.0.lock().unwrap(),
        ["fixture-caller", "fixture-greet"],
        "the nested call went through the host's hooks"
    );
    let greet_calls = manager
        .metrics()
        .into_iter()
        .find(|m| m.plugin == "fixture-greet")
        .map(|m| m.calls);
    assert_eq!(greet_calls, Some(1), "the nested call was counted");
}

#[test]
fn a_call_to_an_undeclared_plugin_is_refused_and_names_what_to_declare() {
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet", "fixture-noop"],
    );
    let (manager, caller) = loaded(&dir, PluginManager::new(dir.path()));
    for target in ["fixture-noop", "not-installed"] {
        let mut ctx = Context::new();
        ctx.set("target", target);
        let message = failure_message(caller.execute(&mut ctx));
        assert!(
            message.contains(&format!(
                "called `{target}`, which is not among the dependencies"
            )) && message.contains("fixture-greet ^0.1")
                && message.contains("\"dependencies\""),
            "{message}"
        );
    }
    let noop_calls = manager
        .metrics()
        .into_iter()
        .find(|m| m.plugin == "fixture-noop")
        .map_or(0, |m| m.calls);
    assert_eq!(noop_calls, 0, "the undeclared plugin was never called");
}

#[test]
fn a_call_from_a_thread_the_plugin_spawned_is_refused() {
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet"],
    );
    let (_manager, caller) = loaded(&dir, PluginManager::new(dir.path()));
    let mut ctx = Context::new();
    ctx.set("target", "fixture-greet");
    ctx.set("sub.name", "bob");
    ctx.set("from_thread", true);
    let message = failure_message(caller.execute(&mut ctx));
    assert!(
        message.contains("works only on the thread that runs the plugin's entry point"),
        "{message}"
    );
}

#[test]
fn the_dependency_gets_the_callers_deadline_and_cancellation() {
    let dir = staged(serde_json::json!({"fixture-hang": "*"}), &["fixture-hang"]);
    let (_manager, caller) = loaded(&dir, PluginManager::new(dir.path()));

    // The caller's deadline reaches the dependency, which stops; the caller reports it.
    let mut ctx = Context::new();
    ctx.set("target", "fixture-hang");
    ctx.set_timeout(Duration::from_millis(100));
    match caller.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::DeadlineExceeded { plugin }) => assert_eq!(plugin, "fixture-caller@0.1.0"),
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }

    // So does its cancellation, from another thread. The sub-context's own token is replaced.
    let mut ctx = Context::new();
    ctx.set("target", "fixture-hang");
    let token = ctx.cancel_token().clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        token.cancel();
    });
    match caller.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::Cancelled { plugin }) => assert_eq!(plugin, "fixture-caller@0.1.0"),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    canceller.join().unwrap();

    // A caller already cancelled does not start the dependency at all.
    let mut ctx = Context::new();
    ctx.set("target", "fixture-hang");
    ctx.cancel_token().cancel();
    assert!(matches!(
        caller.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::Cancelled { .. })
    ));
}

#[test]
fn a_hook_that_rejects_the_dependency_fails_the_callers_call() {
    struct NoGreet;
    impl CallHook for NoGreet {
        fn name(&self) -> &str {
            "no-greet"
        }
        fn before(&self, call: &CallInfo<'_>, _: &mut Context) -> Result<(), Rejection> {
            if call.plugin == "fixture-greet" {
                return Err("greetings are closed".into());
            }
            Ok(())
        }
    }
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet"],
    );
    let (_manager, caller) = loaded(&dir, PluginManager::new(dir.path()).with_call_hook(NoGreet));
    let mut ctx = Context::new();
    ctx.set("target", "fixture-greet");
    ctx.set("sub.name", "bob");
    let message = failure_message(caller.execute(&mut ctx));
    assert!(
        message.contains("`no-greet` hook") && message.contains("greetings are closed"),
        "{message}"
    );
}

#[test]
fn a_dependency_that_is_upgraded_meanwhile_never_fails_a_call() {
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet"],
    );
    let greet_dir = dir.path().join("fixture-greet").join("0.1.0");
    let howdy = build_edited(
        "fixture-greet",
        "0.1.0",
        "-howdy",
        &[("\"hello \"", "\"howdy \"")],
    );
    let hello = build_edited("fixture-greet", "0.1.0", "-hello", &[]);
    let (manager, caller) = loaded(&dir, PluginManager::new(dir.path()));

    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|_| {
            let caller = caller.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) || calls == 0 {
                    let greeting = call_greet(&caller, "bob").expect("no call fails");
                    assert!(
                        greeting == "hello bob" || greeting == "howdy bob",
                        "{greeting}"
                    );
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    for round in 0..6 {
        let library = if round % 2 == 0 { &howdy } else { &hello };
        dir.replace_library(&greet_dir, "fixture-greet", library);
        match manager.reload("fixture-greet").unwrap() {
            Reload::Upgraded { .. } => {}
            other => panic!("expected an upgrade, got {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in callers {
        assert!(t.join().unwrap() > 0);
    }
    // Six upgrades, ending on the `hello` build: the caller's handle followed them all.
    assert_eq!(call_greet(&caller, "bob").unwrap(), "hello bob");
}

#[test]
fn plg_run_loads_the_dependencies_and_the_nested_call_works() {
    let dir = staged(
        serde_json::json!({"fixture-greet": "^0.1"}),
        &["fixture-greet"],
    );
    let out = crate::cli::plg(
        &dir,
        &[
            "run",
            "fixture-caller",
            "--set",
            "target=fixture-greet",
            "--set",
            "sub.name=bob",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("hello bob"), "{stdout}");
    // The caller's own handle on its dependency is plg-loader's, not a handle the host kept.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("still held"), "{stderr}");
}

/// Unloads `fixture-noop` from inside an `after` hook of a call to it.
struct UnloadAfter {
    manager: std::sync::OnceLock<std::sync::Weak<PluginManager>>,
    result: Mutex<Option<Result<usize, plg_loader::UnloadError>>>,
}

impl CallHook for UnloadAfter {
    fn name(&self) -> &str {
        "unload-after"
    }
    fn after(&self, _: &CallInfo<'_>, _: &Context, _: &Result<(), ExecError>, _: Duration) {
        if let Some(manager) = self.manager.get().and_then(std::sync::Weak::upgrade) {
            let r = manager
                .unload("fixture-noop", None)
                .map(|reports| reports.len());
            *self.result.lock().unwrap() = Some(r);
        }
    }
}

#[test]
fn an_after_hook_can_unload_the_plugin_whose_call_it_sees() {
    // Once the plugin returned, its call no longer counts as in flight: the hook's unload
    // does not wait for the very call that runs it (it would time out as Busy).
    let dir = TempPluginsDir::default();
    dir.stage("fixture-noop");
    let hook = Arc::new(UnloadAfter {
        manager: std::sync::OnceLock::new(),
        result: Mutex::new(None),
    });
    let manager = Arc::new(
        PluginManager::new(dir.path())
            .with_call_hook(Arc::clone(&hook))
            .with_unload_timeout(Duration::from_millis(300)),
    );
    hook.manager.set(Arc::downgrade(&manager)).unwrap();
    let noop = manager.load_matching("fixture-noop", None).unwrap();
    noop.execute(&mut Context::new()).unwrap();
    match hook.result.lock().unwrap().take() {
        Some(Ok(1)) => {}
        other => panic!("expected the hook's unload to succeed, got {other:?}"),
    }
    assert!(!noop.is_loaded());
}

#[test]
fn a_dependency_upgraded_during_a_nested_call_drains_and_the_manager_tears_down() {
    // The caller's handle on `fixture-hang` moves to the new version while the nested call
    // still runs on the old one, which drains (it is cancelled) and is retired later; the
    // teardown that follows (the caller's routes holding the dependency's handle) finishes.
    let dir = staged(serde_json::json!({"fixture-hang": "*"}), &["fixture-hang"]);
    let hang_dir = dir.path().join("fixture-hang").join("0.1.0");
    let rebuilt = build_edited(
        "fixture-hang",
        "0.1.0",
        "-slower",
        &[("Duration::from_millis(1)", "Duration::from_millis(2)")],
    );
    let manager = PluginManager::new(dir.path()).with_unload_timeout(Duration::from_millis(200));
    let (manager, caller) = loaded(&dir, manager);
    let hang = manager.get("fixture-hang").unwrap();

    let mut ctx = Context::new();
    ctx.set("target", "fixture-hang");
    let token = ctx.cancel_token().clone();
    let nested = {
        let caller = caller.clone();
        std::thread::spawn(move || caller.execute(&mut ctx))
    };
    let running = || {
        let mut probe = Context::new().with_label("running");
        hang.execute(&mut probe).unwrap();
        probe.get::<bool>("running").unwrap()
    };
    while !running() {
        std::thread::sleep(Duration::from_millis(5));
    }
    dir.replace_library(&hang_dir, "fixture-hang", &rebuilt);
    assert!(matches!(
        manager.reload("fixture-hang").unwrap(),
        Reload::Upgraded { .. }
    ));
    token.cancel();
    assert!(matches!(
        nested.join().unwrap().map_err(|e| *e),
        Err(ExecError::Cancelled { .. })
    ));

    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop((caller, hang));
        drop(manager);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("dropping the manager finished (no deadlock)");
}

/// Keeps a copy of every context its `before` sees for `fixture-greet`.
#[derive(Default)]
struct KeepContexts(Mutex<Vec<Context>>);

impl CallHook for KeepContexts {
    fn name(&self) -> &str {
        "keep-contexts"
    }
    fn before(&self, call: &CallInfo<'_>, ctx: &mut Context) -> Result<(), Rejection> {
        if call.plugin == "fixture-greet" {
            self.0.lock().unwrap().push(ctx.clone());
        }
        Ok(())
    }
}

/// The sub-context of a call between plugins is the plugin's making (`Context::new`, or a
/// clone of its own context with its log tag). The host makes it its own before the
/// dependency's hooks see it: a hook that keeps a copy can log with it, read it and drop it
/// after both plugins are unloaded.
#[test]
fn a_hook_may_keep_a_nested_calls_context_past_the_unload() {
    for clone_context in [false, true] {
        let dir = staged(
            serde_json::json!({"fixture-greet": "^0.1"}),
            &["fixture-greet"],
        );
        let kept = Arc::new(KeepContexts::default());
        let (manager, caller) = loaded(
            &dir,
            PluginManager::new(dir.path()).with_call_hook(Arc::clone(&kept)),
        );
        let mut ctx = Context::new();
        ctx.set("target", "fixture-greet");
        ctx.set("sub.name", "Ada");
        ctx.set("clone_context", clone_context);
        caller.execute(&mut ctx).unwrap();
        assert_eq!(ctx.get_str("reply.greeting"), Ok("hello Ada"));
        for name in ["fixture-caller", "fixture-greet"] {
            let reports = manager.unload(name, None).unwrap();
            #[cfg(target_os = "linux")]
            assert_eq!(reports[0].unmapped, Some(true), "{name}: {reports:?}");
            let _ = reports;
        }
        let kept = std::mem::take(&mut *kept.0.lock().unwrap());
        assert_eq!(kept.len(), 1, "clone_context {clone_context}");
        for mut copy in kept {
            assert_eq!(copy.origin(), "", "clone_context {clone_context}");
            copy.info("logged from a context a hook kept, after the unload");
            assert_eq!(copy.get_str("name"), Ok("Ada"));
            copy.set("name", "Grace");
            drop(copy);
        }
    }
}
