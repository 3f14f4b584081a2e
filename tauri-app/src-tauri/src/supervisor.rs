//! Keeps one sidecar running: spawn, wait for the ready line, restart on a crash, stop on exit.
//!
//! Free of Tauri on purpose: the shell hands in how to build the command, where the data key is
//! kept and what to do on each status change, and the tests drive the same code with small shell
//! scripts as sidecars and an in-memory keystore.
//!
//! Each spawn gets `--key-stdin` and, as the first line on its stdin, the tablet's data key
//! (`keystore.rs`); stdin then stays open, its end of file meaning "the shell is gone".

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep, timeout};

use crate::keystore::{load_or_create, DataKey, KeyStore};
use crate::process::{signal_group, Grace, SidecarChild, Signal};
use crate::ready::{ReadyError, ReadyLineReader};
use crate::restart::{is_permanent_exit, Decision, Exit, RestartPolicy, RestartState};
use crate::token::new_token;

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Handed to the sidecar as KENSA_DATA_DIR; its resolved path names the data key's keystore
    /// entry.
    pub data_dir: PathBuf,
    /// From spawn to ready line. The first start on a tablet also creates and migrates the
    /// database, on a slow disk under a virus scanner too, so this is generous.
    pub ready_timeout: Duration,
    pub policy: RestartPolicy,
    pub grace: Grace,
}

impl SupervisorConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            ready_timeout: Duration::from_secs(60),
            policy: RestartPolicy::default(),
            grace: Grace {
                // uvicorn's own graceful shutdown is capped at 5 s (launch.py).
                after_stdin: Duration::from_secs(6),
                after_term: Duration::from_secs(3),
            },
        }
    }
}

/// Where the webview finds the sidecar. The token is per spawn: a restarted sidecar has a new
/// port and a new token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: u16,
    pub token: String,
    pub base_url: String,
    /// Counts spawns since the shell started; a new value means "fetch anew, log in again".
    pub generation: u64,
    /// The serving process's pid, as the sidecar reported it.
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Starting {
        generation: u64,
    },
    Ready(Endpoint),
    /// It stopped; the next spawn comes after `delay`.
    Restarting {
        generation: u64,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// Given up until someone asks for a restart: the error screen.
    Failed {
        generation: u64,
        error: String,
    },
    Stopped,
}

/// What the webview sees of a status: no token (that is only in [`Endpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// "starting" | "ready" | "restarting" | "failed" | "stopped"
    pub state: &'static str,
    pub generation: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Status {
    /// Which spawn this status is about; none once stopped.
    pub fn generation(&self) -> Option<u64> {
        match self {
            Self::Starting { generation }
            | Self::Restarting { generation, .. }
            | Self::Failed { generation, .. } => Some(*generation),
            Self::Ready(endpoint) => Some(endpoint.generation),
            Self::Stopped => None,
        }
    }

    pub fn view(&self) -> StatusView {
        let mut view = StatusView {
            state: "stopped",
            generation: 0,
            port: None,
            attempt: None,
            retry_in_ms: None,
            error: None,
        };
        match self {
            Self::Starting { generation } => {
                view.state = "starting";
                view.generation = *generation;
            }
            Self::Ready(endpoint) => {
                view.state = "ready";
                view.generation = endpoint.generation;
                view.port = Some(endpoint.port);
            }
            Self::Restarting {
                generation,
                attempt,
                delay,
                error,
            } => {
                view.state = "restarting";
                view.generation = *generation;
                view.attempt = Some(*attempt);
                view.retry_in_ms = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                view.error = Some(error.clone());
            }
            Self::Failed { generation, error } => {
                view.state = "failed";
                view.generation = *generation;
                view.error = Some(error.clone());
            }
            Self::Stopped => {}
        }
        view
    }
}

/// Builds the command for one spawn (program, arguments, inherited environment). Called anew
/// for each spawn.
pub type CommandFactory = Box<dyn Fn() -> Result<std::process::Command, String> + Send + Sync>;
/// Told about every status change, in order (the shell turns them into webview events).
pub type Observer = Box<dyn Fn(&Status) + Send + Sync>;

/// The argument that tells the sidecar to read its data key from the first line on stdin.
pub const KEY_STDIN_ARG: &str = "--key-stdin";

/// Variables of the shell's own environment the sidecar must not inherit. `KENSA_KEY_FILE` is
/// `kensa serve`'s way to a key: the shell's sidecar gets its key on stdin and nowhere else. A
/// shipped shell never runs a plaintext store, whatever its environment says.
#[cfg(debug_assertions)]
pub const WITHHELD_ENV: &[&str] = &["KENSA_KEY_FILE"];
#[cfg(not(debug_assertions))]
pub const WITHHELD_ENV: &[&str] = &["KENSA_KEY_FILE", "KENSA_PLAINTEXT"];

enum Control {
    Restart,
    Shutdown(oneshot::Sender<()>),
}

/// The handle the shell keeps; the work happens in the future [`Supervisor::new`] returns.
pub struct Supervisor {
    status: watch::Receiver<Status>,
    control: mpsc::UnboundedSender<Control>,
    /// The running sidecar's process group, for the last-resort kill in [`Supervisor::shutdown`].
    pid: Arc<Mutex<Option<u32>>>,
    grace: Grace,
}

impl Supervisor {
    /// The handle, and the future that supervises; spawn the future on the async runtime.
    pub fn new(
        config: SupervisorConfig,
        factory: CommandFactory,
        keystore: Arc<dyn KeyStore>,
        observer: Observer,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (status_tx, status_rx) = watch::channel(Status::Starting { generation: 0 });
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let pid = Arc::new(Mutex::new(None));
        let grace = config.grace;
        let run = Run {
            config,
            factory,
            keystore,
            status: StatusSink {
                tx: status_tx,
                observer,
            },
            control: control_rx,
            pid: Arc::clone(&pid),
        };
        let handle = Self {
            status: status_rx,
            control: control_tx,
            pid,
            grace,
        };
        (handle, run.supervise())
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The endpoint of a ready sidecar; while one is starting or restarting, waits for it.
    /// Fails with the reason when the supervisor has given up or stopped.
    pub async fn endpoint(&self) -> Result<Endpoint, String> {
        let mut rx = self.status.clone();
        loop {
            match &*rx.borrow_and_update() {
                Status::Ready(endpoint) => return Ok(endpoint.clone()),
                Status::Failed { error, .. } => return Err(error.clone()),
                Status::Stopped => return Err("the sidecar has been stopped".into()),
                Status::Starting { .. } | Status::Restarting { .. } => {}
            }
            if rx.changed().await.is_err() {
                return Err("the sidecar supervisor is gone".into());
            }
        }
    }

    /// Stop the current sidecar, if any, and start a fresh one with the backoff forgotten
    /// (the error screen's "try again"). Returns once the new spawn has begun, so that an
    /// [`Supervisor::endpoint`] called next waits for it instead of reporting the old failure.
    pub async fn restart(&self) {
        let mut rx = self.status.clone();
        let before = rx.borrow_and_update().generation();
        if before.is_none() || self.control.send(Control::Restart).is_err() {
            return;
        }
        while rx.changed().await.is_ok() {
            match rx.borrow_and_update().generation() {
                Some(now) if Some(now) <= before => {}
                _ => return,
            }
        }
    }

    /// Stop the sidecar and its process tree and end supervision. Waits for it, with a
    /// last-resort SIGKILL to the process group should the supervising task not answer.
    pub async fn shutdown(&self) {
        let (ack_tx, ack_rx) = oneshot::channel();
        if self.control.send(Control::Shutdown(ack_tx)).is_ok() {
            let patience = self.grace.after_stdin + self.grace.after_term + Duration::from_secs(2);
            if timeout(patience, ack_rx).await.is_ok() {
                return;
            }
        }
        self.kill_now();
    }

    /// SIGKILL the sidecar's process group at once, without waiting (Unix; see process.rs).
    pub fn kill_now(&self) {
        if let Some(pid) = self.pid.lock().ok().and_then(|pid| *pid) {
            signal_group(pid, Signal::Kill);
        }
    }
}

struct StatusSink {
    tx: watch::Sender<Status>,
    observer: Observer,
}

impl StatusSink {
    fn set(&self, status: Status) {
        (self.observer)(&status);
        self.tx.send_replace(status);
    }
}

/// How one spawn ended.
enum RunEnd {
    Exited { exit: Exit, error: String },
    Restart,
    Shutdown(Option<oneshot::Sender<()>>),
}

struct Run {
    config: SupervisorConfig,
    factory: CommandFactory,
    keystore: Arc<dyn KeyStore>,
    status: StatusSink,
    control: mpsc::UnboundedReceiver<Control>,
    pid: Arc<Mutex<Option<u32>>>,
}

impl Run {
    async fn supervise(mut self) {
        let mut state = RestartState::default();
        let mut generation = 0;
        loop {
            generation += 1;
            self.status.set(Status::Starting { generation });
            let end = self.run_once(generation).await;
            self.set_pid(None);
            let (exit, error) = match end {
                RunEnd::Exited { exit, error } => (exit, error),
                RunEnd::Restart => {
                    state.reset();
                    continue;
                }
                RunEnd::Shutdown(ack) => return self.stopped(ack),
            };
            match state.on_exit(&self.config.policy, exit) {
                Decision::Restart { attempt, delay } => {
                    self.status.set(Status::Restarting {
                        generation,
                        attempt,
                        delay,
                        error,
                    });
                    tokio::select! {
                        () = sleep(delay) => {}
                        control = self.control.recv() => match control {
                            Some(Control::Restart) => state.reset(),
                            Some(Control::Shutdown(ack)) => return self.stopped(Some(ack)),
                            None => return self.stopped(None),
                        },
                    }
                }
                Decision::GiveUp => {
                    self.status.set(Status::Failed { generation, error });
                    match self.control.recv().await {
                        Some(Control::Restart) => state.reset(),
                        Some(Control::Shutdown(ack)) => return self.stopped(Some(ack)),
                        None => return self.stopped(None),
                    }
                }
            }
        }
    }

    fn stopped(&self, ack: Option<oneshot::Sender<()>>) {
        self.status.set(Status::Stopped);
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    fn set_pid(&self, pid: Option<u32>) {
        if let Ok(mut slot) = self.pid.lock() {
            *slot = pid;
        }
    }

    async fn run_once(&mut self, generation: u64) -> RunEnd {
        let key = match self.data_key().await {
            Ok(key) => key,
            Err(error) => {
                // Said in the shell's log as on the error screen (the message never holds the
                // key). No retry: a locked or missing keystore needs a person, who then presses
                // "try again". Never a start without a key: that would be a plaintext store.
                eprintln!("[kensa] {error}");
                return RunEnd::Exited {
                    exit: Exit::BeforeReady { permanent: true },
                    error,
                };
            }
        };
        let mut command = match (self.factory)() {
            Ok(command) => command,
            Err(error) => {
                // Nothing to run: a restart cannot make the binary appear.
                return RunEnd::Exited {
                    exit: Exit::BeforeReady { permanent: true },
                    error,
                };
            }
        };
        let program = command.get_program().to_string_lossy().into_owned();
        command.arg(KEY_STDIN_ARG);
        for name in WITHHELD_ENV {
            command.env_remove(name);
        }
        let token = new_token();
        let env = [
            ("KENSA_TOKEN", OsStr::new(&token)),
            ("KENSA_DATA_DIR", self.config.data_dir.as_os_str()),
        ];
        let mut child = match SidecarChild::spawn(command, env) {
            Ok(child) => child,
            Err(err) => {
                return RunEnd::Exited {
                    exit: Exit::BeforeReady { permanent: true },
                    error: format!("cannot start the sidecar ({program}): {err}"),
                };
            }
        };
        self.set_pid(child.pid());
        let handed = child.write_stdin(&key.stdin_line()).await;
        drop(key);
        match handed {
            Ok(()) => {}
            // It is already gone: its exit status and last words, read below, say why.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(err) => {
                let _ = child.stop(self.config.grace).await;
                return RunEnd::Exited {
                    exit: Exit::BeforeReady { permanent: false },
                    error: format!("cannot hand the data key to the sidecar: {err}"),
                };
            }
        }

        let ready = match self.wait_ready(&mut child).await {
            Ok(ready) => ready,
            Err(WaitEnd::Control(control)) => return self.stop_for(&mut child, control).await,
            Err(WaitEnd::NotReady(why)) => {
                // Whatever state it is in (dead, hung, babbling), it is not coming up: stop it
                // and its tree before starting another.
                let status = child.stop(self.config.grace).await;
                let code = status
                    .as_ref()
                    .ok()
                    .and_then(std::process::ExitStatus::code);
                let mut error = match &why {
                    NotReady::Line(ReadyError::Eof(_)) => match &status {
                        Ok(status) => format!("the sidecar exited ({status}) before it was ready"),
                        Err(err) => format!("the sidecar died before it was ready ({err})"),
                    },
                    NotReady::Line(err) => err.to_string(),
                    NotReady::Timeout => format!(
                        "the sidecar did not print its ready line within {} s",
                        self.config.ready_timeout.as_secs_f32()
                    ),
                    NotReady::Io(err) => format!("cannot read the sidecar's stdout: {err}"),
                };
                append_tail(&mut error, &child.stderr_tail().await);
                // Only an exit the sidecar chose says anything about the next try.
                let permanent =
                    matches!(why, NotReady::Line(ReadyError::Eof(_))) && is_permanent_exit(code);
                return RunEnd::Exited {
                    exit: Exit::BeforeReady { permanent },
                    error,
                };
            }
        };

        let started = Instant::now();
        self.status.set(Status::Ready(Endpoint {
            port: ready.port,
            base_url: format!("http://127.0.0.1:{}", ready.port),
            token,
            generation,
            pid: ready.pid,
        }));
        if let Some(stdout) = child.take_stdout() {
            // Keep the pipe drained: a sidecar that breaks the protocol by printing more must
            // not block on a full pipe.
            tokio::spawn(drain_stdout(stdout));
        }
        tokio::select! {
            status = child.wait() => {
                let ran_for = started.elapsed();
                let mut error = match status {
                    Ok(status) => format!(
                        "the sidecar stopped ({status}) after {:.1} s",
                        ran_for.as_secs_f32()
                    ),
                    Err(err) => format!("lost track of the sidecar: {err}"),
                };
                append_tail(&mut error, &child.stderr_tail().await);
                RunEnd::Exited { exit: Exit::AfterReady { ran_for }, error }
            }
            control = self.control.recv() => self.stop_for(&mut child, control).await,
        }
    }

    /// The tablet's data key from the keystore (made and stored on the first start). The
    /// keystore may block (D-Bus, a Keychain prompt), so not on the runtime's own threads.
    async fn data_key(&self) -> Result<DataKey, String> {
        let store = Arc::clone(&self.keystore);
        let data_dir = self.config.data_dir.clone();
        match tokio::task::spawn_blocking(move || load_or_create(&*store, &data_dir)).await {
            Ok(Ok(key)) => Ok(key),
            Ok(Err(err)) => Err(format!("cannot get the tablet's data key: {err}")),
            Err(err) => Err(format!("cannot get the tablet's data key: {err}")),
        }
    }

    async fn stop_for(&self, child: &mut SidecarChild, control: Option<Control>) -> RunEnd {
        let _ = child.stop(self.config.grace).await;
        match control {
            Some(Control::Restart) => RunEnd::Restart,
            Some(Control::Shutdown(ack)) => RunEnd::Shutdown(Some(ack)),
            // Every handle is gone: nobody can ask for anything any more, so stop for good.
            None => RunEnd::Shutdown(None),
        }
    }

    async fn wait_ready(
        &mut self,
        child: &mut SidecarChild,
    ) -> Result<crate::ready::Ready, WaitEnd> {
        let Some(mut stdout) = child.take_stdout() else {
            return Err(WaitEnd::NotReady(NotReady::Io(std::io::Error::other(
                "no stdout pipe",
            ))));
        };
        let mut reader = ReadyLineReader::new();
        let mut buf = [0u8; 1024];
        let deadline = sleep(self.config.ready_timeout);
        tokio::pin!(deadline);
        // No wait on the process itself: when it dies, its stdout closes, and that end of
        // file is the signal (a grandchild still holding the pipe runs into the timeout).
        loop {
            tokio::select! {
                read = stdout.read(&mut buf) => match read {
                    Ok(0) => return Err(WaitEnd::NotReady(NotReady::Line(reader.eof()))),
                    Ok(n) => {
                        if let Some(result) = reader.push(&buf[..n]) {
                            return result.map_err(|e| WaitEnd::NotReady(NotReady::Line(e)));
                        }
                    }
                    Err(err) => return Err(WaitEnd::NotReady(NotReady::Io(err))),
                },
                () = &mut deadline => return Err(WaitEnd::NotReady(NotReady::Timeout)),
                control = self.control.recv() => return Err(WaitEnd::Control(control)),
            }
        }
    }
}

enum WaitEnd {
    NotReady(NotReady),
    Control(Option<Control>),
}

enum NotReady {
    Line(ReadyError),
    Timeout,
    Io(std::io::Error),
}

fn append_tail(error: &mut String, tail: &[String]) {
    if !tail.is_empty() {
        let _ = write!(error, "\n\nLast lines it logged:\n{}", tail.join("\n"));
    }
}

async fn drain_stdout(mut stdout: tokio::process::ChildStdout) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stdout.read(&mut buf).await {
        if n == 0 {
            break;
        }
        eprintln!(
            "[sidecar] unexpected stdout after the ready line: {}",
            String::from_utf8_lossy(&buf[..n]).trim_end()
        );
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
