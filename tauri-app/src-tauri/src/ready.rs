//! The sidecar's ready line: the one line it prints on stdout once it listens.
//!
//! The protocol (sidecar/launch.py) is strict: stdout carries exactly one JSON line,
//! `{"event": "ready", "port": N, "pid": P}`, and logs go elsewhere. So the first line is the
//! ready line or the sidecar is broken; nothing is skipped in the hope that a ready line follows,
//! because a sidecar that prints something else first is not the one this shell was built with.

use std::fmt;

use serde_json::Value;

/// A longer first line is no ready line; the cap keeps a runaway child from growing the buffer.
pub const MAX_READY_LINE: usize = 4096;

/// What the ready line tells the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub port: u16,
    /// The pid of the process that serves, as it reports it. The one-folder bundle runs Python in
    /// the process the shell spawned, so it is that one; the shell still signals the process it
    /// spawned (and its group), never this number.
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyError {
    NotUtf8,
    NotJson(String),
    NotAnObject,
    WrongEvent(String),
    BadPort(String),
    BadPid(String),
    TooLong,
    /// Stdout closed before a whole line arrived (the bytes that did arrive, if any).
    Eof(String),
}

impl fmt::Display for ReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => write!(f, "the sidecar's first stdout line is not UTF-8"),
            Self::NotJson(line) => {
                write!(f, "the sidecar printed {line:?} instead of its ready line")
            }
            Self::NotAnObject => write!(f, "the sidecar's ready line is not a JSON object"),
            Self::WrongEvent(event) => {
                write!(
                    f,
                    "the sidecar's first line is event {event}, not \"ready\""
                )
            }
            Self::BadPort(port) => write!(f, "the sidecar's ready line has no valid port ({port})"),
            Self::BadPid(pid) => write!(f, "the sidecar's ready line has an invalid pid ({pid})"),
            Self::TooLong => write!(
                f,
                "the sidecar's first stdout line is longer than {MAX_READY_LINE} bytes"
            ),
            Self::Eof(partial) if partial.is_empty() => {
                write!(
                    f,
                    "the sidecar closed stdout without printing its ready line"
                )
            }
            Self::Eof(partial) => write!(
                f,
                "the sidecar closed stdout in the middle of its ready line ({partial:?})"
            ),
        }
    }
}

impl std::error::Error for ReadyError {}

/// Parse one whole line (with or without its line ending).
pub fn parse_ready_line(line: &str) -> Result<Ready, ReadyError> {
    // A Windows Python writes "\r\n" through a text-mode stdout.
    let line = line.trim_end_matches(['\n', '\r']).trim();
    let value: Value =
        serde_json::from_str(line).map_err(|_| ReadyError::NotJson(shorten(line)))?;
    let object = value.as_object().ok_or(ReadyError::NotAnObject)?;
    match object.get("event") {
        Some(Value::String(event)) if event == "ready" => {}
        Some(other) => return Err(ReadyError::WrongEvent(other.to_string())),
        None => return Err(ReadyError::WrongEvent("(missing)".into())),
    }
    let port = match object.get("port") {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| ReadyError::BadPort(n.to_string()))?,
        Some(other) => return Err(ReadyError::BadPort(other.to_string())),
        None => return Err(ReadyError::BadPort("missing".into())),
    };
    // DESIGN.md's line has no pid; launch.py adds one. Accept both, but not a wrong one.
    let pid = match object.get("pid") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| ReadyError::BadPid(n.to_string()))?,
        ),
        Some(other) => return Err(ReadyError::BadPid(other.to_string())),
    };
    Ok(Ready { port, pid })
}

fn shorten(line: &str) -> String {
    const SHOWN: usize = 120;
    match line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

/// Assembles the first line from whatever chunks the pipe delivers: a read may end in the
/// middle of the line, or carry the line and more.
#[derive(Debug, Default)]
pub struct ReadyLineReader {
    buf: Vec<u8>,
    done: bool,
}

impl ReadyLineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk from stdout. `None` means "need more bytes"; once a result has been
    /// returned the reader is finished and ignores further input (the caller stops feeding).
    pub fn push(&mut self, chunk: &[u8]) -> Option<Result<Ready, ReadyError>> {
        if self.done {
            return None;
        }
        if let Some(newline) = chunk.iter().position(|b| *b == b'\n') {
            self.done = true;
            if self.buf.len() + newline > MAX_READY_LINE {
                return Some(Err(ReadyError::TooLong));
            }
            self.buf.extend_from_slice(&chunk[..newline]);
            let line = std::mem::take(&mut self.buf);
            return Some(match String::from_utf8(line) {
                Ok(line) => parse_ready_line(&line),
                Err(_) => Err(ReadyError::NotUtf8),
            });
        }
        if self.buf.len() + chunk.len() > MAX_READY_LINE {
            self.done = true;
            return Some(Err(ReadyError::TooLong));
        }
        self.buf.extend_from_slice(chunk);
        None
    }

    /// Stdout reached end of file: whatever is buffered is not a complete line.
    pub fn eof(&mut self) -> ReadyError {
        self.done = true;
        ReadyError::Eof(shorten(&String::from_utf8_lossy(&self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_line_launch_py_prints() {
        let ready = parse_ready_line("{\"event\": \"ready\", \"port\": 43117, \"pid\": 812}\n");
        assert_eq!(
            ready,
            Ok(Ready {
                port: 43117,
                pid: Some(812)
            })
        );
    }

    #[test]
    fn pid_is_optional_and_crlf_is_fine() {
        assert_eq!(
            parse_ready_line("{\"event\":\"ready\",\"port\":8000}\r\n"),
            Ok(Ready {
                port: 8000,
                pid: None
            })
        );
    }

    #[test]
    fn extra_fields_are_tolerated() {
        let ready = parse_ready_line(r#"{"event":"ready","port":1,"pid":2,"version":"0.2"}"#);
        assert_eq!(ready.map(|r| r.port), Ok(1));
    }

    #[test]
    fn a_log_line_is_an_error_not_noise_to_skip() {
        let err = parse_ready_line("INFO: Started server process [812]").unwrap_err();
        assert!(matches!(err, ReadyError::NotJson(_)), "{err:?}");
        assert!(err.to_string().contains("Started server process"));
    }

    #[test]
    fn rejects_wrong_shapes() {
        assert_eq!(parse_ready_line("[1, 2]"), Err(ReadyError::NotAnObject));
        assert!(matches!(
            parse_ready_line(r#"{"event":"error","port":1}"#),
            Err(ReadyError::WrongEvent(_))
        ));
        assert!(matches!(
            parse_ready_line(r#"{"port":1}"#),
            Err(ReadyError::WrongEvent(_))
        ));
        for port in ["0", "65536", "-1", "1.5", "\"8000\"", "null"] {
            let line = format!(r#"{{"event":"ready","port":{port}}}"#);
            assert!(
                matches!(parse_ready_line(&line), Err(ReadyError::BadPort(_))),
                "port {port} accepted"
            );
        }
        assert!(matches!(
            parse_ready_line(
                r#"{"event":"ready","port":1}"#.replace('}', ",\"pid\":\"x\"}").as_str()
            ),
            Err(ReadyError::BadPid(_))
        ));
        assert!(matches!(parse_ready_line(""), Err(ReadyError::NotJson(_))));
    }

    #[test]
    fn assembles_a_line_split_across_reads() {
        let mut reader = ReadyLineReader::new();
        assert_eq!(reader.push(b"{\"event\": \"re"), None);
        assert_eq!(reader.push(b"ady\", \"port\""), None);
        assert_eq!(reader.push(b""), None);
        assert_eq!(
            reader.push(b": 5173, \"pid\": 9}\n"),
            Some(Ok(Ready {
                port: 5173,
                pid: Some(9)
            }))
        );
        // Finished: later output is not reparsed.
        assert_eq!(reader.push(b"{\"event\":\"ready\",\"port\":1}\n"), None);
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut reader = ReadyLineReader::new();
        let line = b"{\"event\":\"ready\",\"port\":40001}\n";
        let mut result = None;
        for byte in line {
            if let Some(r) = reader.push(std::slice::from_ref(byte)) {
                result = Some(r);
            }
        }
        assert_eq!(
            result,
            Some(Ok(Ready {
                port: 40001,
                pid: None
            }))
        );
    }

    #[test]
    fn a_chunk_with_more_after_the_line_uses_the_first_line() {
        let mut reader = ReadyLineReader::new();
        let got = reader.push(b"{\"event\":\"ready\",\"port\":2}\nstray output\n");
        assert_eq!(got.unwrap().map(|r| r.port), Ok(2));
    }

    #[test]
    fn partial_line_then_eof_is_an_error() {
        let mut reader = ReadyLineReader::new();
        assert_eq!(reader.push(b"{\"event\":\"ready\",\"po"), None);
        let err = reader.eof();
        assert!(matches!(&err, ReadyError::Eof(partial) if partial.contains("\"po")));
        assert_eq!(ReadyLineReader::new().eof(), ReadyError::Eof(String::new()));
    }

    #[test]
    fn bounded_and_utf8_checked() {
        let mut reader = ReadyLineReader::new();
        let junk = vec![b'x'; MAX_READY_LINE];
        assert_eq!(reader.push(&junk), None);
        assert_eq!(reader.push(b"x"), Some(Err(ReadyError::TooLong)));

        let mut reader = ReadyLineReader::new();
        assert_eq!(reader.push(b"\xff\xfe\n"), Some(Err(ReadyError::NotUtf8)));
    }
}
