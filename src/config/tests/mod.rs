//! Tests of the configuration as a whole: each loads settings from its own file and environment,
//! through every layer, and checks what comes out.

use std::io::Write;

use crate::config::{ConfigError, Settings, Sources};

mod auth;
mod layers;
mod prices;
mod providers;
mod ranges;
mod redis;
mod server;

/// Settings from `env` and, when given, a TOML file holding `file`.
fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
    let tmp = file.map(|text| {
        let mut f = tempfile::NamedTempFile::with_suffix(".toml").unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    });
    Settings::from_sources(Sources {
        file: tmp.as_ref().map(|f| f.path()),
        toml: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}
