//! URL path segments to file names, and which names are safe to build: pure, no file system, no HTTP answer
//! beyond the [`Rejection`] a malformed segment earns.
//!
//! [`DirResolver`](super::DirResolver) turns each segment of a URL path into one path component, and
//! [`CidResolver`](super::CidResolver) appends a configured extension to a CID. Both rely on the same few
//! character rules, which live here once.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::Rejection;

const MALFORMED_ESCAPE: Rejection = Rejection::bad_request("malformed percent-encoding in path");
const NOT_UTF8: Rejection = Rejection::bad_request("path is not valid UTF-8");
const DOT_SEGMENT: Rejection = Rejection::bad_request("'.' or '..' segment in path");
const SEPARATOR: Rejection = Rejection::bad_request("path separator inside a path segment");
const CONTROL: Rejection = Rejection::bad_request("control character in path");
const COLON: Rejection = Rejection::bad_request("':' in path");

/// Why a character may not appear in a file name built from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfit {
    /// `/` or `\`: it would split the name into two components (on Unix or on Windows).
    Separator,
    /// NUL or another control character (C0, DEL, C1).
    Control,
    /// `:`, the drive (`C:`) and alternate-data-stream (`file::$DATA`) syntax of Windows.
    Colon,
}

impl Unfit {
    /// The rejection a URL path segment holding this character gets.
    fn rejection(self) -> Rejection {
        match self {
            Self::Separator => SEPARATOR,
            Self::Control => CONTROL,
            Self::Colon => COLON,
        }
    }
}

/// What, if anything, makes `c` unfit for a file name.
fn unfit(c: char) -> Option<Unfit> {
    match c {
        '/' | '\\' => Some(Unfit::Separator),
        ':' => Some(Unfit::Colon),
        c if c.is_control() => Some(Unfit::Control),
        _ => None,
    }
}

/// The first unfit character of `s`, if any.
fn first_unfit(s: &str) -> Option<Unfit> {
    // The usual name is printable ASCII without a separator or a colon: one table lookup a byte. Anything
    // else (non-ASCII bytes included, which may be C1 controls) is decoded and judged character by character.
    if s.bytes().all(|b| PLAIN[usize::from(b)]) {
        None
    } else {
        s.chars().find_map(unfit)
    }
}

/// The bytes [`unfit`] finds nothing wrong with that stand for themselves: printable ASCII but `/`, `\` and
/// `:`. Computed at compile time.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        table[b] = !matches!(b as u8, b'/' | b'\\' | b':');
        b += 1;
    }
    table
};

/// Percent-decodes one raw URL path segment exactly once and checks that it is a safe file name.
///
/// # Errors
///
/// A 400 [`Rejection`] for a malformed escape, a decoded segment that is not UTF-8, `.` or `..`, or one
/// holding a separator (`/`, `\`), `:` or a control character.
pub(super) fn decode_segment(raw: &str) -> Result<Cow<'_, str>, Rejection> {
    let segment = if raw.contains('%') {
        if !escapes_are_well_formed(raw) {
            return Err(MALFORMED_ESCAPE);
        }
        percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| NOT_UTF8)?
    } else {
        // Nothing to decode (the usual case): the segment is the raw text, already UTF-8.
        Cow::Borrowed(raw)
    };
    if segment == "." || segment == ".." {
        return Err(DOT_SEGMENT);
    }
    match first_unfit(&segment) {
        Some(unfit) => Err(unfit.rejection()),
        None => Ok(segment),
    }
}

/// Whether every `%` in `raw` starts a `%XX` escape with two hexadecimal digits (RFC 3986 §2.1).
fn escapes_are_well_formed(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b'%') {
        let at = from + offset;
        match bytes.get(at + 1..at + 3) {
            Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                from = at + 3
            }
            _ => return false,
        }
    }
    true
}

/// Whether `name` is usable as a single file name: what [`decode_segment`] accepts once decoded, hidden
/// names included.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && first_unfit(name).is_none()
}

/// Whether appending `suffix` to a plain name keeps it one file name: no separator and no control character.
///
/// `:` is allowed: the suffix is the operator's configuration, not a client's request, so the portability
/// rule [`decode_segment`] applies to URL paths does not bind it.
pub(super) fn is_name_suffix(suffix: &str) -> bool {
    !suffix
        .chars()
        .filter_map(unfit)
        .any(|unfit| unfit != Unfit::Colon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;

    #[test]
    fn escape_check_table() {
        for ok in ["", "a", "%41", "%2e%2E", "a%20b%7e", "%ff%FF"] {
            assert!(escapes_are_well_formed(ok), "{ok}");
        }
        for bad in ["%", "%4", "%zz", "%%", "a%2", "%4g", "%\u{e9}9"] {
            assert!(!escapes_are_well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn each_unfit_character_has_its_rejection() {
        let cases = [
            ("a%2fb", "path separator inside a path segment"),
            ("a\\b", "path separator inside a path segment"),
            ("C:", "':' in path"),
            ("x%00", "control character in path"),
            ("%c2%85", "control character in path"),
            ("%2e%2e", "'.' or '..' segment in path"),
            ("%zz", "malformed percent-encoding in path"),
            ("%ff", "path is not valid UTF-8"),
        ];
        for (raw, reason) in cases {
            let rejection = decode_segment(raw).expect_err(raw);
            assert_eq!(rejection.status(), StatusCode::BAD_REQUEST, "{raw}");
            assert_eq!(rejection.reason(), reason, "{raw}");
        }
        assert_eq!(decode_segment("caf%C3%A9").ok().as_deref(), Some("café"));
        assert!(matches!(
            decode_segment("plain"),
            Ok(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn the_plain_byte_table_agrees_with_the_character_rule() {
        for b in 0..=u8::MAX {
            let by_rule = b.is_ascii() && unfit(char::from(b)).is_none();
            assert_eq!(PLAIN[usize::from(b)], by_rule, "byte {b:#04x}");
        }
    }

    #[test]
    fn plain_names_table() {
        for name in ["a", ".hidden", "...", "a b", "café", "%2e", "a..b"] {
            assert!(is_plain_name(name), "{name:?}");
        }
        for name in ["", ".", "..", "a/b", "a\\b", "C:", "x\0", "x\n", "\u{85}"] {
            assert!(!is_plain_name(name), "{name:?}");
        }
    }

    #[test]
    fn name_suffixes_table() {
        for suffix in ["", ".bin", ".tar.gz", "-v1", ".a:b", "é"] {
            assert!(is_name_suffix(suffix), "{suffix:?}");
        }
        for suffix in ["/x", "/../../etc/passwd", "\\x", ".a\0", ".a\n", "\u{7f}"] {
            assert!(!is_name_suffix(suffix), "{suffix:?}");
        }
    }

    proptest! {
        #[test]
        fn a_plain_name_is_exactly_what_decoding_accepts(name in "\\PC{0,12}|[./\\\\:a\\x00\\x7f]{0,4}") {
            // A name without `%` decodes to itself, so the two rules must agree on it.
            prop_assume!(!name.contains('%') && !name.is_empty());
            prop_assert_eq!(is_plain_name(&name), decode_segment(&name).is_ok(), "{:?}", name);
        }
    }
}
