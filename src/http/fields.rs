//! Field-value helpers: pure, no I/O, no `Response`, no header semantics of their own (RFC 9110 §5.5, §5.6).
//!
//! What several `http/` modules need when they read or write a field value: trimming optional whitespace and
//! writing decimal numbers. Each is written once here so that the modules that decide something (ranges,
//! preconditions, multipart framing, the response) agree byte for byte.

use ::http::HeaderValue;

/// `bytes` without its leading optional whitespace (`OWS = *( SP / HTAB )`, RFC 9110 §5.6.3).
pub(crate) fn trim_ows_start(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// `bytes` without leading and trailing optional whitespace (RFC 9110 §5.6.3); whitespace inside is kept.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let mut bytes = trim_ows_start(bytes);
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
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
pub(crate) fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_str(itoa::Buffer::new().format(n))
        .expect("decimal digits are a valid field value")
}

/// A short field value (at most [`ShortValue::CAPACITY`] bytes, e.g. a Content-Range) written on the stack
/// and copied once into a [`HeaderValue`]: its one allocation. An exactly sized `Vec` handed to
/// `HeaderValue::from_maybe_shared` also allocates once, but cost 87 more instructions per Content-Range
/// under callgrind (`bench/instructions.sh`).
pub(crate) struct ShortValue {
    buf: [u8; ShortValue::CAPACITY],
    len: usize,
}

impl ShortValue {
    /// Room for `bytes `, three `u64` of 20 digits each and their separators.
    pub(crate) const CAPACITY: usize = 72;

    /// An empty value.
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; Self::CAPACITY],
            len: 0,
        }
    }

    /// Appends `text`.
    ///
    /// # Panics
    /// Past [`CAPACITY`](Self::CAPACITY) bytes: callers write values of bounded length.
    pub(crate) fn push(&mut self, text: &[u8]) {
        let end = self.len + text.len();
        self.buf[self.len..end].copy_from_slice(text);
        self.len = end;
    }

    /// Appends `n` in decimal.
    pub(crate) fn push_decimal(&mut self, n: u64) {
        self.push(itoa::Buffer::new().format(n).as_bytes());
    }

    /// The text as a header value.
    ///
    /// # Panics
    /// If a byte pushed is not a valid field-value byte (callers push digits and ASCII punctuation).
    pub(crate) fn to_header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.buf[..self.len])
            .expect("digits, letters, spaces and punctuation are valid field-value bytes")
    }
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
    fn short_values_hold_three_u64() {
        let mut value = ShortValue::new();
        value.push(b"bytes ");
        value.push_decimal(u64::MAX);
        value.push(b"-");
        value.push_decimal(u64::MAX);
        value.push(b"/");
        value.push_decimal(u64::MAX);
        assert_eq!(
            value.to_header_value(),
            "bytes 18446744073709551615-18446744073709551615/18446744073709551615"
        );
        assert_eq!(ShortValue::new().to_header_value(), "");
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
