//! The request's target and Host field, checked before a file is served: RFC 9112 §3.2 (Host), RFC 9110 §4.2.4
//! (userinfo) and §9.1 (which methods exist); pure, no `Response`.
//!
//! hyper parses the request line but leaves these to the server. Everything here is pure and works on bytes:
//! no I/O, no `Response`.

use http::header::{self, HeaderMap};
use http::{Method, Uri, Version};

/// Why a request is refused with 400 before its target is looked at, or None when it may go on.
///
/// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field, and to any request with
/// more than one Host field line or an invalid Host value (HTTP/2 names the authority in `:authority` and may
/// omit Host, and so may HTTP/1.0). RFC 9110 §4.2.4: userinfo in an `http` URI is treated as an error.
///
/// The missing Host is only checked when `require_host` says so: a request a program builds
/// (`http::Request::get("/f")`, as tests and in-process callers do) is HTTP/1.1 without Host, and only the
/// server that read the request off the wire can tell it is wrong.
pub(crate) fn bad_request_reason(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
    require_host: bool,
) -> Option<&'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if require_host && version == Version::HTTP_11 => {
            return Some("missing Host header");
        }
        (Some(_), Some(_)) => return Some("more than one Host header"),
        (Some(host), None) if !is_valid_host(host.as_bytes()) => {
            return Some("invalid Host header");
        }
        _ => {}
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Some("userinfo in the request target");
    }
    None
}

/// Why `head` is refused with 400 before a file is served: [`form_reason`] or [`bad_request_reason`].
pub(crate) fn refusal(head: &http::request::Parts, require_host: bool) -> Option<&'static str> {
    form_reason(&head.method, &head.uri)
        .or_else(|| bad_request_reason(head.version, &head.uri, &head.headers, require_host))
}

/// Whether `method` is one this crate serves files for: GET and HEAD.
pub(crate) fn is_get_or_head(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Why the request target's form does not fit the method (RFC 9112 §3.2: an invalid request-line SHOULD get
/// 400): the authority-form (`host:port`) is only for CONNECT (§3.2.3), the asterisk-form (`*`) only for
/// OPTIONS (§3.2.4).
pub(crate) fn form_reason(method: &Method, uri: &Uri) -> Option<&'static str> {
    if uri.scheme().is_none() && uri.authority().is_some() && method != Method::CONNECT {
        return Some("an authority-form target is only for CONNECT");
    }
    if uri.path() == "*" && method != Method::OPTIONS {
        return Some("an asterisk-form target is only for OPTIONS");
    }
    None
}

/// Whether `method` is one this server knows but does not allow on files (405), rather than one it does not
/// implement at all (501, RFC 9110 §9.1): the methods of RFC 9110 §9.3 and PATCH (RFC 5789). Method names are
/// case-sensitive, so `get` is unknown.
pub(crate) fn is_known_method(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .contains(method)
}

/// Where a 301 Moved Permanently sends a request for `…/name` (a directory): `…/name/` (RFC 9110 §15.4.2),
/// query kept; None when the path has no last name to add the `/` to (it ends in `/` already).
///
/// The value is the relative `./name/`: it resolves against the client's URL, so it stays right when a router
/// stripped a prefix from the path this service sees (`./` keeps a name with a `:` from reading as a scheme).
/// Bytes a URI reference may not hold (non-ASCII, spaces, `"{}` and the like, which the `http` crate lets
/// through) are percent-encoded.
pub(crate) fn directory_location(uri: &Uri) -> Option<http::HeaderValue> {
    use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
    // Not pchar (RFC 3986 §3.3), `%` aside: the escapes the client sent stay as they are.
    const NOT_PCHAR: &AsciiSet = &CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'<')
        .add(b'>')
        .add(b'[')
        .add(b'\\')
        .add(b']')
        .add(b'^')
        .add(b'`')
        .add(b'{')
        .add(b'|')
        .add(b'}');
    let name = uri
        .path()
        .rsplit('/')
        .next()
        .filter(|name| !name.is_empty())?;
    let mut location = format!("./{}/", utf8_percent_encode(name, NOT_PCHAR));
    if let Some(query) = uri.query() {
        location.push('?');
        location.extend(utf8_percent_encode(query, NOT_PCHAR));
    }
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(location)).ok()
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2-3); an empty value is valid (§7.2: a target
/// without an authority).
fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => value.split_at(end + 1),
            None => return false,
        },
        _ => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => value.split_at(colon),
            None => (value, &[][..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        // RFC 9110 §4.2.1: an http URI with an empty host is invalid, so a port needs a host before it.
        Some((b':', digits)) => !host.is_empty() && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok
        && match host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
            // IP-literal: IPv6address or IPvFuture, whose characters are these (their grammar is not checked).
            Some(literal) => {
                !literal.is_empty()
                    && literal
                        .iter()
                        .all(|&b| is_unreserved_or_sub_delim(b) || b == b':')
            }
            // IPv4address or reg-name.
            None => is_reg_name(host),
        }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2); IPv4 addresses are reg-names too.
fn is_reg_name(bytes: &[u8]) -> bool {
    // The usual name has no escape: one table lookup a byte.
    if bytes.iter().all(|&b| is_unreserved_or_sub_delim(b)) {
        return true;
    }
    let mut rest = bytes;
    while let Some((&first, after)) = rest.split_first() {
        rest = match first {
            b'%' => match after {
                [high, low, after @ ..] if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                    after
                }
                _ => return false,
            },
            b if is_unreserved_or_sub_delim(b) => after,
            _ => return false,
        };
    }
    true
}

/// `unreserved / sub-delims` (RFC 3986 §2.2-3).
fn is_unreserved_or_sub_delim(b: u8) -> bool {
    UNRESERVED_OR_SUB_DELIM[usize::from(b)]
}

/// [`is_unreserved_or_sub_delim`] for every byte, computed at compile time.
static UNRESERVED_OR_SUB_DELIM: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn headers(hosts: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for host in hosts {
            map.append(
                header::HOST,
                HeaderValue::from_bytes(host).expect("a field value"),
            );
        }
        map
    }

    fn reason(uri: &str, hosts: &[&[u8]]) -> Option<&'static str> {
        bad_request_reason(
            Version::HTTP_11,
            &uri.parse().expect("a URI"),
            &headers(hosts),
            false,
        )
    }

    fn reason_requiring(version: Version, hosts: &[&[u8]]) -> Option<&'static str> {
        bad_request_reason(
            version,
            &"/f".parse().expect("a URI"),
            &headers(hosts),
            true,
        )
    }

    #[test]
    fn host_may_be_absent_but_not_repeated_or_garbled() {
        assert_eq!(reason("/f", &[b"example.com"]), None);
        assert_eq!(reason("/f", &[]), None);
        assert_eq!(
            reason("/f", &[b"a", b"a"]),
            Some("more than one Host header")
        );
        assert_eq!(reason("/f", &[b"a b/c"]), Some("invalid Host header"));
    }

    #[test]
    fn when_required_http11_needs_a_host_and_http10_and_http2_do_not() {
        assert_eq!(
            reason_requiring(Version::HTTP_11, &[]),
            Some("missing Host header")
        );
        assert_eq!(reason_requiring(Version::HTTP_11, &[b"example.com"]), None);
        for version in [Version::HTTP_10, Version::HTTP_2] {
            assert_eq!(reason_requiring(version, &[]), None);
            assert_eq!(
                reason_requiring(version, &[b"a", b"b"]),
                Some("more than one Host header")
            );
        }
    }

    #[test]
    fn userinfo_in_the_target_is_an_error() {
        assert_eq!(
            reason("http://user@example.com/f", &[b"example.com"]),
            Some("userinfo in the request target")
        );
        assert_eq!(reason("http://example.com/f", &[b"example.com"]), None);
    }

    #[test]
    fn target_forms_fit_their_methods() {
        let form =
            |method: Method, target: &str| form_reason(&method, &target.parse().expect("a URI"));
        assert_eq!(form(Method::GET, "/a"), None);
        assert_eq!(form(Method::GET, "http://example.com/a"), None);
        assert_eq!(
            form(Method::GET, "example.com:80"),
            Some("an authority-form target is only for CONNECT")
        );
        assert_eq!(
            form(Method::GET, "ten.bin"),
            Some("an authority-form target is only for CONNECT")
        );
        assert_eq!(form(Method::CONNECT, "example.com:443"), None);
        assert_eq!(
            form(Method::HEAD, "*"),
            Some("an asterisk-form target is only for OPTIONS")
        );
        assert_eq!(form(Method::OPTIONS, "*"), None);
    }

    #[test]
    fn host_grammar() {
        let valid: [&[u8]; 12] = [
            b"",
            b"example.com",
            b"example.com:8080",
            b"example.com:",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8080",
            b"[v1.fe80::a+en1]",
            b"xn--bcher-kva.example",
            b"a%2Db",
            b"sub-delims!$&'()*+,;=",
            b"_under~score",
        ];
        for host in valid {
            assert!(is_valid_host(host), "{:?}", String::from_utf8_lossy(host));
        }
        let invalid: [&[u8]; 14] = [
            b":80",
            b":",
            b"a b",
            b"a/b",
            b"a?b",
            b"a#b",
            b"a@b",
            b"host:80a",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a%2",
            b"a%zz",
            b"\xc3\xa9",
        ];
        for host in invalid {
            assert!(!is_valid_host(host), "{:?}", String::from_utf8_lossy(host));
        }
    }

    #[test]
    fn a_directory_redirect_is_relative_and_a_valid_uri_reference() {
        let location = |uri: &str| {
            directory_location(&uri.parse().expect("a URI"))
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(location("/docs").as_deref(), Some("./docs/"));
        assert_eq!(location("/a/b?x=1&y").as_deref(), Some("./b/?x=1&y"));
        // The client's escapes stay; what a URI reference may not hold is escaped.
        assert_eq!(location("/a%20b").as_deref(), Some("./a%20b/"));
        assert_eq!(location("/a{b}?x=1").as_deref(), Some("./a%7Bb%7D/?x=1"));
        assert_eq!(location("/caf\u{e9}").as_deref(), Some("./caf%C3%A9/"));
        // Nothing to add a slash to.
        assert_eq!(location("/docs/"), None);
        assert_eq!(location("/"), None);
    }

    #[test]
    fn known_methods_are_the_standard_ones_by_exact_name() {
        for known in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            assert!(is_known_method(
                &Method::from_bytes(known.as_bytes()).expect("a method")
            ));
        }
        for unknown in ["get", "FOO", "PROPFIND", "BREW"] {
            assert!(!is_known_method(
                &Method::from_bytes(unknown.as_bytes()).expect("a method")
            ));
        }
    }

    proptest! {
        /// Any bytes as Host: no panic, and whatever is accepted is made of authority characters only.
        #[test]
        fn any_host_bytes(host in proptest::collection::vec(any::<u8>(), 0..24)) {
            if is_valid_host(&host) {
                prop_assert!(host.iter().all(|&b| is_unreserved_or_sub_delim(b) || b"%:[]".contains(&b)));
            }
        }
    }
}
