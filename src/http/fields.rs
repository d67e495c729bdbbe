//! Field-value helpers: pure, no I/O, no `Response`, no header semantics of their own (RFC 9110 §5.5, §5.6).
//!
//! What several `http/` modules need when they read or write a field value: trimming optional whitespace and
//! writing decimal numbers. Each is written once here so that the modules that decide something (ranges,
//! preconditions, multipart framing, the response) agree byte for byte.

use ::http::HeaderValue;

/// `bytes` without its leading optional whitespace (`OWS = *( SP / HTAB )`, RFC 9110 §5.6.3).
pub(crate) fn trim_ows_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| !is_ows(byte))
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// `bytes` without leading and trailing optional whitespace (RFC 9110 §5.6.3); whitespace inside is kept.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let bytes = trim_ows_start(bytes);
    let end = bytes
        .iter()
        .rposition(|&byte| !is_ows(byte))
        .map_or(0, |last| last + 1);
    bytes.get(..end).unwrap_or_default()
}

/// Whether `byte` is SP or HTAB, the only optional whitespace of RFC 9110 §5.6.3.
fn is_ows(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Number of decimal digits of `n` (1 for 0).
pub(crate) fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `n` in decimal to `out`, with no allocation but `out`'s own growth.
pub(crate) fn write_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` in decimal as a header value (a Content-Length), in one allocation: `HeaderValue::from(u64)` makes two.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "response.rs still has its own copy; it switches to this one in the issue 12 redesign"
    )
)]
pub(crate) fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n))
        .expect("decimal digits are a valid field value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ows_is_space_and_tab_only() {
        let table: &[(&[u8], &[u8], &[u8])] = &[
            // (input, trim_ows, trim_ows_start)
            (b"", b"", b""),
            (b" ", b"", b""),
            (b" \t \t", b"", b""),
            (b"a", b"a", b"a"),
            (b"  a  ", b"a", b"a  "),
            (b"\ta b\t", b"a b", b"a b\t"),
            (b"\r\na\r\n", b"\r\na\r\n", b"\r\na\r\n"),
            (b"\x0ba\x0c", b"\x0ba\x0c", b"\x0ba\x0c"),
            (b" \xa0a\xa0 ", b"\xa0a\xa0", b"\xa0a\xa0 "),
        ];
        for &(input, both, start) in table {
            assert_eq!(trim_ows(input), both, "trim_ows({input:?})");
            assert_eq!(trim_ows_start(input), start, "trim_ows_start({input:?})");
        }
    }

    #[test]
    fn decimals_agree_at_every_magnitude() {
        let mut cases = vec![0, 12345, u64::MAX / 10, u64::MAX - 1, u64::MAX];
        for power in 0..20 {
            let p = 10u64.pow(power);
            cases.extend([p - 1, p, p + 1]);
        }
        for n in cases {
            let text = n.to_string();
            let mut out = b"x".to_vec();
            write_decimal(&mut out, n);
            assert_eq!(&out[1..], text.as_bytes(), "write_decimal({n})");
            assert_eq!(decimal_len(n), text.len(), "decimal_len({n})");
            assert_eq!(decimal(n), text.as_str(), "decimal({n})");
        }
    }
}
