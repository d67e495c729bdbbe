use std::path::Path;

use super::*;

fn head(uri: &str) -> http::request::Parts {
    http::Request::get(uri)
        .body(())
        .expect("a valid request")
        .into_parts()
        .0
}

/// A safetensors file with header `json` and `data_len` bytes of data (byte `i` is `i % 251`).
fn write(path: &Path, json: &str, data_len: usize) {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend((0..data_len).map(|i| (i % 251) as u8));
    std::fs::write(path, out).expect("write");
}

const JSON: &str = r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"a/b.c":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}"#;

fn resolver(root: &Path) -> SafetensorsResolver {
    SafetensorsResolver::new(DirResolver::new(root), Arc::new(MmapCache::new(16)))
}

/// The answer of `r` for `uri`, outside a runtime (where a miss is looked up inline, and so ready).
fn now(r: &SafetensorsResolver, uri: &str) -> Resolution {
    match r.resolve(&head(uri)) {
        Resolving::Ready(resolution) => resolution,
        Resolving::Pending(_) => panic!("outside a runtime every answer is ready"),
    }
}

#[test]
fn paths_split_at_the_first_safetensors_file_with_a_part() {
    let tensor = |name: &'static str| Some(Part::Tensor(Cow::Borrowed(name)));
    type Split = Option<(&'static str, Option<Part<'static>>)>;
    let cases: [(&str, Split); 9] = [
        ("/m.safetensors", None),
        ("/m.safetensors/", None),
        ("/m.safetensors/other", None),
        ("/m.safetensors/headers", None),
        (
            "/m.safetensors/header",
            Some(("/m.safetensors", Some(Part::Header))),
        ),
        (
            "/a/m.safetensors/tensors/layer.0.weight",
            Some(("/a/m.safetensors", tensor("layer.0.weight"))),
        ),
        (
            "/m.safetensors/tensors/a%2Fb",
            Some(("/m.safetensors", tensor("a/b"))),
        ),
        (
            "/m.safetensors/tensors/a/b",
            Some(("/m.safetensors", tensor("a/b"))),
        ),
        (
            "/d.safetensors/m.safetensors/tensors/w",
            Some(("/d.safetensors/m.safetensors", tensor("w"))),
        ),
    ];
    for (path, expected) in cases {
        let got = split(path).map(|(file, part)| (file, part.ok()));
        assert_eq!(got, expected, "{path}");
    }
}

#[test]
fn a_malformed_escape_is_400_and_a_name_that_is_not_utf8_is_404() {
    for raw in ["%zz", "a%2", "%", "ok%G0"] {
        let Some((_, Err(r))) = split(&format!("/m.safetensors/tensors/{raw}")) else {
            panic!("{raw} is malformed");
        };
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    assert!(matches!(
        split("/m.safetensors/tensors/%ff"),
        Some((_, Ok(Part::Unnamable)))
    ));
    assert_eq!(
        decode_name("caf%C3%A9.%25").ok(),
        Some(Part::Tensor(Cow::Borrowed("café.%")))
    );
}

#[test]
fn a_tensor_is_a_pinned_window_with_its_dtype_and_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.safetensors");
    write(&path, JSON, 19);
    let r = resolver(dir.path());
    let n = JSON.len() as u64;
    let Resolution::File(file) = now(&r, "/m.safetensors/tensors/w") else {
        panic!("a tensor");
    };
    assert_eq!(file.path, path);
    assert_eq!(file.window, Some(8 + n..8 + n + 16));
    assert_eq!(
        file.version.as_ref(),
        Some(MmapFile::new(&path).expect("open").identity())
    );
    assert_eq!(file.headers().unwrap()["x-tensor-dtype"], "F32");
    assert_eq!(file.headers().unwrap()["x-tensor-shape"], "2,2");
    assert_eq!(
        file.content_type.as_ref().expect("a type"),
        "application/octet-stream"
    );
    assert!(
        file.confinement().is_some(),
        "the DirResolver's confinement"
    );

    let Resolution::File(file) = now(&r, "/m.safetensors/tensors/a%2Fb.c") else {
        panic!("a tensor");
    };
    assert_eq!(file.window, Some(8 + n + 16..8 + n + 19));
    let Resolution::File(header) = now(&r, "/m.safetensors/header") else {
        panic!("the header");
    };
    assert_eq!(header.window, Some(8..8 + n));
    assert_eq!(
        header.content_type.as_ref().expect("a type"),
        "application/json"
    );
    assert!(header.headers().is_none());

    assert!(matches!(
        now(&r, "/m.safetensors/tensors/nope"),
        Resolution::NotFound
    ));
    assert!(matches!(
        now(&r, "/gone.safetensors/tensors/w"),
        Resolution::NotFound
    ));
    let Resolution::File(whole) = now(&r, "/m.safetensors") else {
        panic!("the file");
    };
    assert_eq!((whole.window, whole.version), (None, None));
}

#[test]
fn a_download_name_is_the_file_s_not_the_tensor_s() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("m.safetensors"), JSON, 19);
    let dir_resolver = DirResolver::new(dir.path()).download_extension("safetensors");
    let r = SafetensorsResolver::new(dir_resolver, Arc::new(MmapCache::new(4)));
    let Resolution::File(whole) = now(&r, "/m.safetensors") else {
        panic!("the file");
    };
    assert!(whole.content_disposition.is_some());
    let Resolution::File(tensor) = now(&r, "/m.safetensors/tensors/w") else {
        panic!("a tensor");
    };
    assert!(tensor.content_disposition.is_none());
}

#[tokio::test]
async fn the_header_is_parsed_once_per_mapping_and_then_answered_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.safetensors");
    write(&path, JSON, 19);
    let r = resolver(dir.path());
    let Resolving::Pending(first) = r.resolve(&head("/m.safetensors/tensors/w")) else {
        panic!("a miss waits for the blocking pool");
    };
    assert!(matches!(first.await, Resolution::File(_)));
    let entry = r
        .cache()
        .fresh_entry(&path, r.cache().revalidation(), 0)
        .expect("cached");
    assert!(entry.attachment::<Parsed>().is_some_and(Result::is_ok));
    for uri in ["/m.safetensors/tensors/w", "/m.safetensors/header"] {
        let Resolving::Ready(Resolution::File(_)) = r.resolve(&head(uri)) else {
            panic!("a cached, parsed mapping is answered at once");
        };
    }
    let Resolving::Ready(Resolution::NotFound) = r.resolve(&head("/m.safetensors/tensors/x"))
    else {
        panic!("an unknown tensor of a parsed mapping is answered at once");
    };
}

#[tokio::test]
async fn a_malformed_header_is_a_500_remembered_with_its_mapping_and_dropped_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.safetensors");
    // Offsets that overlap.
    let bad = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#;
    write(&path, bad, 6);
    let r = resolver(dir.path());
    let Resolution::Reject(rejection) = r.resolve(&head("/m.safetensors/tensors/a")).await else {
        panic!("a malformed header is refused");
    };
    assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(rejection.reason(), "malformed safetensors header");
    // Remembered as malformed: the next request is answered at once, without a parse (or a second log).
    let Resolving::Ready(Resolution::Reject(again)) = r.resolve(&head("/m.safetensors/header"))
    else {
        panic!("answered at once");
    };
    assert_eq!(again.reason(), "malformed safetensors header");
    assert!(
        matches!(now_in(&r, "/m.safetensors"), Resolution::File(_)),
        "the file itself"
    );

    // A good file in its place gets a new entry, and a new parse.
    let tmp = dir.path().join("m.tmp");
    write(&tmp, JSON, 19);
    std::fs::rename(&tmp, &path).expect("rename");
    r.cache().remove(&path);
    let Resolution::File(file) = r.resolve(&head("/m.safetensors/tensors/w")).await else {
        panic!("a tensor of the new file");
    };
    assert!(file.window.is_some());
}

/// The ready answer of `r` for a path the `DirResolver` answers alone.
fn now_in(r: &SafetensorsResolver, uri: &str) -> Resolution {
    match r.resolve(&head(uri)) {
        Resolving::Ready(resolution) => resolution,
        Resolving::Pending(_) => panic!("the whole file is the DirResolver's, decided at once"),
    }
}

#[test]
fn unopenable_files_keep_their_status() {
    let err = MmapError::PermissionDenied("m.safetensors".into());
    let Resolution::Reject(r) = unopenable(&err) else {
        panic!("refused");
    };
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let err = MmapError::Io {
        path: "m.safetensors".into(),
        source: std::io::Error::other("boom"),
    };
    let Resolution::Reject(r) = unopenable(&err) else {
        panic!("a server error");
    };
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(matches!(
        unopenable(&MmapError::FileNotFound("m".into())),
        Resolution::NotFound
    ));
}
