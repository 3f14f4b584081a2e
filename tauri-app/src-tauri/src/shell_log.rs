//! The shell's own log: what happened to the sidecar (starts, ready, exits with their code or
//! signal, restarts and their backoff, giving up) in a small rotating file in the app's log
//! folder, which a support person can read without a terminal.
//!
//! Free of Tauri like the supervisor: `lib.rs` turns each status change into a line with
//! [`describe`] and writes it with [`RotatingLog`]. A line never holds the launch token or the
//! data key (a status has no key, and [`describe`] leaves the token out); the sidecar's last
//! stderr lines quoted in an error name no user or QR text (the sidecar logs none).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::supervisor::Status;

/// The file's name in the log folder; rotated copies are `shell.log.1` (newest) … `.N`.
pub const LOG_FILE: &str = "shell.log";

/// Appends lines to `dir/shell.log`, moving it to `shell.log.1` (and older ones down, the oldest
/// dropped) before a line would take it past `max_bytes`. A write that fails (a full disk, a
/// folder removed) is reported to stderr once and then ignored: the log must never stop the
/// shell.
pub struct RotatingLog {
    dir: PathBuf,
    max_bytes: u64,
    keep: u32,
    inner: Mutex<Inner>,
}

struct Inner {
    file: Option<File>,
    size: u64,
    warned: bool,
}

impl RotatingLog {
    /// 1 MiB a file and three old ones: a month of a tablet's restarts, a few MiB at most.
    pub fn open(dir: &Path) -> Self {
        Self::with_limits(dir, 1 << 20, 3)
    }

    pub fn with_limits(dir: &Path, max_bytes: u64, keep: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            max_bytes,
            keep: keep.max(1),
            inner: Mutex::new(Inner {
                file: None,
                size: 0,
                warned: false,
            }),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// One line, prefixed with the UTC time, also echoed to stderr (a terminal, `journalctl`).
    pub fn line(&self, message: &str) {
        let text = format!(
            "{} {}\n",
            utc_now(),
            message.trim_end().replace('\n', "\n    ")
        );
        eprint!("[kensa] {text}");
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Err(err) = self.write(&mut inner, text.as_bytes()) {
            inner.file = None;
            if !inner.warned {
                inner.warned = true;
                eprintln!("[kensa] cannot write {}: {err}", self.path().display());
            }
        }
    }

    fn write(&self, inner: &mut Inner, bytes: &[u8]) -> io::Result<()> {
        let len = bytes.len() as u64;
        if inner.file.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path())?;
            inner.size = file.metadata()?.len();
            inner.file = Some(file);
        }
        if inner.size > 0 && inner.size + len > self.max_bytes {
            inner.file = None;
            self.rotate()?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path())?;
            inner.size = 0;
            inner.file = Some(file);
        }
        if let Some(file) = inner.file.as_mut() {
            file.write_all(bytes)?;
            file.flush()?;
            inner.size += len;
        }
        Ok(())
    }

    fn rotate(&self) -> io::Result<()> {
        let numbered = |n: u32| self.dir.join(format!("{LOG_FILE}.{n}"));
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(self.path(), numbered(1))
    }
}

/// What a support person reads for a status change; `None` for nothing worth a line.
pub fn describe(status: &Status, program: &str) -> Option<String> {
    Some(match status {
        Status::Starting { generation } => {
            format!("sidecar start #{generation}: {program}")
        }
        Status::Ready(endpoint) => format!(
            "sidecar #{} ready on 127.0.0.1:{} (pid {})",
            endpoint.generation,
            endpoint.port,
            endpoint
                .pid
                .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
        ),
        Status::Restarting {
            generation,
            attempt,
            delay,
            error,
        } => format!(
            "sidecar #{generation} ended: {error}\nrestart attempt {attempt} in {}",
            seconds(*delay)
        ),
        Status::Failed { generation, error } => {
            format!("sidecar #{generation} failed, not restarting until asked to: {error}")
        }
        Status::Stopped => "sidecar stopped (the shell is closing)".to_owned(),
    })
}

fn seconds(delay: Duration) -> String {
    format!("{:.1} s", delay.as_secs_f64())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date crate (the civil-from-days algorithm).
fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now)
}

fn format_utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::Endpoint;
    use crate::test_dir::TempDir;

    #[test]
    fn utc_times_are_calendar_dates() {
        assert_eq!(format_utc(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 13:45:07.250
        assert_eq!(
            format_utc(Duration::from_millis(1_709_214_307_250)),
            "2024-02-29T13:45:07.250Z"
        );
        assert_eq!(
            format_utc(Duration::from_secs(1_798_761_599)),
            "2026-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn lines_are_appended_with_their_time() {
        let dir = TempDir::new();
        let log = RotatingLog::open(&dir.path().join("logs"));
        log.line("one");
        log.line("two\nsecond line");
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("Z one"), "{text}");
        assert!(lines[1].ends_with("Z two"), "{text}");
        // A message's own line breaks are indented, so every entry starts with its time.
        assert_eq!(lines[2], "    second line");
        // A second writer (the next launch) appends instead of truncating.
        RotatingLog::open(&dir.path().join("logs")).line("three");
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains("Z one\n") && text.ends_with("Z three\n"),
            "{text}"
        );
    }

    #[test]
    fn a_full_file_rotates_and_the_oldest_is_dropped() {
        let dir = TempDir::new();
        // Each line is 75 bytes: two to a file.
        let log = RotatingLog::with_limits(dir.path(), 160, 2);
        for n in 0..12 {
            log.line(&format!("entry {n:02} {}", "x".repeat(40)));
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let current = read(LOG_FILE);
        let first = read("shell.log.1");
        let second = read("shell.log.2");
        assert!(!dir.path().join("shell.log.3").exists());
        for text in [&current, &first, &second] {
            assert!(text.len() <= 160, "{} bytes: {text}", text.len());
            assert_eq!(text.lines().count(), 2, "{text}");
        }
        assert!(
            current.contains("entry 10") && current.contains("entry 11"),
            "{current}"
        );
        assert!(
            first.contains("entry 08") && first.contains("entry 09"),
            "{first}"
        );
        assert!(
            second.contains("entry 06") && second.contains("entry 07"),
            "{second}"
        );
        // Nothing in between was lost, nothing older kept.
        assert!(!second.contains("entry 05"), "{second}");
    }

    #[test]
    fn a_log_that_cannot_be_written_does_not_stop_the_shell() {
        let dir = TempDir::new();
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, b"a file where the folder should be").unwrap();
        let log = RotatingLog::open(&blocker.join("logs"));
        log.line("goes to stderr only");
        log.line("and again, without a second warning");
        assert!(!blocker.join("logs").exists());
    }

    #[test]
    fn each_status_says_what_happened_without_the_token() {
        let ready = Status::Ready(Endpoint {
            port: 4100,
            token: "secret-token".into(),
            base_url: "http://127.0.0.1:4100".into(),
            generation: 2,
            pid: Some(77),
        });
        let lines: Vec<String> = [
            Status::Starting { generation: 2 },
            ready,
            Status::Restarting {
                generation: 2,
                attempt: 3,
                delay: Duration::from_millis(2000),
                error: "the sidecar stopped (signal: 9 (SIGKILL)) after 4.2 s".into(),
            },
            Status::Failed {
                generation: 3,
                error: "the sidecar exited (exit status: 2) before it was ready".into(),
            },
            Status::Stopped,
        ]
        .iter()
        .map(|s| describe(s, "/opt/kensa/kensa-sidecar").unwrap())
        .collect();
        assert_eq!(lines[0], "sidecar start #2: /opt/kensa/kensa-sidecar");
        assert_eq!(lines[1], "sidecar #2 ready on 127.0.0.1:4100 (pid 77)");
        assert_eq!(
            lines[2],
            "sidecar #2 ended: the sidecar stopped (signal: 9 (SIGKILL)) after 4.2 s\n\
             restart attempt 3 in 2.0 s"
        );
        assert!(lines[3].contains("exit status: 2"), "{}", lines[3]);
        assert!(lines[3].contains("not restarting"), "{}", lines[3]);
        assert!(lines[4].contains("stopped"));
        assert!(lines.iter().all(|l| !l.contains("secret-token")));
    }
}
