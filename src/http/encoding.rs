//! Which content coding a GET or HEAD gets (RFC 9110 §12.5.3 Accept-Encoding, §8.4 Content-Encoding), pure:
//! no file-system I/O, no `Response`; the field values and the codings a resolver offers go in, the codings
//! worth trying come out, best first.
//!
//! Written here rather than taken from a crate: `headers` has no public Accept-Encoding with q-values, and
//! tower-http's parser is private to its middleware. This one allocates nothing (a request names at most a
//! few codings, and only four can be offered), reads field values as bytes (they may be non-UTF-8), and
//! cannot panic on any input.
//!
//! # The choices this module makes where RFC 9110 leaves one
//!
//! - **No Accept-Encoding field**: identity. §12.5.3 says any coding is then acceptable, but adds that this
//!   "does not imply that the user agent will be able to correctly process all encodings": `curl` without
//!   `--compressed` sends none and must not get gzip.
//! - **Ties** (equal q-values, two codings or `*`) go to the order of [`ContentCoding`]'s variants, `br`,
//!   `zstd`, `gzip`, `deflate` (the usual order of their sizes, smallest first); a coding that ties with
//!   identity wins, since a client that lists it with identity's weight accepts it and it is smaller. The
//!   order of the field's elements means nothing (§12.4.2 gives it no meaning).
//! - **A coding listed twice** takes its lowest q-value: once refused, always refused.
//! - **A malformed element** (a q-value out of grammar, such as `gzip;q=2` or `br;q=0.5x`) is dropped, as if
//!   the client had not listed it; the others still count.
//! - **Nothing acceptable**: when identity is refused (`identity;q=0`, or `*;q=0` without an `identity`
//!   entry) and no offered coding is acceptable, the service still sends identity rather than 406: §15.5.7
//!   keeps 406 for a server "unwilling to supply a default representation", and this one is willing (nginx
//!   and tower-http do the same).

use http::HeaderValue;

use super::fields::trim_ows;

/// A content coding a file may be stored in beside it (RFC 9110 §8.4.1), as a precompressed sidecar.
///
/// The order of the variants is the order in which equally acceptable codings are preferred (see
/// [`DirResolver::precompressed_br`](crate::DirResolver::precompressed_br)).
///
/// # Examples
///
/// ```
/// use mmap_serve::ContentCoding;
///
/// assert_eq!(ContentCoding::Gzip.token(), "gzip");
/// assert_eq!(ContentCoding::Gzip.extension(), "gz");
/// assert_eq!(ContentCoding::Brotli.extension(), "br");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentCoding {
    /// `br`, Brotli (RFC 7932); sidecar `{name}.br`.
    Brotli,
    /// `zstd`, Zstandard (RFC 8878); sidecar `{name}.zst`.
    Zstd,
    /// `gzip` (RFC 1952; `x-gzip` in a request means the same, §8.4.1.3); sidecar `{name}.gz`.
    Gzip,
    /// `deflate`, the zlib format (RFC 1950); sidecar `{name}.zz`, as tower-http names it.
    Deflate,
}

impl ContentCoding {
    /// Every coding, in the order of preference between equals.
    pub(crate) const ALL: [Self; 4] = [Self::Brotli, Self::Zstd, Self::Gzip, Self::Deflate];

    /// The coding's token, as `Content-Encoding` sends it.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
        }
    }

    /// The extension of the sidecar file (without the dot): `app.js` in this coding is `app.js.{extension}`.
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zst",
            Self::Gzip => "gz",
            Self::Deflate => "zz",
        }
    }

    /// The `Content-Encoding` field value.
    pub(crate) const fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    /// The coding a request's token names, compared without regard to case (§8.4.1); `x-gzip` is gzip
    /// (§8.4.1.3).
    fn from_token(token: &[u8]) -> Option<Self> {
        let is = |name: &[u8]| token.eq_ignore_ascii_case(name);
        if is(b"br") {
            Some(Self::Brotli)
        } else if is(b"zstd") {
            Some(Self::Zstd)
        } else if is(b"gzip") || is(b"x-gzip") {
            Some(Self::Gzip)
        } else if is(b"deflate") {
            Some(Self::Deflate)
        } else {
            None
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of content codings: those a resolver offers for a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Codings(u8);

impl Codings {
    /// The set with `coding` too.
    pub(crate) const fn with(self, coding: ContentCoding) -> Self {
        Self(self.0 | coding.bit())
    }

    /// The codings in either set.
    pub(crate) const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `coding` is in the set.
    pub(crate) const fn contains(self, coding: ContentCoding) -> bool {
        self.0 & coding.bit() != 0
    }

    /// Whether the set is empty (the file has no variants).
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The codings worth trying for one request, best first: each is acceptable and at least as acceptable as
/// identity. Identity comes after them all (and is sent when none of them exists, whatever the request says
/// of identity: see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Preference {
    order: [Option<ContentCoding>; 4],
}

impl Preference {
    /// The codings, best first.
    pub(crate) fn codings(&self) -> impl Iterator<Item = ContentCoding> + '_ {
        self.order.iter().map_while(|c| *c)
    }

    /// The preference without its first `n` codings.
    pub(crate) fn skip(mut self, n: usize) -> Self {
        let n = n.min(self.order.len());
        self.order.rotate_left(n);
        let len = self.order.len();
        self.order[len - n..].fill(None);
        self
    }

    /// Whether there is no coding to try: identity it is.
    pub(crate) fn is_empty(&self) -> bool {
        self.order[0].is_none()
    }
}

/// A q-value in thousandths (RFC 9110 §12.4.2): 0 (not acceptable) to 1000.
type Weight = u16;

/// What one request's Accept-Encoding says of each coding.
#[derive(Debug, Default)]
struct Weights {
    /// The weight given to each coding by name, by its index in [`ContentCoding::ALL`].
    codings: [Option<Weight>; 4],
    identity: Option<Weight>,
    star: Option<Weight>,
}

impl Weights {
    fn note(slot: &mut Option<Weight>, weight: Weight) {
        // A coding listed twice keeps its lowest weight (see the module docs).
        *slot = Some(slot.map_or(weight, |w| w.min(weight)));
    }

    /// The weight of `coding`: its own entry, else `*`'s, else not acceptable (§12.5.3: `*` matches any
    /// coding not listed).
    fn of(&self, coding: ContentCoding) -> Weight {
        self.codings[coding as usize].or(self.star).unwrap_or(0)
    }

    /// The weight of identity: its own entry, else `*`'s, else acceptable (§12.5.3 rule 2: excluded only by
    /// `identity;q=0` or by `*;q=0` without an `identity` entry).
    fn of_identity(&self) -> Weight {
        self.identity.or(self.star).unwrap_or(1000)
    }
}

/// The codings of `available` worth trying for a request with the Accept-Encoding field lines `fields`, best
/// first (RFC 9110 §12.5.3); empty when identity is the answer.
///
/// A coding is tried when its weight is above 0 and not below identity's; several go by weight, then in the
/// order of [`ContentCoding`]. Without any Accept-Encoding line, or with an empty one, nothing is tried.
pub(crate) fn preferred_codings<'a>(
    fields: impl IntoIterator<Item = &'a HeaderValue>,
    available: Codings,
) -> Preference {
    let mut weights = Weights::default();
    let mut present = false;
    // §5.3: several field lines are one comma-separated list.
    for line in fields {
        present = true;
        for element in line.as_bytes().split(|&b| b == b',') {
            read_element(element, &mut weights);
        }
    }
    let mut preference = Preference::default();
    if !present || available.is_empty() {
        return preference;
    }
    let floor = weights.of_identity();
    let mut candidates = [(0, ContentCoding::Brotli); 4];
    let mut len = 0;
    for coding in ContentCoding::ALL {
        let weight = weights.of(coding);
        // §12.5.3 rule 3: q=0 is "not acceptable"; and a coding the client likes less than identity is not
        // worth sending (identity is always there).
        if available.contains(coding) && weight > 0 && weight >= floor {
            candidates[len] = (weight, coding);
            len += 1;
        }
    }
    // §12.5.3 rule 4: the highest q-value first; the sort is stable, so equals keep `ALL`'s order.
    let candidates = &mut candidates[..len];
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (slot, (_, coding)) in preference.order.iter_mut().zip(candidates.iter()) {
        *slot = Some(*coding);
    }
    preference
}

/// Reads one list element (`codings [ weight ]`, §12.5.3) into `weights`; an empty or malformed one adds
/// nothing.
fn read_element(element: &[u8], weights: &mut Weights) {
    let mut parts = element.split(|&b| b == b';');
    let token = trim_ows(parts.next().unwrap_or_default());
    if token.is_empty() {
        // §5.6.1: empty list elements are allowed, and mean nothing.
        return;
    }
    let mut weight = 1000;
    for parameter in parts {
        let parameter = trim_ows(parameter);
        // Accept-Encoding defines no other parameter; one is ignored rather than the element.
        if let [b'q' | b'Q', b'=', value @ ..] = parameter {
            match qvalue(value) {
                Some(w) => weight = w,
                None => return,
            }
        }
    }
    if token == b"*" {
        Weights::note(&mut weights.star, weight);
    } else if token.eq_ignore_ascii_case(b"identity") {
        Weights::note(&mut weights.identity, weight);
    } else if let Some(coding) = ContentCoding::from_token(token) {
        Weights::note(&mut weights.codings[coding as usize], weight);
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in thousandths.
fn qvalue(value: &[u8]) -> Option<Weight> {
    let (whole, fraction) = match value {
        [w, b'.', fraction @ ..] => (*w, fraction),
        [w] => (*w, &[][..]),
        _ => return None,
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in fraction.iter().enumerate() {
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::ContentCoding::{Brotli, Deflate, Gzip, Zstd};
    use super::*;
    use proptest::prelude::*;

    const ALL: Codings = Codings(0b1111);

    fn offer(codings: &[ContentCoding]) -> Codings {
        codings
            .iter()
            .fold(Codings::default(), |set, c| set.with(*c))
    }

    fn prefer(lines: &[&str], available: Codings) -> Vec<ContentCoding> {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|l| HeaderValue::from_str(l).expect("a field value"))
            .collect();
        preferred_codings(&values, available).codings().collect()
    }

    #[test]
    fn no_field_or_an_empty_one_is_identity() {
        assert_eq!(prefer(&[], ALL), []);
        assert_eq!(prefer(&[""], ALL), []);
        assert_eq!(prefer(&[" , ,"], ALL), []);
    }

    #[test]
    fn a_listed_coding_is_acceptable_unless_its_q_is_zero() {
        assert_eq!(prefer(&["gzip"], ALL), [Gzip]);
        assert_eq!(prefer(&["gzip;q=0"], ALL), []);
        assert_eq!(prefer(&["gzip;q=0.000"], ALL), []);
        assert_eq!(prefer(&["gzip;q=0.001"], ALL), [], "below identity's 1");
        assert_eq!(prefer(&["gzip;q=0.001, identity;q=0"], ALL), [Gzip]);
    }

    #[test]
    fn only_offered_codings_are_tried() {
        assert_eq!(prefer(&["br, gzip"], offer(&[Gzip])), [Gzip]);
        assert_eq!(prefer(&["br"], offer(&[Gzip])), []);
        assert_eq!(prefer(&["gzip"], Codings::default()), []);
    }

    #[test]
    fn higher_q_first_and_equals_in_the_documented_order() {
        assert_eq!(
            prefer(&["gzip, deflate, br, zstd"], ALL),
            [Brotli, Zstd, Gzip, Deflate]
        );
        assert_eq!(
            prefer(&["br;q=0.8, gzip;q=1.0, zstd;q=0.9"], ALL),
            [Gzip],
            "the others are below identity's 1"
        );
        assert_eq!(
            prefer(&["br;q=0.8, gzip;q=1.0, zstd;q=0.9, identity;q=0.5"], ALL),
            [Gzip, Zstd, Brotli]
        );
    }

    #[test]
    fn codings_less_wanted_than_identity_are_not_tried() {
        assert_eq!(prefer(&["gzip;q=0.5, br"], ALL), [Brotli]);
        assert_eq!(
            prefer(&["gzip;q=0.5, identity;q=0.6, br;q=0.6"], ALL),
            [Brotli],
            "a tie with identity goes to the coding"
        );
        assert_eq!(prefer(&["gzip;q=0.5, identity"], ALL), []);
    }

    #[test]
    fn star_matches_what_is_not_listed_identity_included() {
        assert_eq!(prefer(&["*"], ALL), [Brotli, Zstd, Gzip, Deflate]);
        assert_eq!(
            prefer(&["*;q=0.5, gzip"], ALL),
            [Gzip, Brotli, Zstd, Deflate]
        );
        assert_eq!(prefer(&["*, br;q=0"], ALL), [Zstd, Gzip, Deflate]);
        assert_eq!(prefer(&["*;q=0"], ALL), []);
        // `*;q=0` refuses identity too (nothing is acceptable: identity is sent anyway, by the service).
        assert_eq!(prefer(&["*;q=0, gzip;q=0.2"], ALL), [Gzip]);
        // An explicit identity entry is more specific than `*`.
        assert_eq!(
            prefer(&["*;q=0.3, identity;q=0.2"], ALL),
            [Brotli, Zstd, Gzip, Deflate]
        );
        assert_eq!(prefer(&["*;q=0.3, identity"], ALL), []);
    }

    #[test]
    fn identity_refused_still_tries_only_acceptable_codings() {
        assert_eq!(prefer(&["identity;q=0"], ALL), []);
        assert_eq!(prefer(&["identity;q=0, br;q=0.1"], ALL), [Brotli]);
    }

    #[test]
    fn tokens_ignore_case_and_x_gzip_is_gzip() {
        assert_eq!(prefer(&["GZIP"], ALL), [Gzip]);
        assert_eq!(prefer(&["x-gzip"], ALL), [Gzip]);
        assert_eq!(prefer(&["Br;Q=1"], ALL), [Brotli]);
        assert_eq!(prefer(&["IDENTITY;q=0, ZsTd;q=0.5"], ALL), [Zstd]);
    }

    #[test]
    fn whitespace_and_several_lines_are_one_list() {
        assert_eq!(
            prefer(&[" gzip ; q=1 ,\tbr ; q=0.9 "], offer(&[Gzip])),
            [Gzip]
        );
        assert_eq!(prefer(&["identity;q=0", "br;q=0.5"], ALL), [Brotli]);
        assert_eq!(
            prefer(&["gzip", "gzip;q=0"], ALL),
            [],
            "twice: the lowest q"
        );
    }

    #[test]
    fn malformed_elements_are_dropped_and_the_rest_counts() {
        for bad in [
            "gzip;q=2",
            "gzip;q=1.5",
            "gzip;q=1.001",
            "gzip;q=0.5x",
            "gzip;q=0.1234",
            "gzip;q=",
            "gzip;q=.5",
            "gzip;q=-1",
            "gzip;q= 0.5",
        ] {
            assert_eq!(prefer(&[bad], ALL), [], "{bad}");
            assert_eq!(prefer(&[&format!("{bad}, br")], ALL), [Brotli], "{bad}");
        }
        // Unknown codings and parameters are ignored.
        assert_eq!(prefer(&["compress, sdch, gzip;level=9"], ALL), [Gzip]);
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        for (text, value) in [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.25", Some(250)),
            ("0.125", Some(125)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.0001", None),
            ("1.1", None),
            ("2", None),
            ("", None),
            ("00.5", None),
            ("0,5", None),
        ] {
            assert_eq!(qvalue(text.as_bytes()), value, "{text:?}");
        }
    }

    #[test]
    fn a_preference_skips_what_was_tried() {
        let p = preferred_codings(&[HeaderValue::from_static("*")], ALL);
        assert_eq!(
            p.skip(1).codings().collect::<Vec<_>>(),
            [Zstd, Gzip, Deflate]
        );
        assert_eq!(p.skip(3).codings().collect::<Vec<_>>(), [Deflate]);
        assert!(p.skip(4).is_empty());
        assert!(p.skip(9).is_empty());
        assert!(!p.is_empty());
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_sorted_subset_of_the_offer(
            field in proptest::collection::vec(any::<u8>(), 0..64),
            offered in 0u8..16,
        ) {
            let Ok(value) = HeaderValue::from_bytes(&field) else { return Ok(()) };
            let available = Codings(offered);
            let tried: Vec<_> = preferred_codings(&[value], available).codings().collect();
            for (i, c) in tried.iter().enumerate() {
                prop_assert!(available.contains(*c));
                prop_assert!(!tried[..i].contains(c), "each coding once");
            }
        }

        #[test]
        fn well_formed_lists_follow_the_weights(
            elements in proptest::collection::vec(
                (prop::sample::select(vec!["br", "zstd", "gzip", "deflate", "identity", "*"]), 0u16..=1000),
                0..8,
            ),
        ) {
            let field: Vec<String> = elements
                .iter()
                .map(|(token, q)| format!("{token};q={}.{:03}", q / 1000, q % 1000))
                .collect();
            let value = HeaderValue::from_str(&field.join(", ")).expect("ascii");
            let tried: Vec<_> = preferred_codings(&[value], ALL).codings().collect();
            // The model: lowest weight per token, `*` for the unlisted, identity 1 by default.
            let weight = |token: &str| elements.iter().filter(|(t, _)| *t == token).map(|(_, q)| *q).min();
            let star = weight("*");
            let identity = weight("identity").or(star).unwrap_or(1000);
            let mut expected: Vec<(u16, ContentCoding)> = ContentCoding::ALL
                .into_iter()
                .map(|c| (weight(c.token()).or(star).unwrap_or(0), c))
                .filter(|(w, _)| *w > 0 && *w >= identity)
                .collect();
            expected.sort_by_key(|e| std::cmp::Reverse(e.0));
            let expected: Vec<_> = if elements.is_empty() { Vec::new() } else { expected.into_iter().map(|(_, c)| c).collect() };
            prop_assert_eq!(tried, expected);
        }
    }
}
