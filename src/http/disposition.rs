//! `Content-Disposition` values (RFC 6266) with file names in RFC 8187 encoding; pure, no I/O, and nothing a
//! name contains can break out of its parameter.

use ::http::HeaderValue;
use bytes::Bytes;

/// Whether a recipient should show the content or save it (RFC 6266 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `inline`: shown in the page or browser tab.
    Inline,
    /// `attachment`: saved, under the file name when one is given.
    Attachment,
}

/// The field value for `disposition` with the file name `name`: `attachment; filename="report.pdf"`, and for a
/// name that is not plain printable ASCII, an ASCII fallback in `filename` (each other character a `_`) plus the
/// exact name in `filename*=UTF-8''…` (RFC 6266 §4.3, RFC 8187 §3.2), which recipients that know it prefer.
///
/// Quotes, backslashes and control characters (CR, LF) never reach the value as they are: in `filename` they
/// become `_`, in `filename*` they are percent-encoded, so a name cannot end the parameter or the field.
pub(crate) fn content_disposition(disposition: Disposition, name: &str) -> HeaderValue {
    let mut value = String::with_capacity(32 + 4 * name.len());
    value.push_str(match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    });
    if !name.is_empty() {
        value.push_str("; filename=\"");
        let plain = name.chars().all(is_quotable);
        value.extend(name.chars().map(|c| if is_quotable(c) { c } else { '_' }));
        value.push('"');
        if !plain {
            value.push_str("; filename*=UTF-8''");
            for &b in name.as_bytes() {
                if is_attr_char(b) {
                    value.push(char::from(b));
                } else {
                    value.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .expect("printable ASCII is a valid field value")
}

/// A character that may stand in a quoted `filename` as it is: printable ASCII but `"` and `\` (RFC 9110
/// §5.6.4 allows `\` as an escape, which RFC 6266 §4.3 warns recipients treat inconsistently).
fn is_quotable(c: char) -> bool {
    matches!(c, ' '..='~') && c != '"' && c != '\\'
}

/// `attr-char` (RFC 8187 §3.2.1): what `filename*` holds without percent-encoding.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attachment(name: &str) -> String {
        content_disposition(Disposition::Attachment, name)
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn a_plain_name_is_quoted_as_it_is() {
        assert_eq!(
            attachment("weights v2.bin"),
            "attachment; filename=\"weights v2.bin\""
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "a.pdf"),
            "inline; filename=\"a.pdf\""
        );
        assert_eq!(
            content_disposition(Disposition::Attachment, ""),
            "attachment"
        );
    }

    #[test]
    fn other_names_get_an_ascii_fallback_and_the_exact_name_in_rfc_8187() {
        assert_eq!(
            attachment("café.txt"),
            "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%C3%A9.txt"
        );
        assert_eq!(
            attachment("模型.safetensors"),
            "attachment; filename=\"__.safetensors\"; filename*=UTF-8''%E6%A8%A1%E5%9E%8B.safetensors"
        );
    }

    #[test]
    fn quotes_backslashes_and_line_breaks_are_never_injected() {
        let value = attachment("a\"; filename=evil.exe\r\nSet-Cookie: x\\.txt");
        assert_eq!(
            value,
            "attachment; filename=\"a_; filename=evil.exe__Set-Cookie: x_.txt\"; \
             filename*=UTF-8''a%22%3B%20filename%3Devil.exe%0D%0ASet-Cookie%3A%20x%5C.txt"
        );
    }

    proptest! {
        /// Any name: a valid field value with exactly one quoted string, and the exact name recoverable from
        /// `filename*` when it is there.
        #[test]
        fn any_name_stays_inside_its_parameter(name in "(?s).{0,40}") {
            let value = attachment(&name);
            prop_assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)));
            let quoted = value.matches('"').count();
            prop_assert!(name.is_empty() || quoted == 2, "{value}");
            if let Some((_, encoded)) = value.split_once("filename*=UTF-8''") {
                let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8().expect("utf-8");
                prop_assert_eq!(decoded, name.as_str());
            }
        }
    }
}
