//! The kensa shell: a window for the web UI, and the sidecar (the Python service that does the
//! work) kept running beside it.
//!
//! What the webview gets (see `capabilities/default.json`; nothing of the shell plugin):
//! - command `sidecar_endpoint() -> { port, token, baseUrl, generation, pid }`: waits while the
//!   sidecar starts or restarts; rejects with `{ code, message }` once the shell has given up.
//! - command `sidecar_status() -> { state, generation, port?, attempt?, retryInMs?, error? }`,
//!   `state` one of "starting" | "ready" | "restarting" | "failed" | "stopped".
//! - command `sidecar_restart()`: start a fresh sidecar (the error screen's "try again");
//!   resolves once the new start has begun.
//! - command `ui_shown(screen)`: the UI says which first screen it shows ("login", "setup");
//!   the shell logs it with the time since launch (what `scripts/bench start` reads as login_s).
//! - event `sidecar-status` (payload as `sidecar_status`) on every change, and event
//!   `sidecar-ready` (payload as `sidecar_endpoint`) each time a sidecar, first or restarted,
//!   is ready, with its new port and token.
//!
//! The shell's own log (`shell_log.rs`) is `shell.log` in the app's log folder
//! (`~/.local/share/com.kensa.client/logs` on Linux).

pub mod keystore;
pub mod process;
pub mod ready;
pub mod restart;
pub mod shell_log;
pub mod supervisor;
pub mod token;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod test_dir;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, RunEvent, State};

use crate::keystore::{KeyStore, OsKeyStore};
use crate::shell_log::RotatingLog;
use crate::supervisor::{Endpoint, Status, StatusView, Supervisor, SupervisorConfig};

/// The sidecar's folder among the app's resources (`bundle.resources` in tauri.conf.json: the
/// one-folder PyInstaller bundle `scripts/build-sidecar` makes), and its executable inside.
pub const SIDECAR_DIR: &str = "kensa-sidecar";
pub const SIDECAR_BINARY: &str = "kensa-sidecar";
pub const STATUS_EVENT: &str = "sidecar-status";
pub const READY_EVENT: &str = "sidecar-ready";

/// A command's rejection value on the JavaScript side.
#[derive(Debug, Serialize)]
pub struct CommandError {
    /// "sidecar_unavailable"
    pub code: &'static str,
    pub message: String,
}

#[tauri::command]
async fn sidecar_endpoint(supervisor: State<'_, Supervisor>) -> Result<Endpoint, CommandError> {
    supervisor.endpoint().await.map_err(|message| CommandError {
        code: "sidecar_unavailable",
        message,
    })
}

#[tauri::command]
fn sidecar_status(supervisor: State<'_, Supervisor>) -> StatusView {
    supervisor.status().view()
}

/// When the shell started, for the launch-to-screen time the UI reports.
struct Launched(Instant);

#[tauri::command]
fn ui_shown(screen: String, launched: State<'_, Launched>, log: State<'_, Arc<RotatingLog>>) {
    // Only names the UI has: the text goes into a log file.
    let screen: String = screen
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    log.line(&format!(
        "ui: the {screen} screen is shown, {:.3} s after launch",
        launched.0.elapsed().as_secs_f64()
    ));
}

#[tauri::command]
async fn sidecar_restart(supervisor: State<'_, Supervisor>) -> Result<(), CommandError> {
    supervisor.restart().await;
    Ok(())
}

/// The folders the sidecar and the log live in, and the sidecar's executable, resolved before the
/// app is built: the sidecar then starts while GTK and the webview come up (about half a second
/// of a tablet's start) instead of after them.
struct Early {
    data_dir: PathBuf,
    log_dir: PathBuf,
    program: PathBuf,
}

impl Early {
    /// What Tauri's path resolver gives for `app_local_data_dir`, `app_log_dir` and the
    /// resources (tauri.conf.json sets no directory overrides); `setup` checks they agree.
    fn resolve(context: &tauri::Context) -> Result<Self, String> {
        let identifier = &context.config().identifier;
        // The local, not the roaming, app data folder: on Windows app_data_dir is the roaming
        // profile, which must not carry a SQLite database and gigabytes of photos (the sidecar's
        // own default picks LOCALAPPDATA for the same reason). Elsewhere the two are the same.
        let local = dirs::data_local_dir().ok_or("no local app data folder on this system")?;
        let data_dir = local.join(identifier);
        #[cfg(target_os = "macos")]
        let log_dir = dirs::home_dir()
            .ok_or("no home folder")?
            .join("Library/Logs")
            .join(identifier);
        #[cfg(not(target_os = "macos"))]
        let log_dir = data_dir.join("logs");
        let resources =
            tauri::utils::platform::resource_dir(context.package_info(), &tauri::Env::default())
                .map_err(|err| format!("cannot find the app's resources: {err}"))?;
        Ok(Self {
            data_dir,
            log_dir,
            program: resources.join(sidecar_relative_path()),
        })
    }
}

/// Start supervising the sidecar; status changes reach the webview once `handle` is set.
fn start_sidecar(
    early: &Early,
    version: &str,
    log: &Arc<RotatingLog>,
    handle: Arc<OnceLock<AppHandle>>,
) -> Result<Supervisor, String> {
    log.line(&format!(
        "kensa shell {version} starting (data in {})",
        early.data_dir.display()
    ));
    let program = early.program.clone();
    let shown = program.display().to_string();
    let factory = Box::new(move || {
        if program.is_file() {
            Ok(std::process::Command::new(&program))
        } else {
            Err(format!(
                "the sidecar is missing: {} (scripts/build-sidecar makes it)",
                program.display()
            ))
        }
    });
    let log = Arc::clone(log);
    let observer = Box::new(move |status: &Status| {
        if let Some(line) = shell_log::describe(status, &shown) {
            log.line(&line);
        }
        // Before the webview exists nobody listens; it asks for the status when it loads.
        if let Some(emitter) = handle.get() {
            let _ = emitter.emit(STATUS_EVENT, status.view());
            if let Status::Ready(endpoint) = status {
                let _ = emitter.emit(READY_EVENT, endpoint);
            }
        }
    });
    let keystore = keystore(&early.data_dir)?;
    let (supervisor, supervise) = Supervisor::new(
        SupervisorConfig::new(early.data_dir.clone()),
        factory,
        keystore,
        observer,
    );
    tauri::async_runtime::spawn(supervise);
    Ok(supervisor)
}

/// What Tauri resolves once the app exists must be what the sidecar was given; a difference
/// (a directory override added to tauri.conf.json) is said in the log.
fn check_early(app: &AppHandle, early: &Early, log: &RotatingLog) {
    let path = app.path();
    let pairs = [
        ("data", path.app_local_data_dir().ok(), &early.data_dir),
        ("log", path.app_log_dir().ok(), &early.log_dir),
    ];
    for (what, resolved, used) in pairs {
        if resolved.as_ref() != Some(used) {
            log.line(&format!(
                "the {what} folder Tauri resolves ({resolved:?}) is not the one in use ({})",
                used.display()
            ));
        }
    }
}

/// The sidecar's executable, relative to the resource folder.
pub fn sidecar_relative_path() -> PathBuf {
    Path::new(SIDECAR_DIR).join(format!("{SIDECAR_BINARY}{}", std::env::consts::EXE_SUFFIX))
}

/// A dev build (`cargo build`, `tauri dev`) loads the UI from the Vite dev server (`devUrl`);
/// one with the UI inside (`tauri build`, `--debug` too) does not. Without the server the window
/// would show the webview's "Could not connect" page; say instead how to get a UI.
fn explain_missing_dev_server(app: &AppHandle) {
    use std::net::{TcpStream, ToSocketAddrs};
    if !tauri::is_dev() {
        return;
    }
    let Some(url) = app.config().build.dev_url.clone() else {
        return;
    };
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let reachable = (host.as_str(), port)
        .to_socket_addrs()
        .is_ok_and(|mut addrs| {
            addrs.any(|addr| {
                TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)).is_ok()
            })
        });
    if reachable {
        return;
    }
    let message = dev_server_help(url.as_str());
    if let Some(log) = app.try_state::<Arc<RotatingLog>>() {
        log.line(&message.replace("<br>", " "));
    }
    if let Some(window) = app.get_webview_window("main") {
        let page = format!(
            "data:text/html;charset=utf-8,<!doctype html><title>kensa</title>\
             <body style='font:16px sans-serif;margin:2em'><h1>kensa</h1><p>{}</p>",
            message.replace(' ', "%20").replace('#', "%23")
        );
        if let Ok(page) = page.parse() {
            let _ = window.navigate(page);
        }
    }
}

/// What a debug build without its dev server says, in the window and the log.
pub fn dev_server_help(dev_url: &str) -> String {
    format!(
        "This is a debug build: it loads the UI from the Vite dev server at {dev_url}, which is \
         not running.<br>Start both with scripts/dev --tauri (or npm run dev in tauri-app), or \
         build the app with the UI inside it: cd tauri-app && npx tauri build --debug"
    )
}

/// Where the data key is kept: the OS keystore. A debug build on a machine without one (a
/// headless box, a container) may name a key file outside the data folder in `KENSA_KEY_FILE`
/// instead; a release build has no such way, so a missing keystore is the error screen, never a
/// key in a file or a plaintext store.
fn keystore(data_dir: &Path) -> Result<Arc<dyn KeyStore>, String> {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os("KENSA_KEY_FILE") {
        let path = std::path::PathBuf::from(path);
        if path.starts_with(data_dir) {
            return Err(format!(
                "KENSA_KEY_FILE ({}) must not be inside the data folder {}: the key would sit \
                 next to what it protects",
                path.display(),
                data_dir.display()
            ));
        }
        eprintln!(
            "[kensa] debug build: the data key comes from {}, not the OS keystore",
            path.display()
        );
        return Ok(Arc::new(keystore::FileKeyStore { path }));
    }
    let _ = data_dir;
    Ok(Arc::new(OsKeyStore))
}

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let launched = Launched(Instant::now());
    let context = tauri::generate_context!();
    let early = Early::resolve(&context).unwrap_or_else(|err| panic!("kensa shell: {err}"));
    let log = Arc::new(RotatingLog::open(&early.log_dir));
    let handle = Arc::new(OnceLock::new());
    let version = context.package_info().version.to_string();
    let started = start_sidecar(&early, &version, &log, Arc::clone(&handle));
    let mut builder = tauri::Builder::default()
        .manage(launched)
        .manage(Arc::clone(&log));
    let mut failed = None;
    match started {
        Ok(supervisor) => builder = builder.manage(supervisor),
        Err(err) => failed = Some(err),
    }
    let app = builder
        .invoke_handler(tauri::generate_handler![
            sidecar_endpoint,
            sidecar_status,
            sidecar_restart,
            ui_shown
        ])
        .setup(move |app| {
            if let Some(err) = failed.take() {
                log.line(&err);
                return Err(err.into());
            }
            let _ = handle.set(app.handle().clone());
            check_early(app.handle(), &early, &log);
            explain_missing_dev_server(app.handle());
            Ok(())
        })
        .build(context)
        .expect("error while building the kensa shell");
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            if let Some(log) = app.try_state::<Arc<RotatingLog>>() {
                log.line("the shell is closing");
            }
            if let Some(supervisor) = app.try_state::<Supervisor>() {
                // Close stdin, SIGTERM, SIGKILL, in order, before the process goes away. Should
                // the shell die without getting here, the sidecar still sees its stdin close.
                tauri::async_runtime::block_on(supervisor.shutdown());
            }
        }
    });
}
