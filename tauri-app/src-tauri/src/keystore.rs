//! The tablet's data key: 32 random bytes that open the encrypted device database and wrap the
//! photo keys. It lives in the OS keystore (Secret Service, Credential Manager, Keychain) under
//! service "kensa", account "data-key:" + the absolute data directory, the same entry
//! `kensa serve` reads through Python's `keyring`. The shell reads it for each spawn and hands it
//! to the sidecar as the first line on its stdin, `{"data_key":"<64 hex>"}`: never in the
//! environment, argv, a file or a log, all of which other processes or crash reports can see.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

pub const SERVICE: &str = "kensa";
/// The database file inside the data directory (the sidecar's settings name it so).
const DATABASE_FILE: &str = "kensa.db";
const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStoreError(pub String);

impl fmt::Display for KeyStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyStoreError {}

/// Where secrets are kept. The OS keystore in the app; an in-memory one in the tests.
pub trait KeyStore: Send + Sync {
    /// The secret stored under (service, account); `None` when there is no such entry.
    fn get(&self, service: &str, account: &str)
        -> Result<Option<Zeroizing<String>>, KeyStoreError>;
    fn set(&self, service: &str, account: &str, secret: &str) -> Result<(), KeyStoreError>;
}

/// The platform's keystore through the `keyring` crate.
pub struct OsKeyStore;

impl KeyStore for OsKeyStore {
    fn get(
        &self,
        service: &str,
        account: &str,
    ) -> Result<Option<Zeroizing<String>>, KeyStoreError> {
        let entry = keyring::Entry::new(service, account).map_err(keystore_error)?;
        match entry.get_password() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(keystore_error(err)),
        }
    }

    fn set(&self, service: &str, account: &str, secret: &str) -> Result<(), KeyStoreError> {
        keyring::Entry::new(service, account)
            .and_then(|entry| entry.set_password(secret))
            .map_err(keystore_error)
    }
}

// keyring's messages never quote the secret (a non-UTF-8 one is only "not UTF-8 encoded").
fn keystore_error(err: keyring::Error) -> KeyStoreError {
    KeyStoreError(format!("the OS keystore failed: {err}"))
}

/// The tablet's data key. Zeroed when dropped; its Debug output hides it.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Self {
        let mut raw = Zeroizing::new([0u8; 32]);
        // Without an OS random source there is no key to make and nothing safe to fall back to.
        getrandom::fill(raw.as_mut()).expect("the operating system's random generator failed");
        Self(raw)
    }

    /// Exactly 64 lower-case hex digits, the form both the keystore entry and the sidecar use.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        for (byte, pair) in raw.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(raw))
    }

    pub fn hex(&self) -> Zeroizing<String> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = Zeroizing::new(String::with_capacity(64));
        for byte in self.0.iter() {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }

    /// The one line the sidecar reads first when started with `--key-stdin`.
    pub fn stdin_line(&self) -> Zeroizing<Vec<u8>> {
        let hex = self.hex();
        let mut line = Zeroizing::new(Vec::with_capacity(80));
        line.extend_from_slice(b"{\"data_key\":\"");
        line.extend_from_slice(hex.as_bytes());
        line.extend_from_slice(b"\"}\n");
        line
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<hidden>)")
    }
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// The keystore account of the data directory: "data-key:" + its absolute, resolved path, as
/// Python's `Path.resolve()` writes it, so that `kensa serve` on the same folder finds the same
/// entry. Creates the directory (0700 on Unix) when missing: only an existing path resolves
/// symbolic links the way Python does.
pub fn account_for(data_dir: &Path) -> Result<String, KeyStoreError> {
    create_private_dir(data_dir).map_err(|err| {
        KeyStoreError(format!(
            "cannot create the data folder {}: {err}",
            data_dir.display()
        ))
    })?;
    let resolved = std::fs::canonicalize(data_dir).map_err(|err| {
        KeyStoreError(format!(
            "cannot resolve the data folder {}: {err}",
            data_dir.display()
        ))
    })?;
    Ok(format!(
        "data-key:{}",
        without_verbatim_prefix(resolved).display()
    ))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    // A folder an older version made with the default umask is closed too: the database is
    // encrypted, but photo names, logs and the webview's storage are nobody else's business.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Windows' canonical form is `\\?\C:\…` (or `\\?\UNC\server\…`); Python resolves to `C:\…`.
fn without_verbatim_prefix(path: PathBuf) -> PathBuf {
    let text = path.to_string_lossy();
    if let Some(rest) = text.strip_prefix(r"\\?\UNC\") {
        return PathBuf::from(format!(r"\\{rest}"));
    }
    if let Some(rest) = text.strip_prefix(r"\\?\") {
        if rest.as_bytes().get(1) == Some(&b':') {
            return PathBuf::from(rest);
        }
    }
    path
}

/// The data key for `data_dir`: the keystore's, or on the first start a new one, stored before
/// it is used (a key that only ever lived in memory would lock the tablet out of its own data
/// at the next start).
pub fn load_or_create(store: &dyn KeyStore, data_dir: &Path) -> Result<DataKey, KeyStoreError> {
    let account = account_for(data_dir)?;
    if let Some(stored) = store.get(SERVICE, &account)? {
        return DataKey::from_hex(stored.trim_end()).ok_or_else(|| {
            // Not replaced: whatever is there may be what someone needs to recover the data.
            KeyStoreError(format!(
                "the OS keystore's entry {SERVICE}/{account} is not a kensa data key \
                 (64 hexadecimal digits); it was left as it is"
            ))
        });
    }
    if holds_encrypted_database(data_dir) {
        // A new key cannot open it; storing one would only hide that the real key is missing.
        return Err(KeyStoreError(format!(
            "the OS keystore has no data key for {} ({SERVICE}/{account}), but that folder \
             holds an encrypted database: restore the key into the keystore, or move the \
             folder away to start with an empty tablet",
            data_dir.display()
        )));
    }
    let key = DataKey::generate();
    store.set(SERVICE, &account, &key.hex())?;
    Ok(key)
}

/// A database file that exists, is not empty and is not plaintext SQLite: encrypted (or
/// damaged, which the sidecar reports on its own).
fn holds_encrypted_database(data_dir: &Path) -> bool {
    use std::io::Read as _;
    let Ok(mut file) = std::fs::File::open(data_dir.join(DATABASE_FILE)) else {
        return false;
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    let encrypted = read > 0 && header[..read] != SQLITE_HEADER[..read];
    header.zeroize();
    encrypted
}

/// A key kept in a file outside the data directory, for development machines without a
/// keystore (a headless box, a container). Debug builds only: a shipped shell never reads a key
/// from a file. Refused unless the file is private to its owner (mode 0600), as `kensa serve`
/// refuses `KENSA_KEY_FILE`.
#[cfg(debug_assertions)]
pub struct FileKeyStore {
    pub path: PathBuf,
}

#[cfg(debug_assertions)]
impl KeyStore for FileKeyStore {
    fn get(&self, _: &str, _: &str) -> Result<Option<Zeroizing<String>>, KeyStoreError> {
        let fail = |err: std::io::Error| {
            KeyStoreError(format!(
                "cannot read the key file {}: {err}",
                self.path.display()
            ))
        };
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(fail(err)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode != 0o600 {
                return Err(KeyStoreError(format!(
                    "the key file {} has mode {mode:04o}; it must be 0600",
                    self.path.display()
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let text = std::fs::read_to_string(&self.path).map_err(fail)?;
        Ok(Some(Zeroizing::new(text)))
    }

    fn set(&self, _: &str, _: &str, secret: &str) -> Result<(), KeyStoreError> {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let fail = |err: std::io::Error| {
            KeyStoreError(format!(
                "cannot write the key file {}: {err}",
                self.path.display()
            ))
        };
        let mut file = options.open(&self.path).map_err(fail)?;
        file.write_all(secret.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(fail)
    }
}

#[cfg(test)]
pub mod fake {
    //! An in-memory keystore, and one that fails, for the tests.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use zeroize::Zeroizing;

    use super::{KeyStore, KeyStoreError};

    #[derive(Default)]
    pub struct MemoryKeyStore {
        pub entries: Mutex<HashMap<(String, String), String>>,
        /// When set, every call fails with this message (a locked or absent Secret Service).
        pub failure: Option<String>,
    }

    impl MemoryKeyStore {
        pub fn failing(message: &str) -> Self {
            Self {
                failure: Some(message.to_owned()),
                ..Self::default()
            }
        }

        pub fn only_entry(&self) -> ((String, String), String) {
            let entries = self.entries.lock().unwrap();
            assert_eq!(entries.len(), 1, "{:?}", entries.keys());
            let (key, value) = entries.iter().next().unwrap();
            (key.clone(), value.clone())
        }
    }

    impl KeyStore for MemoryKeyStore {
        fn get(
            &self,
            service: &str,
            account: &str,
        ) -> Result<Option<Zeroizing<String>>, KeyStoreError> {
            if let Some(message) = &self.failure {
                return Err(KeyStoreError(message.clone()));
            }
            let entries = self.entries.lock().unwrap();
            Ok(entries
                .get(&(service.to_owned(), account.to_owned()))
                .map(|secret| Zeroizing::new(secret.clone())))
        }

        fn set(&self, service: &str, account: &str, secret: &str) -> Result<(), KeyStoreError> {
            if let Some(message) = &self.failure {
                return Err(KeyStoreError(message.clone()));
            }
            self.entries
                .lock()
                .unwrap()
                .insert((service.to_owned(), account.to_owned()), secret.to_owned());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
