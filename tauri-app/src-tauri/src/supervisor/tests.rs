//! The supervisor against real processes: small `sh` scripts that play the sidecar (each test
//! names the misbehaviour it plays), and the real Python sidecar when the repository's .venv
//! is there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::timeout;

use super::*;
use crate::keystore::fake::MemoryKeyStore;
use crate::process::Grace;
use crate::restart::RestartPolicy;
use crate::test_dir::TempDir;

fn sh(script: String) -> CommandFactory {
    Box::new(move || {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(&script);
        Ok(command)
    })
}

fn config(dir: &Path) -> SupervisorConfig {
    SupervisorConfig {
        data_dir: dir.join("data"),
        ready_timeout: Duration::from_secs(10),
        policy: RestartPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
            stable_after: Duration::from_secs(30),
            max_startup_failures: 3,
        },
        grace: Grace {
            after_stdin: Duration::from_secs(3),
            after_term: Duration::from_secs(3),
        },
    }
}

type Seen = Arc<Mutex<Vec<Status>>>;

fn start(config: SupervisorConfig, factory: CommandFactory) -> (Supervisor, Seen) {
    start_with_keys(config, factory, Arc::new(MemoryKeyStore::default()))
}

fn start_with_keys(
    config: SupervisorConfig,
    factory: CommandFactory,
    keystore: Arc<dyn KeyStore>,
) -> (Supervisor, Seen) {
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let observer = Box::new(move |s: &Status| log.lock().unwrap().push(s.clone()));
    let (supervisor, run) = Supervisor::new(config, factory, keystore, observer);
    tokio::spawn(run);
    (supervisor, seen)
}

async fn wait_for(supervisor: &Supervisor, what: impl Fn(&Status) -> bool) -> Status {
    let mut rx = supervisor.status.clone();
    let found = timeout(Duration::from_secs(20), async {
        loop {
            {
                let status = rx.borrow_and_update();
                if what(&status) {
                    return status.clone();
                }
            }
            rx.changed().await.expect("supervisor gone");
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("status never came; last: {:?}", supervisor.status()))
}

/// Alive and not a zombie (a container's init may never reap what we orphan and kill).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

async fn gone_soon(pid: u32) -> bool {
    for _ in 0..100 {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn q(path: &Path) -> String {
    format!("'{}'", path.display())
}

const READY: &str = r#"printf '{"event": "ready", "port": %d, "pid": %d}\n'"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_line_env_and_a_stop_by_closing_stdin() {
    let tmp = TempDir::new();
    let (env, closed) = (tmp.path().join("env"), tmp.path().join("closed"));
    let script = format!(
        r#"printf '%s|%s' "$KENSA_TOKEN" "$KENSA_DATA_DIR" > {env}; {READY} 4321 $$; cat >/dev/null; echo yes > {closed}"#,
        env = q(&env),
        closed = q(&closed),
    );
    let config = config(tmp.path());
    let data_dir = config.data_dir.clone();
    let (supervisor, seen) = start(config, sh(script));

    let endpoint = supervisor.endpoint().await.expect("ready");
    assert_eq!(endpoint.port, 4321);
    assert_eq!(endpoint.base_url, "http://127.0.0.1:4321");
    assert_eq!(endpoint.generation, 1);
    let pid = endpoint.pid.expect("pid in the ready line");
    assert!(alive(pid));
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        format!("{}|{}", endpoint.token, data_dir.display())
    );
    assert_eq!(endpoint.token.len(), 64);

    let began = Instant::now();
    supervisor.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "needed more than closing stdin"
    );
    assert!(closed.exists(), "the script never saw its stdin close");
    assert!(!alive(pid));
    assert_eq!(supervisor.status(), Status::Stopped);
    let states: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.view().state)
        .collect();
    assert_eq!(states, ["starting", "ready", "stopped"]);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The hand-over through the real spawn path: a child that records what it was started with, as
/// `/proc` shows it to every process of the same user, and its first stdin line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_key_reaches_the_sidecar_only_as_its_first_stdin_line() {
    let tmp = TempDir::new();
    let environ = tmp.path().join("environ");
    let cmdline = tmp.path().join("cmdline");
    let lines = tmp.path().join("lines");
    let script = format!(
        r#"cat /proc/$$/environ > {environ}; cat /proc/$$/cmdline > {cmdline}; IFS= read -r line; printf '%s\n' "$line" >> {lines}; {READY} 4400 $$; cat >/dev/null"#,
        environ = q(&environ),
        cmdline = q(&cmdline),
        lines = q(&lines),
    );
    let factory: CommandFactory = Box::new(move || {
        let mut command = Command::new("/bin/sh");
        // As if the shell itself had been started with desk mode's key file in its environment.
        command
            .arg("-c")
            .arg(&script)
            .env("KENSA_KEY_FILE", "/elsewhere/key");
        Ok(command)
    });
    let keystore = Arc::new(MemoryKeyStore::default());
    let config = config(tmp.path());
    let data_dir = config.data_dir.clone();
    let (supervisor, seen) = start_with_keys(config, factory, keystore.clone());
    supervisor.endpoint().await.expect("ready");

    let ((service, account), hex) = keystore.only_entry();
    assert_eq!(service, "kensa");
    let resolved = std::fs::canonicalize(&data_dir).unwrap();
    assert_eq!(account, format!("data-key:{}", resolved.display()));
    assert_eq!(hex.len(), 64);
    let line = format!("{{\"data_key\":\"{hex}\"}}\n");
    assert_eq!(std::fs::read_to_string(&lines).unwrap(), line);

    let environ = std::fs::read(&environ).unwrap();
    assert!(
        contains(&environ, b"KENSA_DATA_DIR="),
        "no environment dumped"
    );
    assert!(
        !contains(&environ, hex.as_bytes()),
        "the key is in the environment"
    );
    assert!(
        !contains(&environ, b"KENSA_KEY_FILE="),
        "desk mode's key file leaked through"
    );
    let cmdline = std::fs::read(&cmdline).unwrap();
    let argv: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(argv.last().copied(), Some(KEY_STDIN_ARG.as_bytes()));
    assert!(!contains(&cmdline, hex.as_bytes()), "the key is in argv");

    // A restart hands over the same key (it opens the same database) and stores no second one.
    supervisor.restart().await;
    wait_for(
        &supervisor,
        |s| matches!(s, Status::Ready(e) if e.generation == 2),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&lines).unwrap(),
        format!("{line}{line}")
    );
    assert_eq!(keystore.only_entry().1, hex);
    supervisor.shutdown().await;

    // Nothing the webview is told carries it either.
    for status in seen.lock().unwrap().iter() {
        assert!(!format!("{status:?}").contains(&hex));
        if let Status::Ready(endpoint) = status {
            assert!(!serde_json::to_string(endpoint).unwrap().contains(&hex));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keystore_failure_is_the_error_screen_and_nothing_starts() {
    let tmp = TempDir::new();
    let spawned = tmp.path().join("spawned");
    let script = format!(
        r#"touch {s}; {READY} 4401 $$; cat >/dev/null"#,
        s = q(&spawned)
    );
    let keystore = Arc::new(MemoryKeyStore::failing(
        "the OS keystore failed: no Secret Service on the session bus",
    ));
    let (supervisor, seen) = start_with_keys(config(tmp.path()), sh(script), keystore);
    let error = supervisor.endpoint().await.unwrap_err();
    assert_eq!(
        error,
        "cannot get the tablet's data key: the OS keystore failed: no Secret Service on the \
         session bus"
    );
    let states: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.view().state)
        .collect();
    assert_eq!(states, ["starting", "failed"], "retried without a person");
    assert!(!spawned.exists(), "a sidecar ran without its key");
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stubborn_tree_gets_sigterm_then_sigkill() {
    let tmp = TempDir::new();
    let grandchild = tmp.path().join("grandchild");
    // Ignores stdin and SIGTERM (and so does the grandchild, which inherits the ignore).
    let script = format!(
        r#"trap '' TERM; sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {gc}; {READY} 1111 $$; while :; do sleep 0.05; done"#,
        gc = q(&grandchild),
    );
    let mut config = config(tmp.path());
    config.grace = Grace {
        after_stdin: Duration::from_millis(300),
        after_term: Duration::from_millis(300),
    };
    let (supervisor, _) = start(config, sh(script));
    let pid = supervisor.endpoint().await.unwrap().pid.unwrap();
    let grandchild = read_pid(&grandchild);
    assert!(alive(grandchild));

    let began = Instant::now();
    supervisor.shutdown().await;
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "skipped a step"
    );
    assert!(!alive(pid));
    assert!(
        gone_soon(grandchild).await,
        "grandchild {grandchild} survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reaches_the_whole_group() {
    let tmp = TempDir::new();
    let grandchild = tmp.path().join("grandchild");
    let script = format!(
        r#"sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {gc}; {READY} 1112 $$; while :; do sleep 0.05; done"#,
        gc = q(&grandchild),
    );
    let mut config = config(tmp.path());
    config.grace.after_stdin = Duration::from_millis(200);
    config.grace.after_term = Duration::from_secs(5);
    let (supervisor, _) = start(config, sh(script));
    supervisor.endpoint().await.unwrap();
    let grandchild = read_pid(&grandchild);

    let began = Instant::now();
    supervisor.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "SIGTERM did not end it"
    );
    assert!(gone_soon(grandchild).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_clean_exit_leaves_behind_is_killed_too() {
    let tmp = TempDir::new();
    let grandchild = tmp.path().join("grandchild");
    let script = format!(
        r#"sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {gc}; {READY} 1113 $$; cat >/dev/null"#,
        gc = q(&grandchild),
    );
    let (supervisor, _) = start(config(tmp.path()), sh(script));
    supervisor.endpoint().await.unwrap();
    let grandchild = read_pid(&grandchild);
    supervisor.shutdown().await;
    assert!(gone_soon(grandchild).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_2_before_ready_is_the_error_screen_at_once() {
    let tmp = TempDir::new();
    let script =
        "echo 'kensa sidecar: cannot open the device database: not SQLite' >&2; exit 2".to_owned();
    let (supervisor, seen) = start(config(tmp.path()), sh(script));
    let error = supervisor.endpoint().await.unwrap_err();
    assert!(
        error.contains("exited (exit status: 2) before it was ready"),
        "{error}"
    );
    assert!(error.contains("cannot open the device database"), "{error}");
    let states: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.view().state)
        .collect();
    assert_eq!(states, ["starting", "failed"]);
    let view = supervisor.status().view();
    assert_eq!(view.state, "failed");
    assert_eq!(view.error.as_deref(), Some(error.as_str()));
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_line_instead_of_the_ready_line_is_retried_then_given_up() {
    let tmp = TempDir::new();
    let script = "echo 'INFO: Started server process'; sleep 1000".to_owned();
    let mut config = config(tmp.path());
    config.policy.max_startup_failures = 2;
    config.grace.after_stdin = Duration::from_millis(100);
    let (supervisor, seen) = start(config, sh(script));
    let error = supervisor.endpoint().await.unwrap_err();
    assert!(error.contains("INFO: Started server process"), "{error}");
    let seen = seen.lock().unwrap();
    let states: Vec<_> = seen.iter().map(|s| s.view().state).collect();
    assert_eq!(states, ["starting", "restarting", "starting", "failed"]);
    assert_eq!(seen[1].view().retry_in_ms, Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_runs_into_the_ready_timeout() {
    let tmp = TempDir::new();
    let mut config = config(tmp.path());
    config.ready_timeout = Duration::from_millis(300);
    config.policy.max_startup_failures = 1;
    config.grace.after_stdin = Duration::from_millis(100);
    let (supervisor, _) = start(config, sh("exec sleep 1000".to_owned()));
    let error = supervisor.endpoint().await.unwrap_err();
    assert!(
        error.contains("did not print its ready line within 0.3 s"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_ready_restarts_with_a_new_port_and_token() {
    let tmp = TempDir::new();
    let count = tmp.path().join("count");
    // First run: ready, then a crash; second run: ready and stays.
    let script = format!(
        r#"n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; {READY} $((5000+n)) $$; if [ $n -eq 1 ]; then echo 'Segmentation fault' >&2; exit 139; fi; cat >/dev/null"#,
        c = q(&count),
    );
    let (supervisor, seen) = start(config(tmp.path()), sh(script));
    let second = wait_for(
        &supervisor,
        |s| matches!(s, Status::Ready(e) if e.generation == 2),
    )
    .await;
    let Status::Ready(second) = second else {
        unreachable!()
    };
    assert_eq!(second.port, 5002);
    assert_eq!(supervisor.endpoint().await.unwrap(), second);

    let seen = seen.lock().unwrap().clone();
    let states: Vec<_> = seen.iter().map(|s| s.view().state).collect();
    assert_eq!(
        states,
        ["starting", "ready", "restarting", "starting", "ready"]
    );
    let Status::Ready(first) = &seen[1] else {
        unreachable!()
    };
    assert_eq!((first.port, first.generation), (5001, 1));
    assert_ne!(first.token, second.token);
    let restarting = seen[2].view();
    assert_eq!(restarting.attempt, Some(1));
    let error = restarting.error.unwrap();
    assert!(error.contains("exit status: 139"), "{error}");
    assert!(error.contains("Segmentation fault"), "{error}");
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_again_after_giving_up() {
    let tmp = TempDir::new();
    let count = tmp.path().join("count");
    let script = format!(
        r#"n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; if [ $n -eq 1 ]; then exit 2; fi; {READY} 6000 $$; cat >/dev/null"#,
        c = q(&count),
    );
    let (supervisor, _) = start(config(tmp.path()), sh(script));
    assert!(supervisor.endpoint().await.is_err());
    supervisor.restart().await;
    let endpoint = supervisor.endpoint().await.expect("ready after try again");
    assert_eq!((endpoint.port, endpoint.generation), (6000, 2));
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_ready_replaces_the_sidecar() {
    let tmp = TempDir::new();
    let script = format!(r#"{READY} 7000 $$; cat >/dev/null"#);
    let (supervisor, _) = start(config(tmp.path()), sh(script));
    let first = supervisor.endpoint().await.unwrap();
    supervisor.restart().await;
    let second = wait_for(
        &supervisor,
        |s| matches!(s, Status::Ready(e) if e.generation == 2),
    )
    .await;
    assert!(!alive(first.pid.unwrap()));
    let Status::Ready(second) = second else {
        unreachable!()
    };
    assert_ne!(second.token, first.token);
    supervisor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_is_reported_by_name() {
    let tmp = TempDir::new();
    let factory: CommandFactory = Box::new(|| Ok(Command::new("/nonexistent/kensa-sidecar")));
    let (supervisor, _) = start(config(tmp.path()), factory);
    let error = supervisor.endpoint().await.unwrap_err();
    assert!(
        error.starts_with("cannot start the sidecar (/nonexistent/kensa-sidecar)"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_view_serializes_for_the_webview() {
    let json = serde_json::to_value(
        Status::Restarting {
            generation: 3,
            attempt: 2,
            delay: Duration::from_millis(1500),
            error: "boom".into(),
        }
        .view(),
    )
    .unwrap();
    assert_eq!(
        json,
        serde_json::json!({"state": "restarting", "generation": 3, "attempt": 2,
                           "retryInMs": 1500, "error": "boom"})
    );
    let endpoint = Endpoint {
        port: 1,
        token: "t".into(),
        base_url: "http://127.0.0.1:1".into(),
        generation: 1,
        pid: None,
    };
    let ready = serde_json::to_value(Status::Ready(endpoint.clone()).view()).unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"state": "ready", "generation": 1, "port": 1})
    );
    assert_eq!(
        serde_json::to_value(endpoint).unwrap(),
        serde_json::json!({"port": 1, "token": "t", "baseUrl": "http://127.0.0.1:1",
                           "generation": 1, "pid": null})
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn http_get(port: u16, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn python_sidecar(python: &Path) -> CommandFactory {
    let (python, root) = (python.to_owned(), repo_root());
    Box::new(move || {
        let mut command = Command::new(&python);
        command.args(["-m", "sidecar"]).current_dir(&root);
        Ok(command)
    })
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// The protocol end to end with the real sidecar (`python -m sidecar` from the repository's
/// .venv): the data key on stdin opens an encrypted store, then the ready line, the token, a
/// restart that opens the same store again, and exit when stdin closes; another tablet's key is
/// the error screen at once with every file left as it was. Skipped where there is no .venv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_python_sidecar() {
    let python = repo_root().join(".venv/bin/python");
    if !python.exists() {
        eprintln!("skipped: no {}", python.display());
        return;
    }
    let tmp = TempDir::new();
    let mut config = config(tmp.path());
    config.ready_timeout = Duration::from_secs(60);
    config.grace.after_stdin = Duration::from_secs(10);
    let keystore = Arc::new(MemoryKeyStore::default());
    let (supervisor, _) =
        start_with_keys(config.clone(), python_sidecar(&python), keystore.clone());
    let endpoint = supervisor.endpoint().await.expect("the sidecar got ready");
    let (port, token) = (endpoint.port, endpoint.token.clone());

    let (health, anonymous, authorized) = tokio::task::spawn_blocking(move || {
        (
            http_get(port, "/health", None),
            http_get(port, "/sessions/interrupted", None),
            http_get(port, "/sessions/interrupted", Some(&token)),
        )
    })
    .await
    .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(anonymous.contains("unauthorized"), "{anonymous}");
    // The token got through the guard; what is missing now is a user's login.
    assert!(authorized.contains("login_required"), "{authorized}");
    let database = tmp.path().join("data/kensa.db");
    let stored = std::fs::read(&database).unwrap();
    assert!(stored.len() >= 16, "{} bytes", stored.len());
    assert_ne!(
        &stored[..16],
        b"SQLite format 3\0",
        "the store is plaintext"
    );

    // The next spawn gets the same key from the keystore and opens the same store.
    supervisor.restart().await;
    let again = wait_for(
        &supervisor,
        |s| matches!(s, Status::Ready(e) if e.generation == 2),
    )
    .await;
    let Status::Ready(again) = again else {
        unreachable!()
    };
    let pid = again.pid.expect("launch.py reports its pid");
    let health = tokio::task::spawn_blocking(move || http_get(again.port, "/health", None))
        .await
        .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let began = Instant::now();
    supervisor.shutdown().await;
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "the sidecar did not exit when its stdin closed"
    );
    assert!(!alive(pid));

    // Another tablet's key in the keystore: status 2, no retry, nothing under the folder touched.
    let before = snapshot(&config.data_dir);
    let ((service, account), _) = keystore.only_entry();
    keystore
        .set(&service, &account, &DataKey::generate().hex())
        .unwrap();
    let (refused, seen) = start_with_keys(config.clone(), python_sidecar(&python), keystore);
    let error = refused.endpoint().await.unwrap_err();
    assert!(error.contains("(exit status: 2)"), "{error}");
    assert!(
        error.contains("cannot be opened with this data key"),
        "{error}"
    );
    let states: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.view().state)
        .collect();
    assert_eq!(states, ["starting", "failed"]);
    refused.shutdown().await;
    assert!(snapshot(&config.data_dir) == before, "files changed");
}
