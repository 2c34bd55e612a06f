//! Fuzzes format detection end to end: `read_str` with no format detects
//! one and reads with it; errors must name a line, successes must pair
//! without panicking, and detection must agree with what was read.
#![no_main]

use faultline::history::read::detect;
use faultline::history::read_str;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let detected = detect(&text);
    match read_str(&text, Path::new("fuzz"), None) {
        Ok(h) => {
            assert_eq!(h.lines.len(), h.ops.len());
            if detected.is_none() {
                assert!(h.is_empty(), "undetected text read as {} ops", h.len());
            }
            let _ = h.calls();
        }
        Err(e) => assert!(e.line.is_some(), "error without a line: {e}"),
    }
});
