//! Plugins in supervised worker processes (issue 10): the same `Plugin` handle and
//! `execute`, typed errors for every way a worker can fail, restarts, and no orphans.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use plg_loader::{
    Context, ExecError, HandshakeProblem, Isolation, LoadError, Plugin, PluginManager, Reload,
    Retired, Value, WorkerError, WorkerPolicy, WorkerStop,
};
use plg_tests::{worker_bin, Profile, TempPluginsDir};

/// Isolate every plugin, with fast restarts and the test build's worker.
fn policy() -> WorkerPolicy {
    let mut p = WorkerPolicy::isolate_all();
    p.program = Some(worker_bin(Profile::Debug));
    p.initial_backoff = Duration::from_millis(1);
    p.max_backoff = Duration::from_millis(1);
    p.max_crashes = 1000;
    p.kill_grace = Duration::from_millis(300);
    p
}

fn load(dir: &TempPluginsDir, name: &str, policy: WorkerPolicy) -> (PluginManager, Plugin) {
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(policy);
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let plugin = manager.get(name).unwrap();
    (manager, plugin)
}

fn call(plugin: &Plugin, what: &str) -> Result<Context, ExecError> {
    let mut ctx = Context::new();
    ctx.set("do", what);
    plugin.execute(&mut ctx).map(|()| ctx).map_err(|e| *e)
}

fn pid(plugin: &Plugin) -> i64 {
    call(plugin, "pid").expect("pid").get::<i64>("pid").unwrap()
}

/// A call that sleeps `ms` in the worker, on a thread of its own; it yields the worker's pid.
fn sleeping_call(plugin: &Plugin, ms: i64) -> std::thread::JoinHandle<Result<i64, ExecError>> {
    let plugin = plugin.clone();
    std::thread::spawn(move || {
        let mut ctx = Context::new();
        ctx.set("do", "sleep");
        ctx.set("ms", ms);
        plugin
            .execute(&mut ctx)
            .map(|()| ctx.get::<i64>("pid").unwrap())
            .map_err(|e| *e)
    })
}

/// Sends `signal` to the worker process `pid`.
fn signal(pid: i64, signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), signal)
        .unwrap();
}

/// Waits (bounded) until `/proc/PID` is gone or a zombie: the process has exited.
fn wait_gone(pid: i64) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn hello_runs_in_a_worker_with_the_same_host_code() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    let greet = |manager: &PluginManager| {
        let hello = manager.get("hello").unwrap();
        let mut ctx = Context::new();
        ctx.set("name", "Ada");
        hello.execute(&mut ctx).unwrap();
        (
            hello.isolation(),
            ctx.get_str("greeting").unwrap().to_owned(),
        )
    };
    let (in_process, _) = load(&dir, "hello", WorkerPolicy::default());
    let (in_worker, _) = load(&dir, "hello", policy());
    let (a, b) = (greet(&in_process), greet(&in_worker));
    assert_eq!(a.0, Isolation::InProcess);
    assert_eq!(b.0, Isolation::Process);
    assert_eq!(a.1, b.1, "the same greeting either way");
    let reports = in_worker.unload("hello", None).unwrap();
    assert_eq!(reports[0].worker, Some(WorkerStop::ShutDown));
    assert_eq!(reports[0].unmapped, Some(true));
}

#[test]
fn a_manifest_asks_for_a_worker_and_values_of_every_kind_cross_intact() {
    let dir = TempPluginsDir::default();
    dir.stage_with("fixture-crash", "fixture-crash", |m| {
        m["isolation"] = "process".into()
    });
    let mut host = WorkerPolicy::default();
    host.program = Some(worker_bin(Profile::Debug));
    let (_m, plugin) = load(&dir, "fixture-crash", host);
    assert_eq!(plugin.isolation(), Isolation::Process);
    assert_ne!(pid(&plugin), std::process::id() as i64);
    let input: Value = serde_json::from_str(
        r#"{"s":"é\u0000x","n":-5,"f":1.5,"b":true,"z":null,"l":[1,[2,{"k":"v"}]]}"#,
    )
    .unwrap();
    let mut ctx = Context::new();
    ctx.set("input", input.clone());
    plugin.execute(&mut ctx).unwrap();
    assert_eq!(ctx.get_value("echo"), Some(&input));
}

#[test]
fn each_crash_mid_call_is_reported_and_the_next_call_gets_a_fresh_worker() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    dir.stage("fixture-noop");
    let mut p = policy();
    p.isolate_all = false;
    p.isolate.insert("fixture-crash".into());
    let (manager, plugin) = load(&dir, "fixture-crash", p);
    let noop = manager.get("fixture-noop").unwrap();
    assert_eq!(noop.isolation(), Isolation::InProcess);
    for (what, status) in [
        ("abort", "signal 6"),
        ("segv", "signal 11"),
        ("overflow", "signal"),
        ("exit", "exited with code 0"),
    ] {
        let before = pid(&plugin);
        match call(&plugin, what) {
            Err(ExecError::WorkerCrashed { status: s, .. }) => {
                assert!(s.contains(status), "{what}: {s}")
            }
            other => panic!("{what}: expected WorkerCrashed, got {other:?}"),
        }
        // The host and its other plugins keep serving.
        noop.execute(&mut Context::new()).unwrap();
        assert_ne!(pid(&plugin), before, "{what}: a new worker serves");
    }
}

#[test]
fn a_worker_killed_mid_call_as_the_oom_killer_does_fails_that_call_and_restarts() {
    // The kernel's OOM killer sends SIGKILL. (A cgroup memory.max kill is named as such in
    // the status too; this VM has no cgroup v2 memory controller to trigger one.)
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let victim = pid(&plugin);
    let caller = sleeping_call(&plugin, 20_000);
    std::thread::sleep(Duration::from_millis(300));
    signal(victim, rustix::process::Signal::KILL);
    match caller.join().unwrap() {
        Err(ExecError::WorkerCrashed { status, .. }) => {
            assert!(status.contains("signal 9 (SIGKILL)"), "{status}")
        }
        other => panic!("{other:?}"),
    }
    assert_ne!(pid(&plugin), victim, "a fresh worker serves");
}

#[test]
fn too_many_crashes_mark_the_plugin_failed_and_calls_fail_at_once() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.max_crashes = 2;
    let (_m, plugin) = load(&dir, "fixture-crash", p);
    for _ in 0..2 {
        assert!(matches!(
            call(&plugin, "exit"),
            Err(ExecError::WorkerCrashed { .. })
        ));
    }
    match call(&plugin, "pid") {
        Err(ExecError::WorkerFailed { crashes: 2, .. }) => {}
        other => panic!("expected WorkerFailed, got {other:?}"),
    }
}

#[test]
fn a_call_past_its_deadline_fails_and_the_hung_worker_is_replaced() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let before = pid(&plugin);
    let mut ctx = Context::new();
    ctx.set("do", "hang");
    ctx.set_timeout(Duration::from_millis(200));
    assert!(matches!(
        plugin.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::DeadlineExceeded { .. })
    ));
    // The hung worker is stopped after the kill grace: it exits itself (code 70), or the host,
    // whose grace ran out at the same moment, kills it. A new one serves. A call that races
    // with the dying worker gets WorkerCrashed, saying which of the two happened.
    assert!(wait_gone(before), "the hung worker was not stopped");
    let after = loop {
        match call(&plugin, "pid") {
            Ok(ctx) => break ctx.get::<i64>("pid").unwrap(),
            Err(ExecError::WorkerCrashed { status, stderr, .. }) => assert!(
                status.contains("code 70") || status.contains("ignored its deadline"),
                "{status}: {stderr}"
            ),
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_ne!(after, before);
}

#[test]
fn a_cancelled_call_fails_as_cancelled() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let mut ctx = Context::new();
    ctx.set("do", "hang");
    let token = ctx.cancel_token().clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        token.cancel();
    });
    assert!(matches!(
        plugin.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::Cancelled { .. })
    ));
    canceller.join().unwrap();
    pid(&plugin);
}

#[test]
fn a_plugin_printing_on_stdout_cannot_break_the_protocol() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    call(&plugin, "print").unwrap();
    pid(&plugin);
}

#[test]
fn workers_get_a_cleared_environment_plus_what_the_host_declares() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.env.push(("GIVEN".into(), "1".into()));
    let (_m, plugin) = load(&dir, "fixture-crash", p);
    let ctx = call(&plugin, "env").unwrap();
    let names: Vec<String> = ctx.get_as("env").unwrap();
    assert!(names.contains(&"GIVEN".to_owned()), "{names:?}");
    // The test harness runs with cargo's variables (and the user's HOME): none reach plugins.
    assert!(std::env::var_os("CARGO").is_some());
    for host_only in ["CARGO", "HOME", "CARGO_MANIFEST_DIR"] {
        assert!(
            !names.contains(&host_only.to_owned()),
            "{host_only} leaked: {names:?}"
        );
    }
    // Nor do the variables plg-worker takes its parent, limits and directories from.
    let mut limited = policy();
    limited.open_files = Some(256);
    limited.memory_limit = Some(3 << 30);
    let cgroups = tempfile::tempdir().unwrap();
    limited.memory_cgroup = Some(cgroups.path().to_owned());
    let (_m, plugin) = load(&dir, "fixture-crash", limited);
    let names: Vec<String> = call(&plugin, "env").unwrap().get_as("env").unwrap();
    let plg_own: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("PLG_WORKER_") && *n != "PLG_WORKER_KILL_GRACE_MS")
        .collect();
    assert!(plg_own.is_empty(), "{plg_own:?}");
}

#[test]
fn a_worker_over_its_memory_limit_crashes_alone() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    dir.stage("fixture-noop");
    let mut p = policy();
    p.isolate_all = false;
    p.isolate.insert("fixture-crash".into());
    p.memory_limit = Some(2 << 30);
    let (manager, plugin) = load(&dir, "fixture-crash", p);
    let mut ctx = Context::new();
    ctx.set("do", "alloc");
    ctx.set("bytes", 4i64 << 30);
    assert!(matches!(
        plugin.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::WorkerCrashed { .. })
    ));
    // The host and its other plugins keep serving.
    manager
        .get("fixture-noop")
        .unwrap()
        .execute(&mut Context::new())
        .unwrap();
    pid(&plugin);
}

#[test]
fn each_limit_applies_in_the_worker_and_a_plugin_over_one_gets_a_typed_error() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    dir.stage("fixture-noop");
    let mut p = policy();
    p.isolate_all = false;
    p.isolate.insert("fixture-crash".into());
    p.memory_limit = Some(3 << 30);
    p.cpu_seconds = Some(1);
    p.open_files = Some(64);
    let (manager, plugin) = load(&dir, "fixture-crash", p);
    // The host and its other plugins keep serving through each fault below.
    let noop = manager.get("fixture-noop").unwrap();
    // All three are what the worker runs under.
    let limits: String = call(&plugin, "limits").unwrap().get_as("limits").unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {limits}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("Max address space").contains(&(3u64 << 30).to_string()));
    assert!(
        line("Max cpu time").contains("1 1 seconds"),
        "{}",
        line("Max cpu time")
    );
    assert!(
        line("Max open files").contains("64 64"),
        "{}",
        line("Max open files")
    );
    // Open files: the plugin's own call fails, with the system's error; the worker lives.
    let before = pid(&plugin);
    let mut ctx = Context::new();
    ctx.set("do", "open");
    ctx.set("count", 200i64);
    match plugin.execute(&mut ctx).map_err(|e| *e) {
        Err(ExecError::Failed { message, .. }) => {
            assert!(message.contains("Too many open files"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pid(&plugin), before, "the same worker serves on");
    noop.execute(&mut Context::new()).unwrap();
    // CPU seconds: the kernel stops the worker (SIGXCPU, then SIGKILL); the call in flight
    // gets WorkerCrashed and the next call a fresh worker.
    let mut ctx = Context::new();
    ctx.set("do", "spin");
    ctx.set("seconds", 30i64);
    assert!(matches!(
        plugin.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::WorkerCrashed { .. })
    ));
    noop.execute(&mut Context::new()).unwrap();
    assert_ne!(pid(&plugin), before);
}

/// The one cgroup the host made under `root` (a plain directory standing in for a delegated
/// cgroup v2: this VM's memory controller is on cgroup v1), and its files.
fn only_cgroup(root: &Path) -> PathBuf {
    let made: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("plg-worker-"));
    made[0].clone()
}

#[test]
fn with_a_memory_cgroup_each_worker_joins_its_own_with_memory_max_before_the_plugin_runs() {
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    // plg-worker joins it itself, first thing in main.
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let root = tempfile::tempdir().unwrap();
    let mut p = policy();
    p.memory_limit = Some(3 << 30);
    p.memory_cgroup = Some(root.path().to_owned());
    let (manager, plugin) = load(&dir, "fixture-crash", p.clone());
    pid(&plugin);
    let cgroup = only_cgroup(root.path());
    assert_eq!(read(cgroup.join("memory.max")), (3u64 << 30).to_string());
    assert_eq!(read(cgroup.join("memory.swap.max")), "0");
    assert_eq!(read(cgroup.join("cgroup.procs")), "0", "the worker joined");
    drop(plugin);
    drop(manager);
    // Once the worker is reaped, whatever is left in the cgroup is killed and it is removed
    // (on cgroupfs; this stand-in directory is not empty, so it stays).
    assert_eq!(read(cgroup.join("cgroup.kill")), "1");

    // An exec plugin joins it between fork and exec, before its own code runs.
    let root = tempfile::tempdir().unwrap();
    p.memory_cgroup = Some(root.path().to_owned());
    let dir = TempPluginsDir::default();
    let manifest = dir
        .write_manifest(
            "exec-joins",
            r#"{"name":"exec-joins","version":"1.0.0","source":{"mode":"exec","path":"plugin.sh"}}"#,
        )
        .join("plugin.json");
    script(manifest.parent().unwrap(), "exit 1");
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(p.clone());
    assert!(
        manager.load_manifest(&manifest).is_err(),
        "it never shakes hands"
    );
    let cgroup = only_cgroup(root.path());
    assert_eq!(
        read(cgroup.join("cgroup.procs")),
        "0",
        "the exec plugin joined"
    );
    assert_eq!(read(cgroup.join("cgroup.kill")), "1");

    // A cgroup directory set in the policy that cannot be used fails the start, naming it.
    p.memory_cgroup = Some(root.path().join("not-there"));
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(p);
    let failed = manager.load_all().failed;
    match &failed[0].error {
        LoadError::Worker {
            source: WorkerError::Spawn { reason, .. },
            ..
        } => assert!(
            reason.contains("cgroup") && reason.contains("not-there"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pool_spreads_calls_over_its_workers_and_a_crash_takes_down_one_only() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.pool_size = 3;
    let (manager, plugin) = load(&dir, "fixture-crash", p);
    // Three overlapping calls: each goes to the worker with the fewest in flight.
    let sleepers = |n: usize| -> Vec<i64> {
        let threads: Vec<_> = (0..n).map(|_| sleeping_call(&plugin, 1500)).collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect()
    };
    let mut pids = sleepers(3);
    pids.sort();
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "three workers served three overlapping calls"
    );
    // One crashes while another has a call in flight: that call is not affected.
    let busy = sleeping_call(&plugin, 1500);
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(
        call(&plugin, "exit"),
        Err(ExecError::WorkerCrashed { .. })
    ));
    let survivor = busy
        .join()
        .unwrap()
        .expect("the other worker's call finished");
    assert!(pids.contains(&survivor));
    // The pool serves on, and its unload stops every worker.
    pid(&plugin);
    let all: Vec<i64> = sleepers(3);
    let reports = manager.unload("fixture-crash", None).unwrap();
    assert_eq!(reports[0].worker, Some(WorkerStop::ShutDown));
    for pid in all {
        assert!(wait_gone(pid), "worker {pid} outlived the unload");
    }
}

#[test]
fn an_idle_worker_stops_and_the_next_call_starts_it() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.idle_timeout = Some(Duration::from_millis(200));
    let (_m, plugin) = load(&dir, "fixture-crash", p);
    let first = pid(&plugin);
    assert!(wait_gone(first), "the idle worker did not stop");
    assert_ne!(pid(&plugin), first);
}

#[test]
fn a_hundred_crash_restart_cycles_leave_no_zombie() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let mut pids = Vec::new();
    for _ in 0..100 {
        pids.push(pid(&plugin));
        assert!(matches!(
            call(&plugin, "exit"),
            Err(ExecError::WorkerCrashed { .. })
        ));
    }
    for pid in pids {
        // Every worker was reaped: not even a zombie is left.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} was not reaped"
        );
    }
}

/// A plugin program that is not a plg worker: a shell script.
fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("plugin.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn start_error(body: &str, timeout: Duration) -> WorkerError {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-noop");
    let bin = tempfile::tempdir().unwrap();
    let mut p = policy();
    p.program = Some(script(bin.path(), body));
    p.start_timeout = timeout;
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(p);
    let report = manager.load_all();
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    match report.failed.into_iter().next().unwrap().error {
        LoadError::Worker { source, .. } => source,
        other => panic!("expected LoadError::Worker, got {other:?}"),
    }
}

#[test]
fn each_handshake_failure_has_its_error_and_the_stderr_tail() {
    let second = Duration::from_secs(10);
    match start_error("echo starting >&2; sleep 30", Duration::from_millis(300)) {
        WorkerError::HandshakeTimeout { stderr, .. } => assert!(stderr.contains("starting")),
        other => panic!("{other:?}"),
    }
    match start_error("echo 'Hello from a print'; echo why >&2; sleep 5", second) {
        WorkerError::BadHandshake {
            problem: HandshakeProblem::Garbage,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    match start_error("echo '1|7|unix|/tmp/x.sock|grpc'; sleep 5", second) {
        WorkerError::BadHandshake {
            problem: HandshakeProblem::Version,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    match start_error("echo '1|1|tcp|127.0.0.1:1|netrpc'; sleep 5", second) {
        WorkerError::BadHandshake {
            problem: HandshakeProblem::Transport,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    match start_error(
        "[ \"$PLG_PLUGIN_MAGIC_COOKIE\" = nope ] || { echo 'wrong magic cookie' >&2; exit 1; }",
        second,
    ) {
        WorkerError::ExitedBeforeHandshake { status, stderr, .. } => {
            assert!(status.contains("code 1"), "{status}");
            assert!(stderr.contains("wrong magic cookie"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
    // A 20 MB first line is read in bounded memory and reported cut short.
    match start_error(
        "head -c 20000000 /dev/zero | tr '\\0' x; echo; sleep 5",
        second,
    ) {
        WorkerError::BadHandshake {
            problem: HandshakeProblem::Garbage,
            reason,
            ..
        } => assert!(reason.len() < 2000, "{} bytes", reason.len()),
        other => panic!("{other:?}"),
    }
    // Control characters from the plugin are escaped before they reach an error message.
    match start_error("printf '\\033[2Jevil\\n' >&2; exit 3", second) {
        WorkerError::ExitedBeforeHandshake { stderr, .. } => {
            assert!(!stderr.contains('\u{1b}'), "{stderr:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_worker_binary_says_how_to_install_it() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-noop");
    let mut p = policy();
    p.program = Some("/nonexistent/plg-worker".into());
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(p);
    let failed = manager.load_all().failed;
    match &failed[0].error {
        LoadError::Worker {
            source: e @ WorkerError::NotFound { .. },
            ..
        } => assert!(e.to_string().contains("cargo install plg-worker"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_worker_run_by_hand_says_what_it_is_for() {
    let out = std::process::Command::new(worker_bin(Profile::Debug))
        .arg("plugin.json")
        .env_remove("PLG_PLUGIN_MAGIC_COOKIE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not meant to be run by hand"));
}

#[test]
fn a_worker_whose_host_is_not_its_parent_or_whose_limits_are_garbled_exits_before_loading() {
    let dir = TempPluginsDir::default();
    let manifest = dir.stage("fixture-crash").join("plugin.json");
    for (env, says) in [
        // This test, not process 1, is its parent: the host it names is gone.
        (
            vec![("PLG_WORKER_PARENT_PID", "1".to_owned())],
            "not the host (process",
        ),
        (
            vec![
                ("PLG_WORKER_PARENT_PID", std::process::id().to_string()),
                ("PLG_WORKER_RLIMIT_AS", "lots".to_owned()),
            ],
            "PLG_WORKER_RLIMIT_AS is not a whole number",
        ),
    ] {
        let out = std::process::Command::new(worker_bin(Profile::Debug))
            .arg(&manifest)
            .env("PLG_PLUGIN_MAGIC_COOKIE", "d5e1c0f4b2a7plg")
            .envs(env)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{says}");
        assert!(out.stdout.is_empty(), "no handshake: {says}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn a_load_check_that_fails_in_the_worker_is_the_same_load_error_as_in_process() {
    for fixture in [
        "fixture-bad-onload",
        "fixture-bad-layout",
        "fixture-not-plugin",
    ] {
        let dir = TempPluginsDir::default();
        dir.stage(fixture);
        let in_process = PluginManager::local_only(dir.path()).load_all().failed;
        let manager = PluginManager::local_only(dir.path()).with_worker_policy(policy());
        let in_worker = manager.load_all().failed;
        let (here, there) = (&in_process[0].error, &in_worker[0].error);
        assert_eq!(
            std::mem::discriminant(here),
            std::mem::discriminant(there),
            "{fixture}: in-process {here:?}, in a worker {there:?}"
        );
        match there {
            LoadError::OnLoad { message, .. } => {
                assert_eq!(fixture, "fixture-bad-onload");
                assert_eq!(here.to_string(), there.to_string());
                assert!(!message.is_empty());
            }
            LoadError::AbiLayout { api_version, .. } => {
                assert_eq!(fixture, "fixture-bad-layout");
                assert_eq!(api_version, "0.0.0-old");
            }
            LoadError::NotAPlugin { .. } => assert_eq!(fixture, "fixture-not-plugin"),
            other => panic!("{fixture}: {other:?}"),
        }
    }
}

/// The children of process `pid` (every thread's).
fn children(pid: u32) -> Vec<i64> {
    // Every process whose parent is `pid`, from each one's `stat`. (The per-thread
    // `/proc/PID/task/TID/children` lists can skip entries while other tests start and reap
    // processes concurrently.)
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, then the parent's pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// This process's children started as `plg-worker --spare`.
fn spare_pids() -> Vec<i64> {
    children(std::process::id())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"--spare"))
        })
        .collect()
}

/// Waits (bounded) for the manager's spare worker to be started.
fn wait_spare(manager: &PluginManager) {
    let start = Instant::now();
    while !manager.spare_worker_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no spare worker started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_prestarted_worker_is_taken_for_each_start_and_replaced() {
    let dir = TempPluginsDir::default();
    let crash_dir = dir.stage("fixture-crash");
    let mut p = policy();
    p.prestart = true;
    p.env = vec![("PLG_DECLARED".into(), "yes".into())];
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(p);
    wait_spare(&manager);
    let first_spare = spare_pids();
    assert_eq!(first_spare.len(), 1, "{first_spare:?}");

    // The load takes the spare: the plugin runs in that very process.
    let plugin = manager
        .load_manifest(crash_dir.join("plugin.json"))
        .unwrap();
    assert_eq!(pid(&plugin), first_spare[0]);
    // A spare has the policy's environment and nothing of the host's.
    let env = call(&plugin, "env").unwrap();
    let names: Vec<String> = env.get_as("env").unwrap();
    assert!(names.iter().any(|n| n == "PLG_DECLARED"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "CARGO_MANIFEST_DIR"),
        "{names:?}"
    );

    // A new spare stands in; the restart after a crash takes it.
    wait_spare(&manager);
    let second: Vec<i64> = spare_pids()
        .into_iter()
        .filter(|s| *s != first_spare[0])
        .collect();
    assert_eq!(second.len(), 1, "{second:?}");
    match call(&plugin, "exit") {
        Err(ExecError::WorkerCrashed { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(pid(&plugin), second[0]);

    // Unloading and dropping the manager leaves no worker, spare or not.
    wait_spare(&manager);
    let all = spare_pids();
    manager.unload_all();
    drop(plugin);
    drop(manager);
    for pid in all {
        assert!(wait_gone(pid), "worker {pid} outlived its manager");
    }
}

#[test]
fn socket_directories_that_exited_hosts_left_are_removed_and_nothing_else() {
    // A host killed outright cannot remove its workers' socket directories: the next host's
    // first worker removes those of hosts that are gone, holding only the two sockets.
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str, files: &[&str]| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), b"").unwrap();
        }
        d
    };
    let gone = "plg-worker-4000000000-gone";
    make(gone, &["plugin.sock", "frames.sock"]);
    let kept = [
        // Something other than the sockets in it.
        make("plg-worker-4000000000-notes", &["plugin.sock", "notes.txt"]),
        // Its host (this test) is alive.
        make(
            &format!("plg-worker-{}-live", std::process::id()),
            &["plugin.sock"],
        ),
        // Not a worker's name.
        make("plg-worker-x", &["plugin.sock"]),
    ];
    // A link to a directory is not followed, nor removed.
    let target = make("elsewhere", &["plugin.sock"]);
    let link = tmp.path().join("plg-worker-4000000000-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let status = std::process::Command::new(plg_tests::plg_bin(Profile::Debug))
        .args(["run", "fixture-crash", "--isolate", "--plugins-dir"])
        .arg(dir.path())
        .env_remove("PLG_PLUGINS_DIR")
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!tmp.path().join(gone).exists());
    for d in kept.iter().chain([&target]) {
        assert!(d.join("plugin.sock").exists(), "{}", d.display());
    }
    assert!(link.symlink_metadata().is_ok());
}

#[test]
fn a_workers_socket_directory_is_removed_however_the_worker_ends() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let tmp = tempfile::tempdir().unwrap();
    let run = |what: &str| {
        let mut cmd = std::process::Command::new(plg_tests::plg_bin(Profile::Debug));
        cmd.args(["run", "fixture-crash", "--isolate", "--set"])
            .arg(format!("do={what}"))
            .args(["--set", "ms=1500", "--plugins-dir"])
            .arg(dir.path())
            .env_remove("PLG_PLUGINS_DIR")
            // The host makes the worker's socket directory under its temporary directory.
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    // While a call runs, the worker's sockets are in a directory the host made there.
    let mut sleeping = run("sleep").spawn().unwrap();
    let bound = || entries().iter().any(|d| d.join("frames.sock").exists());
    let start = Instant::now();
    while !bound() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let made = entries();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(bound(), "the worker's sockets are in {made:?}");
    assert!(sleeping.wait().unwrap().success());
    assert!(entries().is_empty(), "left behind: {:?}", entries());
    // A worker that crashes mid-call cannot clean up after itself: the host does.
    assert!(!run("segv").status().unwrap().success());
    assert!(entries().is_empty(), "left behind: {:?}", entries());
}

/// `fixture-crash` loaded through a wrapper script around the debug plg-worker: `wrap` is
/// the script's line, with `{worker}` for plg-worker's path. The plugins dir and the
/// script's directory are returned to keep them.
fn load_wrapped(wrap: &str) -> (TempPluginsDir, tempfile::TempDir, PluginManager, Plugin) {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let bin = tempfile::tempdir().unwrap();
    let mut p = policy();
    let worker = worker_bin(Profile::Debug).display().to_string();
    p.program = Some(script(bin.path(), &wrap.replace("{worker}", &worker)));
    let (manager, plugin) = load(&dir, "fixture-crash", p);
    (dir, bin, manager, plugin)
}

#[test]
fn a_wrapper_that_runs_plg_worker_without_exec_still_works() {
    // A configured program that is a script around plg-worker (not `exec`ing it) is started
    // as any program is: the parent-death signal, limits and cgroup come from the pre-exec
    // hook, not from plg-worker's own check of its parent.
    let (_dir, _bin, _m, plugin) = load_wrapped("{worker} \"$@\"");
    assert_ne!(pid(&plugin), std::process::id() as i64);
}

#[test]
fn a_wrapper_script_around_plg_worker_reads_no_host_connection_on_stdin() {
    // plg-worker itself gets its first frames connection as its stdin; a wrapper script gets
    // none (its commands may read stdin, or outlive the worker holding a copy): a command
    // in it that reads stdin finds it empty, and the host connects to the worker's socket.
    let (_dir, _bin, _m, plugin) =
        load_wrapped("cat >/dev/null; echo wrapper-read >&2; exec {worker} \"$@\"");
    assert_ne!(pid(&plugin), std::process::id() as i64);
    // Calls that overlap open more connections, the same way.
    let holder = sleeping_call(&plugin, 300);
    assert_ne!(pid(&plugin), 0);
    holder.join().unwrap().unwrap();
}

#[test]
fn a_start_timeout_past_what_the_clock_holds_is_no_timeout() {
    // Duration::MAX (a CLI's `--check-timeout 18446744073709551615`) must not overflow the
    // deadline: the worker starts and serves, and a failed start is still reported.
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.start_timeout = Duration::MAX;
    p.kill_grace = Duration::MAX;
    let (_m, plugin) = load(&dir, "fixture-crash", p);
    assert_ne!(pid(&plugin), std::process::id() as i64);
    match start_error("echo gone >&2; exit 4", Duration::MAX) {
        WorkerError::ExitedBeforeHandshake { status, .. } => assert!(status.contains("code 4")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn plugin_code_reading_stdin_in_a_worker_reads_nothing_of_the_host() {
    // Cold and taking a spare: the worker's stdin was its first frames connection (and a
    // spare's manifest path); plugin code finds /dev/null there, and the calls go on.
    let dir = TempPluginsDir::default();
    let crash_dir = dir.stage("fixture-crash");
    for prestart in [false, true] {
        let mut p = policy();
        p.prestart = prestart;
        let manager = PluginManager::local_only(dir.path()).with_worker_policy(p);
        if prestart {
            wait_spare(&manager);
        }
        let plugin = manager
            .load_manifest(crash_dir.join("plugin.json"))
            .unwrap();
        // Bounded: a plugin reading the host's connection would wait for bytes forever.
        let mut ctx = Context::new();
        ctx.set("do", "stdin");
        ctx.set_timeout(Duration::from_secs(10));
        plugin.execute(&mut ctx).unwrap();
        assert_eq!(ctx.get_str("read"), Ok(""), "prestart: {prestart}");
        assert_ne!(pid(&plugin), std::process::id() as i64);
    }
}

#[test]
fn a_call_whose_new_connection_gets_no_hello_ends_at_its_deadline() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let worker = pid(&plugin);
    // One call holds the one idle connection; the worker then stops answering anything.
    let holder = sleeping_call(&plugin, 1000);
    std::thread::sleep(Duration::from_millis(200));
    signal(worker, rustix::process::Signal::STOP);
    // The next call needs a new connection, whose hello cannot come.
    let mut ctx = Context::new();
    ctx.set("do", "pid");
    ctx.set_timeout(Duration::from_millis(300));
    let outcome = plugin.execute(&mut ctx);
    signal(worker, rustix::process::Signal::CONT);
    assert!(
        matches!(
            outcome.as_ref().map_err(|e| &**e),
            Err(ExecError::DeadlineExceeded { .. })
        ),
        "{outcome:?}"
    );
    holder.join().unwrap().unwrap();
}

#[test]
fn plg_run_isolate_runs_the_plugin_in_a_worker_and_kill_9_of_the_host_leaves_no_worker() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    // The same plugin, in-process and isolated: only the pid differs.
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(plg_tests::plg_bin(Profile::Debug));
        cmd.args(["run", "fixture-crash", "--set", "do=pid", "--plugins-dir"])
            .arg(dir.path())
            .args(extra)
            .env_remove("PLG_PLUGINS_DIR");
        cmd
    };
    let out = run(&["--isolate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["pid"].as_i64().is_some(), "{json}");
    // A crash in the worker is an error of plg run, not a crash of plg.
    let out = run(&["--isolate", "--set", "do=segv"]).output().unwrap();
    assert_ne!(out.status.code(), None, "plg itself was killed by a signal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("signal 11"));

    let mut host = run(&["--isolate", "--set", "do=hang"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let worker = loop {
        if let Some(&w) = children(host.id()).first() {
            break w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no worker started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    host.kill().unwrap(); // SIGKILL: the host runs no cleanup.
    host.wait().unwrap();
    assert!(wait_gone(worker), "worker {worker} outlived its host");
}

/// Whether the Python sample can run here (grpcio installed); `.ci/run` installs it, so in CI
/// this is always true and the Python tests always run.
fn python_ready() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, grpc_health"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("PLG_REQUIRE_POLYGLOT").is_some() {
        panic!("python3 with grpcio, grpcio-tools and grpcio-health-checking is required");
    }
    ok
}

#[test]
fn the_python_sample_runs_as_an_exec_plugin_with_the_same_host_code() {
    if !python_ready() {
        eprintln!("skipped: python3 lacks grpcio (pip install grpcio grpcio-tools grpcio-health-checking)");
        return;
    }
    let dir = TempPluginsDir::default();
    dir.stage_files("greet-python");
    dir.stage("hello");
    let manager = PluginManager::local_only(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let greet = |name: &str| {
        let plugin = manager.get(name).unwrap();
        let mut ctx = Context::new();
        ctx.set("name", "Ada");
        plugin.execute(&mut ctx).unwrap();
        ctx.get_str("greeting").unwrap().to_owned()
    };
    assert_eq!(greet("greet-python"), greet("hello"));
    let python = manager.get("greet-python").unwrap();
    assert_eq!(python.isolation(), Isolation::Process);
    // Its refusal is the same typed error a Rust plugin gives.
    let mut ctx = Context::new();
    ctx.set("name", 5);
    assert!(matches!(
        python.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::InvalidInput { .. })
    ));
    let reports = manager.unload("greet-python", None).unwrap();
    assert_eq!(reports[0].worker, Some(WorkerStop::ShutDown));
}

/// A library run in a worker is hot-upgraded by a new worker: handles move once it serves,
/// and the old worker is shut down.
#[test]
fn a_library_in_a_worker_is_upgraded_to_a_new_worker() {
    let dir = TempPluginsDir::default();
    let version_dir = dir.stage("hello");
    let (manager, hello) = load(&dir, "hello", policy());
    let greeting = |plugin: &Plugin| {
        let mut ctx = Context::new();
        ctx.set("name", "Ada");
        plugin.execute(&mut ctx).unwrap();
        ctx.get_str("greeting").unwrap().to_owned()
    };
    assert_eq!(greeting(&hello), "Hello, Ada!");
    let howdy = plg_tests::build_edited(
        "hello",
        "1.2.0",
        "-Howdy",
        &[("Hello, {name}!", "Howdy, {name}!")],
    );
    dir.replace_library(&version_dir, "hello", &howdy);
    match manager.reload("hello") {
        Ok(Reload::Upgraded {
            retired: Retired::Unloaded(report),
            ..
        }) => assert_eq!(report.worker, Some(WorkerStop::ShutDown)),
        other => panic!("expected an upgrade that shut the old worker down, got {other:?}"),
    }
    assert_eq!(hello.isolation(), Isolation::Process);
    assert_eq!(
        greeting(&hello),
        "Howdy, Ada!",
        "the handle follows the upgrade"
    );
    assert!(matches!(
        manager.reload("hello"),
        Ok(Reload::Unchanged { .. })
    ));
}

/// An exec plugin is hot-upgraded like a library: the new program starts (a process of its
/// own), handles move to it, and the old process is shut down. Unchanged bytes do nothing.
#[test]
fn an_edited_exec_plugin_is_upgraded_to_a_new_process() {
    if !python_ready() {
        eprintln!("skipped: python3 lacks grpcio (pip install grpcio grpcio-tools grpcio-health-checking)");
        return;
    }
    let dir = TempPluginsDir::default();
    let staged = dir.stage_files("greet-python");
    let manager = PluginManager::local_only(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let python = manager.get("greet-python").unwrap();
    let greet = || {
        let mut ctx = Context::new();
        ctx.set("name", "Ada");
        python.execute(&mut ctx).unwrap();
        ctx.get_str("greeting").unwrap().to_owned()
    };
    assert_eq!(greet(), "Hello, Ada!");
    assert!(matches!(
        manager.reload("greet-python"),
        Ok(Reload::Unchanged { .. })
    ));

    // Saved as editors save: a new file renamed over the old one.
    let program = staged.join("plugin.py");
    let text = std::fs::read_to_string(&program).unwrap();
    let edited = text.replace(r#"f"Hello, {name}!""#, r#"f"Howdy, {name}!""#);
    assert_ne!(
        text, edited,
        "the sample's greeting moved; update this test"
    );
    let saving = staged.join(".plugin.py.partial");
    std::fs::write(&saving, edited).unwrap();
    std::fs::set_permissions(&saving, std::fs::metadata(&program).unwrap().permissions()).unwrap();
    std::fs::rename(&saving, &program).unwrap();

    match manager.reload("greet-python") {
        Ok(Reload::Upgraded {
            retired: Retired::Unloaded(report),
            ..
        }) => assert_eq!(report.worker, Some(WorkerStop::ShutDown)),
        other => panic!("expected an upgrade that shut the old process down, got {other:?}"),
    }
    assert_eq!(greet(), "Howdy, Ada!", "the handle follows the upgrade");
    assert!(matches!(
        manager.reload("greet-python"),
        Ok(Reload::Unchanged { .. })
    ));
}

#[test]
fn the_python_samples_copy_of_the_proto_is_the_protocols() {
    let root = plg_tests::workspace_root();
    assert_eq!(
        std::fs::read_to_string(root.join("protocol/proto/plg/v1/plugin.proto")).unwrap(),
        std::fs::read_to_string(root.join("plugins/greet-python/proto/plg/v1/plugin.proto"))
            .unwrap(),
        "copy protocol/proto/plg/v1/plugin.proto to plugins/greet-python/proto/plg/v1/"
    );
}

#[test]
fn the_go_plugin_written_with_go_plugin_serve_runs_with_the_same_host_code() {
    let have_go = std::process::Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
        && Path::new("/usr/share/gocode/src/github.com/hashicorp/go-plugin").is_dir();
    if !have_go {
        assert!(
            std::env::var_os("PLG_REQUIRE_POLYGLOT").is_none(),
            "go and Debian's golang-github-hashicorp-go-plugin-dev are required"
        );
        eprintln!("skipped: apt-get install golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev");
        return;
    }
    let dir = TempPluginsDir::default();
    let staged = dir.stage_files("greet-go");
    dir.stage("hello");
    let built =
        std::process::Command::new(plg_tests::workspace_root().join("scripts/build-go-sample.sh"))
            .arg(staged.join("greet-go"))
            .output()
            .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let manager = PluginManager::local_only(dir.path());
    let report = manager.load_all();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let greet = |name: &str| {
        let plugin = manager.get(name).unwrap();
        let mut ctx = Context::new();
        ctx.set("name", "Ada");
        ctx.set("kept", 7);
        plugin.execute(&mut ctx).unwrap();
        assert_eq!(ctx.get::<i64>("kept").unwrap(), 7);
        ctx.get_str("greeting").unwrap().to_owned()
    };
    assert_eq!(greet("greet-go"), greet("hello"));
    let go = manager.get("greet-go").unwrap();
    let mut ctx = Context::new();
    ctx.set("name", 5);
    assert!(matches!(
        go.execute(&mut ctx).map_err(|e| *e),
        Err(ExecError::InvalidInput { .. })
    ));
    let reports = manager.unload("greet-go", None).unwrap();
    assert_eq!(reports[0].worker, Some(WorkerStop::ShutDown));
}

#[test]
fn plg_list_shows_each_plugins_runtime_without_running_it() {
    let dir = TempPluginsDir::default();
    dir.stage("hello");
    dir.stage_with("fixture-crash", "fixture-crash", |m| {
        m["isolation"] = "process".into()
    });
    dir.stage_files("greet-python");
    let out = std::process::Command::new(plg_tests::plg_bin(Profile::Debug))
        .args(["list", "--plugins-dir"])
        .arg(dir.path())
        .env_remove("PLG_PLUGINS_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let runtime = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().find(|c| c.starts_with("runtime=")))
            .unwrap_or_else(|| panic!("no runtime for {name}: {text}"))
            .to_owned()
    };
    assert_eq!(runtime("hello"), "runtime=in-process");
    assert_eq!(runtime("fixture-crash"), "runtime=worker");
    assert_eq!(runtime("greet-python"), "runtime=exec");
    assert!(
        text.contains("greet-python") && text.contains("found"),
        "{text}"
    );
}

#[test]
fn exec_manifests_are_checked_field_by_field() {
    let dir = TempPluginsDir::default();
    let bad = [
        (r#"{"mode":"exec","path":"../x"}"#, "source.path"),
        (
            r#"{"mode":"exec","path":"p","env":{"1X":"v"}}"#,
            "source.env.1X",
        ),
        (r#"{"mode":"local_so","path":"p","args":["a"]}"#, "source"),
        (r#"{"mode":"exec","path":"p","rev":"main"}"#, "source"),
    ];
    for (i, (source, field)) in bad.iter().enumerate() {
        let manifest = format!(r#"{{"name":"x{i}","version":"1.0.0","source":{source}}}"#);
        let path = dir
            .write_manifest(&format!("x{i}"), &manifest)
            .join("plugin.json");
        match plg_loader::Manifest::from_path(&path) {
            Err(plg_loader::ManifestError::Invalid { field: f, .. }) => {
                assert_eq!(&f, field, "{source}")
            }
            other => panic!("{source}: {other:?}"),
        }
    }
    let path = dir
        .write_manifest("iso", r#"{"name":"iso","version":"1.0.0","source":{"mode":"local_so","path":"p"},"isolation":"sandbox"}"#)
        .join("plugin.json");
    assert!(matches!(
        plg_loader::Manifest::from_path(&path),
        Err(plg_loader::ManifestError::Invalid { ref field, .. }) if field == "isolation"
    ));
    // A missing program is a load error naming it; nothing is started.
    let path = dir
        .write_manifest(
            "gone",
            r#"{"name":"gone","version":"1.0.0","source":{"mode":"exec","path":"nothere"}}"#,
        )
        .join("plugin.json");
    let manager = PluginManager::local_only(dir.path());
    assert!(matches!(
        manager.load_manifest(&path),
        Err(LoadError::NotFound { .. })
    ));
}

#[test]
fn an_exec_plugin_cannot_pass_itself_off_as_a_failed_load_check() {
    // Only plg-worker may report a load check in place of its handshake; from an exec plugin
    // the line is garbage before the handshake, like any other.
    let dir = TempPluginsDir::default();
    let plugin = dir
        .write_manifest(
            "liar",
            r#"{"name":"liar","version":"1.0.0","source":{"mode":"exec","path":"plugin.sh"}}"#,
        )
        .join("plugin.json");
    script(
        plugin.parent().unwrap(),
        r#"echo 'plg-load-error {"kind":"OnLoad","plugin":"liar@1.0.0","message":"m"}'; sleep 5"#,
    );
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(policy());
    match manager.load_manifest(&plugin) {
        Err(LoadError::Worker {
            source:
                WorkerError::BadHandshake {
                    problem: HandshakeProblem::Garbage,
                    ..
                },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn plg_new_lang_python_scaffolds_a_plugin_that_runs_as_it_is() {
    let root = plg_tests::workspace_root();
    assert_eq!(
        std::fs::read_to_string(root.join("plugins/greet-python/plugin.py")).unwrap(),
        std::fs::read_to_string(root.join("loader/src/packaging/scaffold/plugin.py")).unwrap(),
        "plg new --lang python writes the greet-python sample: keep the two files equal"
    );
    if !python_ready() {
        eprintln!("skipped running it: python3 lacks grpcio");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let plg = |args: &[&str]| {
        let out = std::process::Command::new(plg_tests::plg_bin(Profile::Debug))
            .args(args)
            .current_dir(work.path())
            .env_remove("PLG_PLUGINS_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = plg(&[
        "new",
        "greeter",
        "--lang",
        "python",
        "--path",
        "plugins/greeter",
    ]);
    assert!(
        said.contains("plg run greeter --plugins-dir plugins"),
        "{said}"
    );
    let out = plg(&[
        "run",
        "greeter",
        "--plugins-dir",
        "plugins",
        "--set",
        "name=you",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["greeting"], "Hello, you!");
}

#[test]
fn a_panic_abort_plugin_is_refused_in_process_by_policy_and_runs_in_a_worker() {
    let lib = plg_tests::build_edited("fixture-crash", "0.1.0", "panic-abort", &[]);
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let staged = dir.path().join("fixture-crash/0.1.0");
    std::fs::copy(
        &lib,
        staged.join(plg_tests::library_file_name("fixture-crash")),
    )
    .unwrap();
    // The default: it loads, with a warning, and says so.
    let (_m, plugin) = load(&dir, "fixture-crash", WorkerPolicy::default());
    assert_eq!(plugin.aborts_on_panic(), Some(true));
    drop(_m);
    // A host that refuses it in-process gets the typed error naming both fixes.
    let mut strict = WorkerPolicy::default();
    strict.refuse_panic_abort = true;
    let manager = PluginManager::local_only(dir.path()).with_worker_policy(strict.clone());
    let failed = manager.load_all().failed;
    match &failed[0].error {
        e @ LoadError::PanicAborts { .. } => {
            let text = e.to_string();
            assert!(
                text.contains("panic = \"unwind\"") && text.contains("isolation"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // In a worker, its abort is a crash of the worker only.
    strict.program = Some(worker_bin(Profile::Debug));
    strict.isolate.insert("fixture-crash".into());
    let (_m, plugin) = load(&dir, "fixture-crash", strict);
    assert!(matches!(
        call(&plugin, "abort"),
        Err(ExecError::WorkerCrashed { .. })
    ));
    pid(&plugin);
}

#[test]
fn a_worker_that_fails_its_health_check_is_replaced() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let mut p = policy();
    p.health_interval = Some(Duration::from_millis(100));
    let (_m, plugin) = load(&dir, "fixture-crash", p);
    let first = pid(&plugin);
    // A stopped process answers nothing: the health check fails and the worker is killed.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &first.to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(wait_gone(first), "the unhealthy worker was not killed");
    let after = loop {
        match call(&plugin, "pid") {
            Ok(ctx) => break ctx.get::<i64>("pid").unwrap(),
            Err(ExecError::WorkerCrashed { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_ne!(after, first);
}

#[test]
fn calls_from_eight_threads_run_concurrently_in_one_worker() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let first = pid(&plugin);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let mut ctx = Context::new();
                    ctx.set("input", format!("{i}-{n}"));
                    plugin.execute(&mut ctx).unwrap();
                    assert_eq!(ctx.get_str("echo").unwrap(), format!("{i}-{n}"));
                    assert_eq!(
                        ctx.get::<i64>("pid").unwrap(),
                        first,
                        "one worker serves all"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_descriptor_the_host_left_inheritable_does_not_reach_the_worker() {
    let dir = TempPluginsDir::default();
    dir.stage("fixture-crash");
    let secret = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::File::open(secret.path()).unwrap();
    // As a C library might leave it: without close-on-exec.
    rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::empty()).unwrap();
    let (_m, plugin) = load(&dir, "fixture-crash", policy());
    let ctx = call(&plugin, "fds").unwrap();
    let open: Vec<String> = ctx.get_as("fds").unwrap();
    let secret = secret.path().to_string_lossy().into_owned();
    assert!(!open.is_empty(), "the worker lists its descriptors");
    assert!(
        !open.contains(&secret),
        "{secret} leaked into the worker: {open:?}"
    );
    drop(file);
}
