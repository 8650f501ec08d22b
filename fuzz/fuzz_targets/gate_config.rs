//! The gate file is written by hand: any text must either load or give an
//! error naming the file, never panic; and what loads must be usable.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weir_gate::config::{AppRequest, GateFile, resolve};

fuzz_target!(|text: &str| {
    match GateFile::parse(Path::new("fuzz.toml"), text) {
        Ok(file) => {
            let request = AppRequest {
                name: "fuzz".into(),
                ..AppRequest::default()
            };
            if let Ok(resolved) = resolve(Some(&file), &request) {
                assert!(resolved.weight >= 1);
                if let Some(budget) = resolved.container {
                    assert!(budget.rate > 0.0 && budget.burst >= 1);
                }
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml")),
    }
});
