//! Fuzzes the `jsonl` reader: any input must give a history or a ReadError
//! naming a line, and pairing a history it read must not panic either.
#![no_main]

use faultline::history::{read_str, Format};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    // Readers take text; lossy decoding still lets every byte string in.
    let text = String::from_utf8_lossy(data);
    match read_str(&text, Path::new("fuzz"), Some(Format::Jsonl)) {
        Ok(h) => {
            assert_eq!(h.lines.len(), h.ops.len());
            let _ = h.calls();
        }
        Err(e) => assert!(e.line.is_some(), "error without a line: {e}"),
    }
});
