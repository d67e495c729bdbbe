//! The safetensors header parser on arbitrary files: never panics, accepts exactly the files the
//! `safetensors` crate's `read_metadata` accepts, and every window it gives lies inside the file, after the
//! header, without overlapping another, at the crate's offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mmap_serve::__fuzz::safetensors_index;

fuzz_target!(|file: &[u8]| {
    let ours = safetensors_index(file);
    let theirs = safetensors::SafeTensors::read_metadata(file);
    let (header, mut tensors) = match (ours, theirs) {
        (Ok(index), Ok(_)) => index,
        (Err(_), Err(_)) => return,
        (ours, theirs) => panic!("we say {ours:?}, safetensors says {theirs:?}"),
    };
    let (n, metadata) = safetensors::SafeTensors::read_metadata(file).expect("accepted above");
    let len = file.len() as u64;
    assert_eq!(header, 8..8 + n as u64);
    assert_eq!(tensors.len(), metadata.tensors().len());
    tensors.sort_by_key(|t| (t.window.start, t.window.end));
    let mut at = header.end;
    for t in &tensors {
        assert!(t.window.start >= at && t.window.start <= t.window.end && t.window.end <= len, "{t:?}");
        at = t.window.end;
        let info = metadata.info(&t.name).expect("a tensor the crate knows");
        let (begin, end) = info.data_offsets;
        assert_eq!(t.window, header.end + begin as u64..header.end + end as u64);
        assert_eq!(t.dtype, info.dtype.to_string());
        let shape: Vec<String> = info.shape.iter().map(usize::to_string).collect();
        assert_eq!(t.shape, shape.join(","));
    }
    assert_eq!(at, len, "the data ends at the end of the file");
});
