//! One running sidecar process and how to stop it together with everything it started.
//!
//! Unix: the sidecar gets its own process group, so one signal reaches it and anything it
//! started. Stopping is polite first: close stdin
//! (the sidecar exits on EOF), then SIGTERM to the group, then SIGKILL to the group.
//!
//! Windows has no process groups in this sense. Closing stdin works there too, and the hard kill
//! (`TerminateProcess`) reaches the sidecar itself: the one-folder PyInstaller bundle runs Python
//! in the process the shell spawned (a one-file bundle had a bootloader parent the kill stopped
//! at). Anything the sidecar started in turn would need a Job Object with
//! JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE; it starts no processes today.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How many of the sidecar's last stderr lines an error message quotes.
const STDERR_TAIL: usize = 12;

#[derive(Debug, Clone, Copy)]
pub struct Grace {
    /// How long the sidecar gets to exit on its own once its stdin is closed.
    pub after_stdin: Duration,
    /// How long it gets after SIGTERM before SIGKILL.
    pub after_term: Duration,
}

pub struct SidecarChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr_task: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    pid: Option<u32>,
}

impl SidecarChild {
    /// Spawn `command` with piped stdio, the given extra environment, and (Unix) in a process
    /// group of its own. Must run inside a tokio runtime.
    pub fn spawn<'a>(
        mut command: std::process::Command,
        env: impl IntoIterator<Item = (&'a str, &'a OsStr)>,
    ) -> io::Result<Self> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .envs(env);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Group id = the child's pid: the whole tree can then be signalled as one, and a
            // Ctrl-C in the terminal of `tauri dev` reaches the shell only, which then stops the
            // sidecar in order instead of both racing.
            command.process_group(0);
        }
        #[cfg(windows)]
        {
            use std::os::windows::process::CommandExt;
            // A console program started from a GUI app would otherwise open a console window.
            const CREATE_NO_WINDOW: u32 = 0x0800_0000;
            command.creation_flags(CREATE_NO_WINDOW);
        }
        let mut command = tokio::process::Command::from(command);
        // Dropping the handle must not be the only thing between us and an orphan; but the
        // explicit stop below (and Drop) do better than tokio's plain kill of the leader.
        command.kill_on_drop(false);
        let mut child = command.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stderr_task = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&stderr_tail);
            tokio::spawn(forward_stderr(stderr, tail))
        });
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr_task,
            stderr_tail,
            pid,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Write `bytes` to the sidecar's stdin, which stays open afterwards. The pipe is unbuffered
    /// on our side: nothing of a secret written here lingers in a buffer of ours.
    pub async fn write_stdin(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("no stdin pipe"))?;
        stdin.write_all(bytes).await?;
        stdin.flush().await
    }

    /// The stdout pipe, for the ready line; taken once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Wait for the process to exit by itself.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        // The leader is gone; anything it left in its group goes with it. The group id cannot
        // have been reused while members remain, and with none left the signal finds nobody.
        self.signal_group(Signal::Kill);
        status
    }

    /// Stop the sidecar and everything it started: close stdin, then SIGTERM, then SIGKILL.
    pub async fn stop(&mut self, grace: Grace) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Ok(status) = timeout(grace.after_stdin, self.child.wait()).await {
            self.signal_group(Signal::Kill);
            return status;
        }
        self.signal_group(Signal::Term);
        if let Ok(status) = timeout(grace.after_term, self.child.wait()).await {
            self.signal_group(Signal::Kill);
            return status;
        }
        self.signal_group(Signal::Kill);
        #[cfg(not(unix))]
        let _ = self.child.start_kill();
        self.child.wait().await
    }

    /// The last lines the sidecar wrote to stderr, once the pipe has been drained (or after a
    /// short wait: a grandchild may hold the pipe open).
    pub async fn stderr_tail(&mut self) -> Vec<String> {
        if let Some(task) = self.stderr_task.take() {
            let _ = timeout(Duration::from_secs(1), task).await;
        }
        self.stderr_tail
            .lock()
            .map(|tail| tail.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(pid) = self.pid {
            signal_group(pid, signal);
        }
    }
}

impl Drop for SidecarChild {
    fn drop(&mut self) {
        // A supervisor task that is torn down mid-run must not leave the sidecar behind.
        if self.child.id().is_some() {
            self.signal_group(Signal::Kill);
            let _ = self.child.start_kill();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Signal {
    Term,
    Kill,
}

/// Signal the process group led by `pid` (Unix). ESRCH (nobody left) is not an error worth
/// reporting: that is the state we want. Elsewhere there is no group to signal; see the module
/// comment for what Windows does instead.
pub fn signal_group(pid: u32, signal: Signal) {
    #[cfg(unix)]
    {
        let Ok(pgid) = libc::pid_t::try_from(pid) else {
            return;
        };
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: killpg has no memory-safety preconditions; a stale pgid yields ESRCH.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, signal);
    }
}

async fn forward_stderr(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut raw = Vec::new();
    // The sidecar also logs to a rotating file in its data directory; this copy is for
    // `tauri dev` and for the error screen. Bytes, not `lines()`: one non-UTF-8 byte must not
    // end the loop, or the pipe fills up and the sidecar blocks on its next log line.
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        eprintln!("[sidecar] {line}");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
