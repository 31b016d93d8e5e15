//! A grants file of a test's own (the operator's `--grants`), rewritten in place as the test
//! goes; the operator reloads it without a restart.

use std::path::PathBuf;

use extension_server_operator::context::Settings;

/// A grants file of the test's own, rewritten in place as the test goes.
pub struct GrantsFile(PathBuf);

impl GrantsFile {
    pub fn new(tag: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("eso-grants-{tag}-{}.yaml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
    pub fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }
    pub fn settings(&self) -> Settings {
        Settings {
            grants_file: Some(self.0.clone()),
            ..Settings::default()
        }
    }
}

impl Drop for GrantsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
