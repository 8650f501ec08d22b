//! Every input kept from fuzzing the protocol decoders (the minimised
//! corpus of each target, and any input that ever crashed one) goes through
//! the same checks the fuzz targets make, in the normal test suite: what
//! was fixed stays fixed without cargo-fuzz.

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every input of `fuzz/regressions/TARGET.inputs` (each
/// a 4-byte little-endian length and its bytes: fuzz/pack-regressions.py
/// makes it) and on every file of `fuzz/regressions/TARGET/` (inputs that
/// once crashed the target); there must be some.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let packed_path = dir.join(format!("{target}.inputs"));
    let packed =
        std::fs::read(&packed_path).unwrap_or_else(|e| panic!("{}: {e}", packed_path.display()));
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rest = &packed[..];
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        inputs.push((
            format!("{} #{}", packed_path.display(), inputs.len()),
            rest[4..4 + len].to_vec(),
        ));
        rest = &rest[4 + len..];
    }
    if let Ok(crashes) = std::fs::read_dir(dir.join(target)) {
        for entry in crashes {
            let path = entry.unwrap().path();
            inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(inputs.len() > 100, "{} inputs for {target}", inputs.len());
    for (name, input) in &inputs {
        let outcome = std::panic::catch_unwind(|| check(input));
        assert!(outcome.is_ok(), "{name} fails its check again");
    }
}

#[test]
fn syslog_inputs_found_by_fuzzing_stay_handled() {
    replay("syslog", checks::syslog);
}

#[test]
fn forward_inputs_found_by_fuzzing_stay_handled() {
    replay("forward", checks::forward);
}

#[test]
fn otlp_inputs_found_by_fuzzing_stay_handled() {
    replay("otlp", checks::otlp);
}

#[test]
fn zipkin_inputs_found_by_fuzzing_stay_handled() {
    replay("zipkin", checks::zipkin);
}
