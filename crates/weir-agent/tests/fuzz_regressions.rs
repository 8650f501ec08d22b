//! Every input kept from fuzzing the protocol decoders (the minimised
//! corpus of each target, and any input that ever crashed one) goes through
//! the same checks the fuzz targets make, in the normal test suite: what
//! was fixed stays fixed without cargo-fuzz.

#[path = "../../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `fuzz/regressions/TARGET`; there must be
/// some.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{} fails its check again", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "no inputs in {}", dir.display());
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
