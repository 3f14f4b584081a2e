//! The data key's life in a keystore: made once, stored before use, reused, and refused rather
//! than replaced whenever replacing could cost data.

use std::path::Path;

use super::fake::MemoryKeyStore;
use super::*;
use crate::test_dir::TempDir;

fn is_key_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

fn account(dir: &Path) -> String {
    format!("data-key:{}", std::fs::canonicalize(dir).unwrap().display())
}

#[test]
fn the_first_start_makes_a_key_and_stores_it_before_use() {
    let tmp = TempDir::new();
    let data_dir = tmp.path().join("nested/data");
    let store = MemoryKeyStore::default();
    let key = load_or_create(&store, &data_dir).unwrap();

    let ((service, account_name), stored) = store.only_entry();
    assert_eq!(service, "kensa");
    assert_eq!(account_name, account(&data_dir));
    assert!(account_name.starts_with("data-key:/"), "{account_name}");
    assert!(is_key_hex(&stored), "{stored}");
    assert_eq!(*key.hex(), stored);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        // An existing folder open to others is closed at the next start.
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        load_or_create(&store, &data_dir).unwrap();
        let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn the_next_start_reuses_the_stored_key() {
    let tmp = TempDir::new();
    let data_dir = tmp.path().join("data");
    let store = MemoryKeyStore::default();
    let first = load_or_create(&store, &data_dir).unwrap();
    let second = load_or_create(&store, &data_dir).unwrap();
    assert_eq!(*first.hex(), *second.hex());
    assert_eq!(store.only_entry().1, *first.hex());

    // Another tablet's folder is another entry with another key.
    let other = load_or_create(&store, &tmp.path().join("other")).unwrap();
    assert_ne!(*other.hex(), *first.hex());
    assert_eq!(store.entries.lock().unwrap().len(), 2);
}

#[cfg(unix)]
#[test]
fn the_account_names_the_resolved_folder_as_python_resolves_it() {
    let tmp = TempDir::new();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let store = MemoryKeyStore::default();
    let through_link = load_or_create(&store, &link.join("../link/.")).unwrap();
    let direct = load_or_create(&store, &real).unwrap();
    assert_eq!(*through_link.hex(), *direct.hex());
    assert_eq!(store.only_entry().0 .1, account(&real));
}

#[test]
fn windows_verbatim_paths_lose_their_prefix_as_python_writes_them() {
    let cases = [
        (
            r"\\?\C:\Users\k\AppData\Local\x",
            r"C:\Users\k\AppData\Local\x",
        ),
        (r"\\?\UNC\server\share\x", r"\\server\share\x"),
        (r"\\?\Volume{1234}\x", r"\\?\Volume{1234}\x"),
        ("/home/k/.local/share/x", "/home/k/.local/share/x"),
    ];
    for (canonical, python) in cases {
        assert_eq!(
            without_verbatim_prefix(std::path::PathBuf::from(canonical)),
            Path::new(python)
        );
    }
}

#[test]
fn a_keystore_error_is_an_error_and_makes_no_key() {
    let tmp = TempDir::new();
    let store = MemoryKeyStore::failing("the OS keystore failed: the collection is locked");
    let err = load_or_create(&store, &tmp.path().join("data")).unwrap_err();
    assert_eq!(err.0, "the OS keystore failed: the collection is locked");
    assert!(store.entries.lock().unwrap().is_empty());
}

#[test]
fn an_entry_that_is_not_a_key_is_refused_and_left_alone() {
    let tmp = TempDir::new();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let account = account(&data_dir);
    let upper = "AB".repeat(32);
    let short = "ab".repeat(31);
    let not_hex = format!("{}zz", "ab".repeat(31));
    for bad in [
        "",
        "hunter2",
        upper.as_str(),
        short.as_str(),
        not_hex.as_str(),
    ] {
        let store = MemoryKeyStore::default();
        store
            .set(SERVICE, &account, bad)
            .expect("the fake stores anything");
        let err = load_or_create(&store, &data_dir).unwrap_err();
        assert!(err.0.contains("is not a kensa data key"), "{err}");
        if !bad.is_empty() {
            assert!(!err.0.contains(bad), "the message quotes the entry: {err}");
        }
        assert_eq!(store.only_entry().1, bad, "the entry was replaced");
    }
}

#[test]
fn a_stored_key_with_a_trailing_newline_is_read() {
    let tmp = TempDir::new();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let store = MemoryKeyStore::default();
    let hex = "0123456789abcdef".repeat(4);
    store
        .set(SERVICE, &account(&data_dir), &format!("{hex}\n"))
        .unwrap();
    assert_eq!(*load_or_create(&store, &data_dir).unwrap().hex(), hex);
}

#[test]
fn no_key_for_a_folder_with_an_encrypted_database_is_refused() {
    let tmp = TempDir::new();
    let data_dir = tmp.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let database = data_dir.join("kensa.db");
    // What SQLCipher leaves: a random salt where SQLite writes its header.
    let encrypted: Vec<u8> = (0u8..=255).cycle().skip(7).take(4096).collect();
    std::fs::write(&database, &encrypted).unwrap();
    let store = MemoryKeyStore::default();
    let err = load_or_create(&store, &data_dir).unwrap_err();
    assert!(err.0.contains("holds an encrypted database"), "{err}");
    assert!(err.0.contains("restore the key"), "{err}");
    assert!(
        store.entries.lock().unwrap().is_empty(),
        "a useless key was stored"
    );
    assert_eq!(std::fs::read(&database).unwrap(), encrypted);

    // A plaintext store (to be converted by `kensa db encrypt`) or an empty file gets a new key.
    std::fs::write(&database, b"SQLite format 3\0rest of the first page").unwrap();
    load_or_create(&store, &data_dir).unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("kensa.db"), b"").unwrap();
    load_or_create(&store, &other).unwrap();
    assert_eq!(store.entries.lock().unwrap().len(), 2);
}

#[test]
fn the_stdin_line_is_exactly_one_json_line() {
    let key = DataKey::generate();
    let line = key.stdin_line();
    let text = std::str::from_utf8(&line).unwrap();
    assert_eq!(text, format!("{{\"data_key\":\"{}\"}}\n", &*key.hex()));
    assert_eq!(text.matches('\n').count(), 1);
    let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(parsed, serde_json::json!({"data_key": &*key.hex()}));
}

#[test]
fn keys_are_random_hex_round_trip_and_never_print() {
    let a = DataKey::generate();
    let b = DataKey::generate();
    assert!(is_key_hex(&a.hex()));
    assert_ne!(*a.hex(), *b.hex());
    assert_eq!(*DataKey::from_hex(&a.hex()).unwrap().hex(), *a.hex());
    assert_eq!(format!("{a:?}"), "DataKey(<hidden>)");
    for bad in [
        "",
        "ab",
        &"AB".repeat(32),
        &"ab".repeat(33),
        &format!("{}g0", "ab".repeat(31)),
    ] {
        assert!(DataKey::from_hex(bad).is_none(), "{bad}");
    }
}

#[cfg(all(unix, debug_assertions))]
#[test]
fn the_debug_key_file_is_private_or_refused() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = TempDir::new();
    let data_dir = tmp.path().join("data");
    let path = tmp.path().join("dev.key");
    let store = FileKeyStore { path: path.clone() };
    let made = load_or_create(&store, &data_dir).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", &*made.hex())
    );
    assert_eq!(
        *load_or_create(&store, &data_dir).unwrap().hex(),
        *made.hex()
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load_or_create(&store, &data_dir).unwrap_err();
    assert!(err.0.contains("has mode 0644; it must be 0600"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        format!("{}\n", &*made.hex())
    );
}

/// Found on PATH.
#[cfg(target_os = "linux")]
fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(target_os = "linux")]
const INSIDE_MARK: &str = "the OS keystore kept the data key";

/// The real OS keystore: gnome-keyring's Secret Service on a private D-Bus session, with HOME in
/// a scratch folder, and this test binary run again inside that session for the half that talks
/// to it (the session's address is only in that process's environment). Skipped where
/// gnome-keyring or dbus-run-session is not installed.
#[cfg(target_os = "linux")]
#[test]
fn the_os_keystore_keeps_the_key_across_starts() {
    if !installed("gnome-keyring-daemon") || !installed("dbus-run-session") {
        eprintln!("skipped: no gnome-keyring-daemon or dbus-run-session");
        return;
    }
    let tmp = TempDir::new();
    let runtime = tmp.path().join("run");
    create_private_dir(&runtime).unwrap();
    // The login keyring gnome-keyring makes and unlocks with this password, on a machine with
    // no one to answer a prompt.
    let script = r#"printf kensa-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 && exec "$0" --exact keystore::tests::inside_a_secret_service_session --ignored --nocapture --test-threads=1"#;
    let output = std::process::Command::new("dbus-run-session")
        .args(["--", "sh", "-c", script])
        .arg(std::env::current_exe().unwrap())
        .env("HOME", tmp.path())
        .env("XDG_DATA_HOME", tmp.path().join("data"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("KENSA_TEST_SECRET_SERVICE_DIR", tmp.path().join("tablet"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(INSIDE_MARK), "{stdout}\n{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by the_os_keystore_keeps_the_key_across_starts inside its own D-Bus session"]
fn inside_a_secret_service_session() {
    let Some(data_dir) = std::env::var_os("KENSA_TEST_SECRET_SERVICE_DIR") else {
        eprintln!("only meaningful inside the_os_keystore_keeps_the_key_across_starts");
        return;
    };
    let data_dir = std::path::PathBuf::from(data_dir);
    let made = load_or_create(&OsKeyStore, &data_dir).unwrap();
    let again = load_or_create(&OsKeyStore, &data_dir).unwrap();
    assert_eq!(*again.hex(), *made.hex());
    let stored = OsKeyStore
        .get(SERVICE, &account(&data_dir))
        .unwrap()
        .expect("the entry is in the keystore");
    assert_eq!(*stored, *made.hex());
    assert!(OsKeyStore
        .get(SERVICE, "data-key:/no/such/tablet")
        .unwrap()
        .is_none());

    // `kensa serve` reads the same entry through Python's keyring.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if python.exists() {
        let read = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, keyring; print(keyring.get_password('kensa', sys.argv[1]) or '')",
                &account(&data_dir),
            ])
            .output()
            .unwrap();
        if read.status.success() {
            assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), *made.hex());
        } else {
            eprintln!(
                "Python's keyring not checked: {}",
                String::from_utf8_lossy(&read.stderr)
            );
        }
    }
    println!("{INSIDE_MARK}");
}
