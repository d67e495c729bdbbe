//! What an IPFS gateway request asks for besides the CID: the response format (`?format=`, then `Accept`), a
//! file name, `only-if-cached`; plain data from the request head, no I/O.
//!
//! The rules are the IPFS HTTP gateway specifications' (specs.ipfs.tech, `path-gateway` "HTTP Request" and
//! `trustless-gateway` "HTTP Request"), for a gateway that serves raw blocks and no CAR, TAR, IPNS records or
//! deserialized IPLD: each branch below names its section. The `Accept` parsing is RFC 9110 §12.5.1's, reduced to
//! what choosing between two representations needs (media ranges and their weights); no crate of the ones
//! around does only that, and the `http` crate stops at the field value.

use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};

use crate::resolve::Rejection;

/// The media type of a raw block (IANA, `application/vnd.ipld.raw`).
pub(super) const RAW: &str = "application/vnd.ipld.raw";

/// Formats of the gateway specifications that this gateway does not produce, as `?format=` names them and as
/// media types (path-gateway "`format` (request query parameter)").
const UNSUPPORTED: [(&str, &str); 6] = [
    ("car", "application/vnd.ipld.car"),
    ("tar", "application/x-tar"),
    ("dag-json", "application/vnd.ipld.dag-json"),
    ("dag-cbor", "application/vnd.ipld.dag-cbor"),
    ("json", "application/json"),
    ("cbor", "application/cbor"),
];

/// An IPNS record's media type: asked for under `/ipfs/`, it is the client's mistake (path-gateway "`Accept`").
const IPNS_RECORD: &str = "application/vnd.ipfs.ipns-record";

/// Which representation of the block a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// The block's bytes as the resolver's configured Content-Type (what the gateway answers without `format`
    /// or `Accept`; path-gateway "Response Payload", a `raw` block "Bytes representing file/block contents").
    Plain,
    /// `application/vnd.ipld.raw` (trustless-gateway "Block Responses").
    Raw,
}

/// What a gateway request asks for, as far as the resolver's answer depends on it.
#[derive(Debug, Clone, Default)]
pub(super) struct Asked {
    pub(super) format: Option<Format>,
    /// The raw format was chosen by `Accept` alone: the answer names its `?format=raw` URL in
    /// Content-Location (path-gateway "`Content-Location` (response header)").
    pub(super) by_accept: bool,
    /// `?filename=`, decoded.
    pub(super) filename: Option<String>,
    /// `?download=true` or `false`.
    pub(super) download: Option<bool>,
    /// `Cache-Control: only-if-cached` (path-gateway "`only-if-cached`").
    pub(super) only_if_cached: bool,
    /// The request is a HEAD.
    pub(super) head: bool,
}

impl Asked {
    /// The format chosen, [`Format::Plain`] when the request named none.
    pub(super) fn format(&self) -> Format {
        self.format.unwrap_or(Format::Plain)
    }
}

/// What `head` asks for, or why it is refused; `plain_type` is the Content-Type of [`Format::Plain`], which
/// a request's `Accept` may admit.
pub(super) fn asked(head: &Parts, plain_type: &HeaderValue) -> Result<Asked, Rejection> {
    // path-gateway "`Service-Worker` (request header)": a registration for `/ipfs/{cid}` without a trailing
    // slash MUST be denied with 400 (and this resolver has no path with one).
    if head
        .headers
        .get("service-worker")
        .map(HeaderValue::as_bytes)
        == Some(b"script")
    {
        return Err(Rejection::bad_request(
            "a service worker cannot be registered for a CID",
        ));
    }
    let mut asked = Asked {
        only_if_cached: only_if_cached(head),
        head: head.method == Method::HEAD,
        ..Asked::default()
    };
    let mut format_param = None;
    if let Some(query) = head.uri.query() {
        // The first value of each name wins, as Go's `url.Values.Get` (the gateways' reference) has it.
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "format" if format_param.is_none() => format_param = Some(value),
                "filename" if asked.filename.is_none() => asked.filename = Some(value.into_owned()),
                "download" if asked.download.is_none() => {
                    asked.download = match &*value {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
    }
    // path-gateway "`format`": the query parameter takes precedence over `Accept`; an empty one is none.
    asked.format = match format_param.as_deref() {
        None | Some("") => {
            let chosen = from_accept(head, plain_type)?;
            asked.by_accept = chosen == Some(Format::Raw);
            chosen
        }
        Some(value) => Some(from_query(value)?),
    };
    Ok(asked)
}

/// The format `?format=value` names.
fn from_query(value: &str) -> Result<Format, Rejection> {
    match value {
        "raw" => Ok(Format::Raw),
        // path-gateway "`Accept`": an IPNS record "Produces 400 Bad Request if the content is not under the
        // IPNS namespace".
        "ipns-record" => Err(Rejection::bad_request(
            "format=ipns-record is for /ipns/ names; a CID is a block (format=raw)",
        )),
        _ if UNSUPPORTED.iter().any(|(name, _)| *name == value) => Err(Rejection::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("format={value} is not supported: this gateway serves raw blocks (format=raw)"),
        )),
        // path-gateway "400 Bad Request", "when it is not possible to return a better one".
        _ => Err(Rejection::bad_request(
            "invalid format: this gateway serves format=raw",
        )),
    }
}

/// The format `Accept` asks for: raw when it admits `application/vnd.ipld.raw`; None (the plain bytes) when it
/// admits those or names no gateway format; 406 when it names only gateway formats this gateway does not
/// produce (RFC 9110 §12.5.1 and §15.5.7; trustless-gateway "`Accept`": raw blocks MUST be supported, CAR
/// and IPNS records SHOULD, and "MAY ... return HTTP 400 Bad Request or 406 Not Acceptable when a client
/// requested a response with unsupported content type variant").
fn from_accept(head: &Parts, plain_type: &HeaderValue) -> Result<Option<Format>, Rejection> {
    let plain = essence(plain_type.to_str().unwrap_or(""));
    let (mut raw, mut plain_admitted, mut gateway_only) = (false, false, None);
    let ranges = head
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(media_range);
    for (range, weight) in ranges {
        if weight == 0 {
            continue; // §12.4.2: "not acceptable"
        }
        let range = range.to_ascii_lowercase();
        if range == RAW {
            raw = true;
        } else if admits(&range, &plain) {
            plain_admitted = true;
        } else if range == IPNS_RECORD || UNSUPPORTED.iter().any(|(_, t)| *t == range) {
            gateway_only.get_or_insert(range);
        }
    }
    if raw {
        return Ok(Some(Format::Raw));
    }
    match gateway_only {
        Some(asked) if !plain_admitted => Err(Rejection::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("{asked} is not supported: this gateway serves {RAW}"),
        )),
        _ => Ok(None),
    }
}

/// A media range of an `Accept` list element and its weight in thousandths, or None when malformed (an
/// element that cannot be read is ignored, as a recipient may).
fn media_range(element: &str) -> Option<(&str, u16)> {
    let mut parts = element.split(';');
    let range = parts.next()?.trim();
    let (kind, subtype) = range.split_once('/')?;
    if kind.is_empty() || subtype.is_empty() || range.contains(char::is_whitespace) {
        return None;
    }
    let mut weight = 1000;
    for param in parts {
        let (name, value) = param.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = qvalue(value.trim())?;
        }
    }
    Some((range, weight))
}

/// A qvalue (RFC 9110 §12.4.2: `0` or `1` with up to three decimals, at most 1) in thousandths.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac.bytes().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'))
        * 10u16.pow(3 - frac.len() as u32);
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// The `type/subtype` of a media type, lowercased, without parameters.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether the lowercased media `range` admits the media type `essence` (§12.5.1: `*/*`, `type/*`, exact).
fn admits(range: &str, essence: &str) -> bool {
    range == "*/*"
        || range == essence
        || range
            .strip_suffix("/*")
            .is_some_and(|kind| essence.split('/').next() == Some(kind))
}

/// Whether `Cache-Control` carries `only-if-cached` (RFC 9111 §5.2.1.7; directive names are case-insensitive).
fn only_if_cached(head: &Parts) -> bool {
    head.headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("only-if-cached"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: HeaderValue = HeaderValue::from_static("application/octet-stream");

    fn head(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).expect("a request").into_parts().0
    }

    fn get(uri: &str, headers: &[(&str, &str)]) -> Result<Asked, Rejection> {
        asked(&head(Method::GET, uri, headers), &PLAIN)
    }

    fn status(r: Result<Asked, Rejection>) -> u16 {
        r.expect_err("refused").status().as_u16()
    }

    #[test]
    fn the_format_parameter_names_the_format() {
        assert_eq!(get("/ipfs/c", &[]).expect("ok").format, None);
        assert_eq!(get("/ipfs/c?format=", &[]).expect("ok").format, None);
        let raw = get("/ipfs/c?format=raw", &[]).expect("ok");
        assert_eq!((raw.format, raw.by_accept), (Some(Format::Raw), false));
        assert_eq!(
            get("/ipfs/c?format=raw&format=car", &[])
                .expect("the first wins")
                .format,
            Some(Format::Raw)
        );
    }

    #[test]
    fn formats_this_gateway_does_not_produce_are_406_and_unknown_ones_400() {
        for format in ["car", "tar", "dag-json", "dag-cbor", "json", "cbor"] {
            let refused = get(&format!("/ipfs/c?format={format}"), &[]).expect_err("406");
            assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE, "{format}");
            assert!(
                refused.reason().contains("format=raw"),
                "{}",
                refused.reason()
            );
        }
        for format in ["RAW", "block", "raw%20", "ipns-record"] {
            assert_eq!(
                status(get(&format!("/ipfs/c?format={format}"), &[])),
                400,
                "{format}"
            );
        }
    }

    #[test]
    fn the_query_wins_over_accept() {
        let raw = get(
            "/ipfs/c?format=raw",
            &[("accept", "application/vnd.ipld.car")],
        );
        assert_eq!(raw.expect("ok").format, Some(Format::Raw));
        let car = get("/ipfs/c?format=car", &[("accept", RAW)]);
        assert_eq!(status(car), 406);
    }

    #[test]
    fn accept_chooses_raw_when_it_admits_it() {
        for accept in [
            RAW,
            "Application/VND.ipld.RAW",
            "application/vnd.ipld.car, application/vnd.ipld.raw;q=0.5",
            "text/html, application/vnd.ipld.raw ; q=0.001",
        ] {
            let a = get("/ipfs/c", &[("accept", accept)]).expect("ok");
            assert_eq!(
                (a.format, a.by_accept),
                (Some(Format::Raw), true),
                "{accept}"
            );
        }
        let split = head(
            Method::GET,
            "/ipfs/c",
            &[("accept", "text/html"), ("accept", RAW)],
        );
        assert_eq!(asked(&split, &PLAIN).expect("ok").format, Some(Format::Raw));
    }

    #[test]
    fn accept_without_gateway_formats_gets_the_plain_bytes() {
        for accept in [
            "*/*",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "image/png",
            "application/vnd.ipld.raw;q=0, */*",
            "application/vnd.ipld.raw;q=bogus",
            "application/vnd.ipld.car, */*;q=0.1",
            "application/vnd.ipld.car, application/*",
            "application/vnd.ipld.car, application/octet-stream",
            "garbage",
        ] {
            assert_eq!(
                get("/ipfs/c", &[("accept", accept)]).expect("ok").format,
                None,
                "{accept}"
            );
        }
    }

    #[test]
    fn accept_naming_only_unsupported_gateway_formats_is_406() {
        for accept in [
            "application/vnd.ipld.car",
            "application/vnd.ipld.car; version=1; order=dfs; dups=y",
            "application/x-tar, application/vnd.ipld.dag-json;q=0.5",
            "application/vnd.ipfs.ipns-record",
            "application/vnd.ipld.car, application/octet-stream;q=0",
        ] {
            let refused = get("/ipfs/c", &[("accept", accept)]).expect_err("406");
            assert_eq!(refused.status(), StatusCode::NOT_ACCEPTABLE, "{accept}");
            assert!(refused.reason().contains(RAW), "{}", refused.reason());
        }
    }

    #[test]
    fn filename_and_download_are_decoded() {
        let a = get("/ipfs/c?filename=mod%C3%A8le+v1.bin&download=true", &[]).expect("ok");
        assert_eq!(a.filename.as_deref(), Some("modèle v1.bin"));
        assert_eq!(a.download, Some(true));
        let a = get("/ipfs/c?download=false&download=true", &[]).expect("ok");
        assert_eq!(a.download, Some(false));
        assert_eq!(get("/ipfs/c?download=yes", &[]).expect("ok").download, None);
    }

    #[test]
    fn only_if_cached_is_any_cache_control_directive() {
        for cc in [
            "only-if-cached",
            "max-age=0, Only-If-Cached",
            " only-if-cached ",
        ] {
            assert!(
                get("/ipfs/c", &[("cache-control", cc)])
                    .expect("ok")
                    .only_if_cached,
                "{cc}"
            );
        }
        for cc in ["no-cache", "only-if-cached-not", "max-age=only-if-cached"] {
            assert!(
                !get("/ipfs/c", &[("cache-control", cc)])
                    .expect("ok")
                    .only_if_cached,
                "{cc}"
            );
        }
        assert!(
            asked(&head(Method::HEAD, "/", &[]), &PLAIN)
                .expect("ok")
                .head
        );
    }

    #[test]
    fn service_worker_registration_is_refused() {
        assert_eq!(status(get("/ipfs/c", &[("service-worker", "script")])), 400);
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        for (s, q) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0.5", Some(500)),
            ("0.001", Some(1)),
            ("0", Some(0)),
        ] {
            assert_eq!(qvalue(s), q, "{s}");
        }
        for s in ["1.001", "2", "0.0001", "-0", "", ".5", "0.a"] {
            assert_eq!(qvalue(s), None, "{s}");
        }
    }
}
