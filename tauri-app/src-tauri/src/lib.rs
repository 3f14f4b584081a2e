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
//! - event `sidecar-status` (payload as `sidecar_status`) on every change, and event
//!   `sidecar-ready` (payload as `sidecar_endpoint`) each time a sidecar, first or restarted,
//!   is ready, with its new port and token.

pub mod keystore;
pub mod process;
pub mod ready;
pub mod restart;
pub mod supervisor;
pub mod token;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod test_dir;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, RunEvent, State};
use tauri_plugin_shell::ShellExt;

use crate::keystore::{KeyStore, OsKeyStore};
use crate::supervisor::{Endpoint, Status, StatusView, Supervisor, SupervisorConfig};

/// The `bundle.externalBin` entry, without the target-triple suffix the bundler adds.
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

#[tauri::command]
async fn sidecar_restart(supervisor: State<'_, Supervisor>) -> Result<(), CommandError> {
    supervisor.restart().await;
    Ok(())
}

fn start_sidecar(app: &AppHandle) -> Result<(), Box<dyn std::error::Error>> {
    // The local, not the roaming, app data folder: on Windows app_data_dir is the roaming
    // profile, which must not carry a SQLite database and gigabytes of photos (the sidecar's own
    // default picks LOCALAPPDATA for the same reason). Elsewhere the two are the same folder.
    let data_dir = app.path().app_local_data_dir()?;
    let shell_app = app.clone();
    // The shell plugin resolves the bundled binary next to our executable (externalBin);
    // the process itself is run by our supervisor, which needs the stdin and process-group
    // control the plugin's own spawn does not give.
    let factory = Box::new(move || {
        shell_app
            .shell()
            .sidecar(SIDECAR_BINARY)
            .map(std::process::Command::from)
            .map_err(|err| format!("cannot locate the sidecar binary {SIDECAR_BINARY}: {err}"))
    });
    let emitter = app.clone();
    let observer = Box::new(move |status: &Status| {
        let _ = emitter.emit(STATUS_EVENT, status.view());
        if let Status::Ready(endpoint) = status {
            let _ = emitter.emit(READY_EVENT, endpoint);
        }
    });
    let keystore = keystore(&data_dir)?;
    let (supervisor, supervise) =
        Supervisor::new(SupervisorConfig::new(data_dir), factory, keystore, observer);
    app.manage(supervisor);
    tauri::async_runtime::spawn(supervise);
    Ok(())
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
    let app = tauri::Builder::default()
        // Registered for `ShellExt::sidecar` from Rust; no capability grants the webview any
        // of its commands.
        .plugin(tauri_plugin_shell::init())
        .invoke_handler(tauri::generate_handler![
            sidecar_endpoint,
            sidecar_status,
            sidecar_restart
        ])
        .setup(|app| start_sidecar(app.handle()))
        .build(tauri::generate_context!())
        .expect("error while building the kensa shell");
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            if let Some(supervisor) = app.try_state::<Supervisor>() {
                // Close stdin, SIGTERM, SIGKILL, in order, before the process goes away. Should
                // the shell die without getting here, the sidecar still sees its stdin close.
                tauri::async_runtime::block_on(supervisor.shutdown());
            }
        }
    });
}
