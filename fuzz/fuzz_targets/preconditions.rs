//! RFC 9110 §13 precondition evaluation on arbitrary header bytes: never panics, and 304 only for GET/HEAD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmap_serve::__fuzz::{Verdict, evaluate_preconditions};

const NAMES: [&str; 5] = ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"];

fuzz_target!(|input: (u8, Vec<(u8, Vec<u8>)>, Vec<u8>)| {
    let (method, fields, etag) = input;
    let method = [http::Method::GET, http::Method::HEAD, http::Method::POST][usize::from(method % 3)].clone();
    let mut headers = http::HeaderMap::new();
    for (name, value) in fields.into_iter().take(16) {
        if let Ok(value) = http::HeaderValue::from_bytes(&value) {
            headers.append(NAMES[usize::from(name) % NAMES.len()], value);
        }
    }
    let verdict = evaluate_preconditions(&method, &headers, &etag, 1_700_000_000);
    if verdict == Verdict::NotModified {
        assert!(method == http::Method::GET || method == http::Method::HEAD);
    }
});
