//! The manifest loader and `check` (load, render, validate) on any text:
//! never panic, and every error names the file.
#![no_main]

use std::path::Path;

use fairlead_operator::manifest::load_text;
use fairlead_operator::render::render;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.yaml");
    let manifests = load_text(file, text, "default");
    for error in &manifests.errors {
        assert_eq!(error.file, file);
    }
    if manifests.errors.is_empty() {
        let rendered = render(&manifests.snapshot);
        for error in &rendered.errors {
            let _ = manifests.locate(error).to_string();
        }
        if rendered.errors.is_empty() {
            rendered
                .config
                .validate()
                .expect("a rendered config validates");
        }
    }
});
