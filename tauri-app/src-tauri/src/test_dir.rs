//! A scratch directory for the tests, removed on drop (tempfile, as a dev-dependency, would cost
//! a second build of tauri; see Cargo.toml).

use std::path::{Path, PathBuf};

use crate::token::new_token;

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("kensa-shell-test-{}", &new_token()[..16]));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
