//! Filter conditions come from the configuration: any text must parse or
//! fail with an error naming a column inside it, never panic or recurse
//! without bound; what parses must evaluate on any record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_agent::record::{LogRecord, Value};
use weir_agent::transform::expr::Expr;

fuzz_target!(|text: &str| {
    match Expr::parse(text) {
        Ok(expr) => {
            let record = LogRecord {
                severity: Some(3),
                body: b"body text".to_vec(),
                attributes: vec![("a".into(), Value::Int(1))],
                resource: vec![("r".into(), "x".into())],
                ..LogRecord::default()
            };
            let _ = expr.matches(&record);
        }
        Err(e) => assert!(e.column >= 1 && e.column <= text.len() + 1, "{e}"),
    }
});
