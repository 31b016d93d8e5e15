//! The backend token, from the environment variable named by `--token-env` (in the
//! demo, `BACKEND_TOKEN`, filled from a Secret). The value is never logged.

use std::fmt;

use anyhow::{Result, bail};

/// The token, trimmed. Its `Debug` output does not show the value.
pub struct BackendToken(String);

impl BackendToken {
    /// Checks the value of env `name` (`None` when unset): it must not be blank.
    pub fn from_env_value(name: &str, value: Option<String>) -> Result<Self> {
        if name.is_empty() || name.contains(['=', '\0']) {
            bail!("--token-env {name:?} is not an environment variable name");
        }
        match value.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => Ok(BackendToken(token.to_string())),
            _ => bail!(
                "{name} is empty or unset: this server needs the backend token from its Secret (env {name})"
            ),
        }
    }

    /// Its length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for BackendToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendToken(<{} bytes>)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(name: &str, value: Option<&str>) -> String {
        BackendToken::from_env_value(name, value.map(String::from))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn needs_a_token() {
        let expected = "BACKEND_TOKEN is empty or unset: this server needs the backend token from its Secret (env BACKEND_TOKEN)";
        assert_eq!(error("BACKEND_TOKEN", None), expected);
        assert_eq!(error("BACKEND_TOKEN", Some("")), expected);
        assert_eq!(error("BACKEND_TOKEN", Some(" \n\t")), expected);
        assert!(error("", Some("x")).contains("not an environment variable name"));
        assert!(error("A=B", Some("x")).contains("not an environment variable name"));
    }

    #[test]
    fn keeps_the_token_out_of_debug_output() {
        let token =
            BackendToken::from_env_value("BACKEND_TOKEN", Some(" s3cret\n".into())).unwrap();
        assert_eq!(token.len(), 6);
        assert_eq!(token.0, "s3cret");
        assert_eq!(format!("{token:?}"), "BackendToken(<6 bytes>)");
    }
}
