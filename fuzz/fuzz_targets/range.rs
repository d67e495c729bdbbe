//! The Range parser and planner: never panics, every planned part lies inside the file, parts are disjoint and
//! never add up to more than the file, and a multipart answer is refused when larger than the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmap_serve::__fuzz::{Plan, plan_ranges};

fuzz_target!(|input: (&[u8], u64, u16)| {
    let (header, len, max_ranges) = input;
    let len = len % (1 << 40);
    match plan_ranges(header, len, usize::from(max_ranges)) {
        Plan::Full | Plan::Unsatisfiable => {}
        Plan::Single(part) => assert!(part.start < part.end && part.end <= len),
        Plan::Multi(parts) => {
            assert!(parts.len() >= 2 && parts.len() <= usize::from(max_ranges));
            let mut sorted = parts.clone();
            sorted.sort_by_key(|p| p.start);
            for pair in sorted.windows(2) {
                assert!(pair[0].end < pair[1].start, "disjoint and not adjacent: {parts:?}");
            }
            let total: u64 = parts.iter().map(|p| p.end - p.start).sum();
            assert!(parts.iter().all(|p| p.start < p.end && p.end <= len) && total <= len);
        }
    }
});
