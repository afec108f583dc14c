//! Configuration: YAML with `${VAR}` expansion, the Go guide's sections and keys, and errors that
//! name the file and the key.
//!
//! `${VAR}` and `${VAR:-default}` are expanded inside string values after parsing, so a
//! secret containing `: ` or `#` cannot change the document's structure. A value that is
//! exactly one `${VAR}` is read again as a YAML scalar, so `port: ${PORT}` is a number.
//! An unset variable without a default is an error. Relative paths are relative to the
//! directory of the config file.

mod checked;
mod cidr;
mod expand;
mod oauth;
mod raw;

pub use checked::*;
pub use cidr::Cidr;
pub use oauth::{certificate_name_key, Client, OAuthSettings};
pub use raw::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads, expands, parses and checks the config file at `file`.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    parse(file, &read(file)?, &|name| std::env::var(name).ok())
}

/// Reads the `guest` section of the config file at `file` alone, expanded and checked: what
/// `compile-guest` and `bench-guest` need, without the clients' secrets or the store's
/// variables.
pub fn load_guest(file: &Path) -> Result<GuestConfig, ConfigError> {
    parse_guest(file, &read(file)?, &|name| std::env::var(name).ok())
}

/// Parses config `text` that came from `file`, reading variables through `env`.
pub fn parse(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let config: Config = section(file, text, env, "")?;
    checked::check(config, base(file)).map_err(|(key, message)| error(file, &key, message))
}

/// [`load_guest`] on config `text` that came from `file`.
pub fn parse_guest(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<GuestConfig, ConfigError> {
    let guest: GuestConfig = section(file, text, env, "guest")?;
    checked::check_guest(guest, base(file)).map_err(|(key, message)| error(file, &key, message))
}

fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|e| error(file, "", format!("cannot read: {e}")))
}

/// The section of `text` at top-level key `name` (the whole document for ""), its
/// variables expanded, deserialized; errors name the file and the key.
fn section<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<T, ConfigError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| error(file, "", format!("invalid YAML: {e}")))?;
    let mut value = match name {
        "" => doc,
        name => doc
            .get(name)
            .cloned()
            .ok_or_else(|| error(file, "", format!("missing field `{name}`")))?,
    };
    expand::expand(&mut value, name, env).map_err(|(key, message)| error(file, &key, message))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = match (name, e.path().to_string()) {
            (name, inner) if inner == "." => name.to_owned(),
            ("", inner) => inner,
            (name, inner) => format!("{name}.{inner}"),
        };
        error(file, &key, e.into_inner().to_string())
    })
}

/// Relative paths in the file are relative to its directory.
fn base(file: &Path) -> &Path {
    file.parent().unwrap_or(Path::new("."))
}

fn error(file: &Path, key: &str, message: String) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        key: key.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests;
