//! The agent's TOML configuration file; a file that parses also merges over the defaults.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use notify::cmd::agent::config::{Layer, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Layer::from_toml(text, Path::new("agent.toml")) {
        Ok(l) => {
            let s = Settings::merge(&[&l]);
            let _ = Settings::default().changed(&s);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
