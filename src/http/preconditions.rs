//! Conditional requests (RFC 9110 §13): decide between proceeding, 304 and 412; no I/O, no `Response`.
//!
//! Everything here is pure but for one read of the clock (whether an If-Range date is a strong
//! validator yet): the request's method and header fields plus the validators of the selected
//! representation go in, a [`Precondition`] comes out. Header values are handled as
//! raw bytes (they may be non-UTF-8), entity-tag lists are scanned in a single pass without
//! allocating, and no input can make this module panic.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, header};

use super::fields::{trim_ows, trim_ows_start};

/// The validators of the selected representation (RFC 9110 §8.8).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validators<'a> {
    /// The full entity-tag as sent in the ETag field, e.g. `"abc"` or `W/"abc"` (a resolver may supply weak ones).
    pub(crate) etag: &'a [u8],
    /// `etag` is known to be a well-formed strong entity-tag (this crate made it), so it need not be parsed.
    pub(crate) etag_is_ours: bool,
    /// Last-Modified, truncated to whole seconds; None when the representation has none.
    pub(crate) last_modified: Option<SystemTime>,
    /// The exact Last-Modified field value sent (IMF-fixdate bytes), for If-Range's exact-match rule; None if none.
    pub(crate) last_modified_value: Option<&'a [u8]>,
    /// From when Last-Modified is a strong validator (§8.8.2.2), which If-Range needs of a date; None: never.
    pub(crate) strong_date_from: Option<SystemTime>,
}

/// What RFC 9110 §13.2.2 decides for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on; `range_applies` is the If-Range verdict (§13.1.5): true when If-Range is absent or holds.
    Proceed { range_applies: bool },
    /// 304 Not Modified (only for GET and HEAD).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the request's preconditions in the order of RFC 9110 §13.2.2.
///
/// `range_applies` in [`Precondition::Proceed`] is only meaningful for a GET carrying a Range
/// field (§13.2.2 step 5); the caller ignores it otherwise. The "state-changing request has
/// already succeeded" escapes of steps 1 and 2 do not apply: this crate never changes state.
/// Conditions are evaluated as an origin server would, i.e. against `validators` only.
pub(crate) fn evaluate_preconditions(
    method: &Method,
    headers: &HeaderMap,
    validators: &Validators<'_>,
) -> Precondition {
    // §13.2.1: methods that neither select nor modify a representation ignore all conditionals.
    if *method == Method::CONNECT || *method == Method::OPTIONS || *method == Method::TRACE {
        return Precondition::Proceed {
            range_applies: true,
        };
    }
    // One pass over the fields finds the conditionals and keeps their values, so none is looked up again;
    // most requests carry none at all.
    let present = Present::scan(headers);
    if present.none() {
        return Precondition::Proceed {
            range_applies: true,
        };
    }
    let ours = match validators
        .etag
        .get(1..validators.etag.len().saturating_sub(1))
    {
        Some(opaque) if validators.etag_is_ours => Some(EntityTag {
            weak: false,
            opaque,
        }),
        _ => parse_entity_tag(validators.etag),
    };
    let ours = ours.map(|tag| Ours {
        tag,
        field: validators.etag,
    });
    let modified = validators.last_modified.map(unix_seconds);
    let get_or_head = *method == Method::GET || *method == Method::HEAD;

    if present.if_match.is_present() {
        // §13.2.2 step 1, evaluated per §13.1.1.
        if !if_match_holds(headers, present.if_match, ours) {
            return Precondition::Failed;
        }
    } else if let Some(date) = present.if_unmodified_since.only().and_then(http_date) {
        // §13.2.2 step 2 (only without If-Match), evaluated per §13.1.4. A representation
        // without a modification date makes the field ignored (§13.1.4).
        if modified.is_some_and(|modified| modified > date) {
            return Precondition::Failed;
        }
    }

    if present.if_none_match.is_present() {
        // §13.2.2 step 3, evaluated per §13.1.2.
        if !if_none_match_holds(headers, present.if_none_match, ours) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head {
        // §13.2.2 step 4 (only without If-None-Match, only GET/HEAD), evaluated per §13.1.3.
        // Ignored when the date is invalid, has several members, or we have no date.
        let date = present.if_modified_since.only().and_then(http_date);
        if let (Some(date), Some(modified)) = (date, modified) {
            if modified <= date {
                return Precondition::NotModified;
            }
        }
    }

    // §13.2.2 step 5: If-Range decides whether a Range field is honoured.
    Precondition::Proceed {
        range_applies: !present.if_range.is_present()
            || if_range_holds(present.if_range, validators, ours.map(|o| o.tag), modified),
    }
}

/// One conditional field as [`Present::scan`] found it: its first field line, and whether more follow.
#[derive(Debug, Default, Clone, Copy)]
struct Field<'a> {
    first: Option<&'a HeaderValue>,
    several: bool,
}

impl<'a> Field<'a> {
    fn is_present(self) -> bool {
        self.first.is_some()
    }

    fn add(&mut self, value: &'a HeaderValue) {
        if self.first.is_some() {
            self.several = true;
        } else {
            self.first = Some(value);
        }
    }

    /// The field's value when it has exactly one field line.
    fn only(self) -> Option<&'a HeaderValue> {
        if self.several { None } else { self.first }
    }
}

/// The five conditional fields of RFC 9110 §13.1 in a request.
#[derive(Debug, Default, Clone, Copy)]
struct Present<'a> {
    if_match: Field<'a>,
    if_none_match: Field<'a>,
    if_modified_since: Field<'a>,
    if_unmodified_since: Field<'a>,
    if_range: Field<'a>,
}

impl<'a> Present<'a> {
    /// One pass over every field line.
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut present = Self::default();
        for (name, value) in headers {
            let field = if name == header::IF_MATCH {
                &mut present.if_match
            } else if name == header::IF_NONE_MATCH {
                &mut present.if_none_match
            } else if name == header::IF_MODIFIED_SINCE {
                &mut present.if_modified_since
            } else if name == header::IF_UNMODIFIED_SINCE {
                &mut present.if_unmodified_since
            } else if name == header::IF_RANGE {
                &mut present.if_range
            } else {
                continue;
            };
            field.add(value);
        }
        present
    }

    fn none(self) -> bool {
        !(self.if_match.is_present()
            || self.if_none_match.is_present()
            || self.if_modified_since.is_present()
            || self.if_unmodified_since.is_present()
            || self.if_range.is_present())
    }
}

/// Our entity-tag, parsed, and the ETag field value it was parsed from.
#[derive(Debug, Clone, Copy)]
struct Ours<'a> {
    tag: EntityTag<'a>,
    field: &'a [u8],
}

/// §13.1.1: `*` holds (a current representation always exists here); a list holds when one
/// member strongly matches ours; anything else (including a malformed list) is false.
fn if_match_holds(headers: &HeaderMap, field: Field<'_>, ours: Option<Ours<'_>>) -> bool {
    match scan_tag_field(headers, &header::IF_MATCH, field, ours, strong_eq) {
        TagField::Any => true,
        TagField::List { any_match } => any_match,
        TagField::Malformed => false,
    }
}

/// §13.1.2: `*` is false (a current representation exists); a list is false when one member
/// weakly matches ours. A malformed value matches nothing, so the condition holds.
fn if_none_match_holds(headers: &HeaderMap, field: Field<'_>, ours: Option<Ours<'_>>) -> bool {
    match scan_tag_field(headers, &header::IF_NONE_MATCH, field, ours, weak_eq) {
        TagField::Any => false,
        TagField::List { any_match } => !any_match,
        TagField::Malformed => true,
    }
}

/// §13.1.5: whether the If-Range validator matches the selected representation.
///
/// Absent: true. A single entity-tag: true only when both it and ours are strong and equal
/// (a weak tag is never a valid If-Range validator). A single HTTP-date: true only when it is
/// our Last-Modified and that date is a strong validator now. Anything else, including several
/// field lines (If-Range takes one validator, not a list): false, so the caller ignores Range and
/// sends the whole representation.
///
/// The date rule:
/// - §13.1.5 step 1: a date that is not a strong validator in the sense of §8.8.2.2 makes the
///   condition false. A modification date is strong only when the origin server knows the
///   representation did not change twice within that second. The caller tells from when that
///   holds (`strong_date_from`): once the second the date names is over, and never when the
///   cache replaced a version with the same date or the file claims a future time. Before then
///   a second version with the same date may still come, and a 206 could splice two versions
///   together; a 200 is always correct. This is the one place that reads the clock.
/// - Step 2 asks for an exact match with "the Last-Modified field value that would have been
///   provided in a 200 response". When no such field is sent there is nothing the client could
///   have copied, so no date can match it, even if a modification time is known internally.
/// - Our field value is the IMF-fixdate rendering of a whole-second time, and that rendering is
///   one-to-one, so "same second" is the same as "same field value" for a client that echoes
///   it; comparing instants additionally accepts the same second spelled in an obsolete format.
fn if_range_holds(
    field: Field<'_>,
    validators: &Validators<'_>,
    ours: Option<EntityTag<'_>>,
    modified: Option<i128>,
) -> bool {
    let Some(value) = field.only() else {
        return !field.is_present();
    };
    let value = trim_ows(value.as_bytes());
    if let Some(theirs) = parse_entity_tag(value) {
        return ours.is_some_and(|ours| strong_eq(theirs, ours));
    }
    match parse_http_date(value) {
        Some(date) => {
            validators.last_modified_value.is_some()
                && modified == Some(date)
                && validators
                    .strong_date_from
                    .is_some_and(|from| SystemTime::now() >= from)
        }
        None => false,
    }
}

/// An entity-tag (§8.8.3) borrowed from a field value: the weakness flag and the opaque-tag
/// without its double quotes.
#[derive(Debug, Clone, Copy)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// Strong comparison (§8.8.3.2): both tags strong and their opaque-tags identical.
fn strong_eq(a: EntityTag<'_>, b: EntityTag<'_>) -> bool {
    !a.weak && !b.weak && a.opaque == b.opaque
}

/// Weak comparison (§8.8.3.2): the opaque-tags identical, weakness ignored.
fn weak_eq(a: EntityTag<'_>, b: EntityTag<'_>) -> bool {
    a.opaque == b.opaque
}

/// How an `"*" / #entity-tag` field (If-Match, If-None-Match) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagField {
    /// The field is exactly `*`.
    Any,
    /// A well-formed (possibly empty) list; `any_match` tells whether a member matched ours.
    List { any_match: bool },
    /// Neither `*` nor a well-formed list.
    Malformed,
}

/// Reads every field line of `name` as one `"*" / #entity-tag` value, comparing each member
/// with `ours` using `matches`.
///
/// Field lines combine into one list (§5.3), but each line is scanned as a list of its own so
/// nothing is allocated; this also rejects a quoted opaque-tag split across lines, which is
/// malformed anyway. `*` is only recognised as the whole field value: mixed with list members
/// or repeated it matches neither alternative of the grammar. Every member is checked even
/// after a match, since one malformed member makes the whole field malformed.
fn scan_tag_field(
    headers: &HeaderMap,
    name: &header::HeaderName,
    field: Field<'_>,
    ours: Option<Ours<'_>>,
    matches: fn(EntityTag<'_>, EntityTag<'_>) -> bool,
) -> TagField {
    let member_matches = |theirs: EntityTag<'_>| ours.is_some_and(|ours| matches(theirs, ours.tag));
    let Some(first) = field.first else {
        return TagField::List { any_match: false };
    };
    if !field.several {
        let line = first.as_bytes();
        // The common case, a client echoing our ETag, needs no parsing: it is one valid entity-tag.
        if let Some(ours) = ours.filter(|ours| ours.field == line) {
            return TagField::List {
                any_match: matches(ours.tag, ours.tag),
            };
        }
        if trim_ows(line) == b"*" {
            return TagField::Any;
        }
        return match scan_tag_list(line, member_matches) {
            Some(any_match) => TagField::List { any_match },
            None => TagField::Malformed,
        };
    }
    let mut any_match = false;
    for value in headers.get_all(name) {
        match scan_tag_list(value.as_bytes(), member_matches) {
            Some(matched) => any_match |= matched,
            None => return TagField::Malformed,
        }
    }
    TagField::List { any_match }
}

/// Scans one `#entity-tag` list (§5.6.1: members separated by commas with optional whitespace,
/// empty members allowed) in a single pass. Returns whether `matches` accepted any member, or
/// None when some member is not a valid entity-tag.
fn scan_tag_list(line: &[u8], mut matches: impl FnMut(EntityTag<'_>) -> bool) -> Option<bool> {
    let mut any_match = false;
    let mut rest = line;
    loop {
        rest = trim_ows_start(rest);
        match rest.split_first() {
            None => return Some(any_match),
            // An empty member (§5.6.1): skip it.
            Some((b',', after)) => {
                rest = after;
                continue;
            }
            Some(_) => {}
        }
        let (tag, after) = split_entity_tag(rest)?;
        any_match |= matches(tag);
        rest = trim_ows_start(after);
        match rest.split_first() {
            None => return Some(any_match),
            Some((b',', after)) => rest = after,
            Some(_) => return None,
        }
    }
}

/// Parses a field value that must be exactly one entity-tag.
fn parse_entity_tag(value: &[u8]) -> Option<EntityTag<'_>> {
    match split_entity_tag(value)? {
        (tag, []) => Some(tag),
        _ => None,
    }
}

/// Splits an entity-tag (§8.8.3: `[ %s"W/" ] DQUOTE *etagc DQUOTE`) off the front of `input`,
/// returning it and the bytes after its closing quote. The `W/` prefix is case-sensitive.
/// Commas are ordinary `etagc`, so a tag such as `"a,b"` stays whole.
fn split_entity_tag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, quoted) = match input.strip_prefix(b"W/") {
        Some(quoted) => (true, quoted),
        None => (false, input),
    };
    let body = quoted.strip_prefix(b"\"")?;
    let end = body.iter().position(|&byte| !is_etagc(byte))?;
    let (opaque, after) = body.split_at(end);
    let after = after.strip_prefix(b"\"")?;
    Some((EntityTag { weak, opaque }, after))
}

/// `etagc = %x21 / %x23-7E / obs-text` (§8.8.3), obs-text being %x80-FF (§5.5).
fn is_etagc(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x7E | 0x80..=0xFF)
}

/// The HTTP-date of a date-valued field line, or None when it is not a valid HTTP-date (§13.1.3, §13.1.4
/// say to ignore the field then, and also when it has several field lines: callers pass only a lone line).
/// A line holding a list of dates fails to parse, so it is ignored as well.
fn http_date(value: &HeaderValue) -> Option<i128> {
    parse_http_date(trim_ows(value.as_bytes()))
}

/// Parses an HTTP-date (§5.6.7: IMF-fixdate, RFC 850 or asctime) into Unix seconds.
fn parse_http_date(value: &[u8]) -> Option<i128> {
    let text = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(text).ok().map(unix_seconds)
}

/// Whole seconds since the Unix epoch, rounded down (so also correct before 1970).
fn unix_seconds(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(before) => {
            let before = before.duration();
            let whole = i128::from(before.as_secs());
            if before.subsec_nanos() == 0 {
                -whole
            } else {
                -whole - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;
    use std::time::Duration;

    /// RFC 9110's example instant, `Sun, 06 Nov 1994 08:49:37 GMT`.
    const LM_SECS: u64 = 784_111_777;
    const LM_IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const OURS: &str = "\"v1\"";

    const PROCEED: Precondition = Precondition::Proceed {
        range_applies: true,
    };
    const IGNORE_RANGE: Precondition = Precondition::Proceed {
        range_applies: false,
    };
    const NOT_MODIFIED: Precondition = Precondition::NotModified;
    const FAILED: Precondition = Precondition::Failed;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A strong ETag `"v1"` and Last-Modified `LM_IMF`.
    fn strong() -> Validators<'static> {
        Validators {
            etag: OURS.as_bytes(),
            etag_is_ours: false,
            last_modified: Some(at(LM_SECS)),
            last_modified_value: Some(LM_IMF.as_bytes()),
            strong_date_from: Some(at(LM_SECS + 1)),
        }
    }

    /// Same as [`strong`] with the weak ETag `W/"v1"`.
    fn weak() -> Validators<'static> {
        Validators {
            etag: b"W/\"v1\"",
            ..strong()
        }
    }

    /// Same as [`strong`] without any modification date.
    fn undated() -> Validators<'static> {
        Validators {
            last_modified: None,
            last_modified_value: None,
            ..strong()
        }
    }

    fn header_map(fields: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_bytes(value).expect("test header value"),
            );
        }
        map
    }

    /// One row of a rule table: fields (as text), method, validators and the expected verdict.
    struct Case<'a> {
        fields: &'a [(&'a str, &'a str)],
        method: Method,
        validators: Validators<'a>,
        expect: Precondition,
    }

    fn case<'a>(
        method: Method,
        validators: Validators<'a>,
        fields: &'a [(&'a str, &'a str)],
        expect: Precondition,
    ) -> Case<'a> {
        Case {
            fields,
            method,
            validators,
            expect,
        }
    }

    fn run(cases: &[Case<'_>]) {
        for (row, case) in cases.iter().enumerate() {
            let fields: Vec<(&str, &[u8])> = case
                .fields
                .iter()
                .map(|&(name, value)| (name, value.as_bytes()))
                .collect();
            let got = evaluate_preconditions(&case.method, &header_map(&fields), &case.validators);
            assert_eq!(
                got, case.expect,
                "row {row}: {} {:?} with etag {:?}",
                case.method, case.fields, case.validators.etag
            );
        }
    }

    fn get(fields: &[(&str, &[u8])], validators: &Validators<'_>) -> Precondition {
        evaluate_preconditions(&Method::GET, &header_map(fields), validators)
    }

    // ---- no conditionals, ignored methods ----

    #[test]
    fn no_conditional_fields_proceed() {
        run(&[
            case(Method::GET, strong(), &[], PROCEED),
            case(Method::HEAD, weak(), &[], PROCEED),
            case(Method::PUT, undated(), &[("range", "bytes=0-1")], PROCEED),
        ]);
    }

    #[test]
    fn conditionals_are_ignored_for_connect_options_trace() {
        let all: &[(&str, &str)] = &[
            ("if-match", "\"other\""),
            ("if-none-match", "*"),
            ("if-range", "garbage"),
        ];
        run(&[
            case(Method::OPTIONS, strong(), all, PROCEED),
            case(Method::TRACE, strong(), all, PROCEED),
            case(Method::CONNECT, strong(), all, PROCEED),
            case(Method::DELETE, strong(), all, FAILED),
        ]);
    }

    // ---- §13.1.1 If-Match ----

    #[test]
    fn if_match_star_proceeds() {
        run(&[
            case(Method::GET, strong(), &[("if-match", "*")], PROCEED),
            case(Method::PUT, weak(), &[("if-match", " *\t")], PROCEED),
            case(Method::GET, undated(), &[("if-match", "*")], PROCEED),
        ]);
    }

    #[test]
    fn if_match_strong_member_proceeds() {
        run(&[
            case(Method::GET, strong(), &[("if-match", OURS)], PROCEED),
            case(
                Method::GET,
                strong(),
                &[("if-match", "\"a\", \"v1\"")],
                PROCEED,
            ),
            case(
                Method::POST,
                strong(),
                &[("if-match", "\"v1\",\"z\"")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn if_match_mismatch_fails() {
        run(&[
            case(Method::GET, strong(), &[("if-match", "\"v2\"")], FAILED),
            case(Method::GET, strong(), &[("if-match", "\"V1\"")], FAILED),
            case(Method::PUT, strong(), &[("if-match", "\"v1 \"")], FAILED),
            // An empty list has no matching member.
            case(Method::GET, strong(), &[("if-match", "")], FAILED),
            case(Method::GET, strong(), &[("if-match", " , ,")], FAILED),
        ]);
    }

    #[test]
    fn if_match_weak_never_matches() {
        run(&[
            // Their tag weak, ours strong.
            case(Method::GET, strong(), &[("if-match", "W/\"v1\"")], FAILED),
            // Ours weak, theirs strong or weak.
            case(Method::GET, weak(), &[("if-match", OURS)], FAILED),
            case(Method::GET, weak(), &[("if-match", "W/\"v1\"")], FAILED),
            case(
                Method::GET,
                weak(),
                &[("if-match", "W/\"v1\", \"v1\"")],
                FAILED,
            ),
        ]);
    }

    #[test]
    fn if_match_malformed_fails() {
        run(&[
            case(Method::GET, strong(), &[("if-match", "v1")], FAILED),
            case(
                Method::GET,
                strong(),
                &[("if-match", "\"v1\" \"v2\"")],
                FAILED,
            ),
            // One malformed member spoils a list that also holds a match.
            case(
                Method::GET,
                strong(),
                &[("if-match", "\"v1\", bad")],
                FAILED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-match", "bad, \"v1\"")],
                FAILED,
            ),
            // `*` is only valid alone.
            case(Method::GET, strong(), &[("if-match", "*, \"v1\"")], FAILED),
            case(Method::GET, strong(), &[("if-match", "\"v1\", *")], FAILED),
            case(Method::GET, strong(), &[("if-match", "**")], FAILED),
        ]);
    }

    #[test]
    fn if_match_field_lines_combine_into_one_list() {
        let match_second: &[(&str, &str)] = &[("if-match", "\"a\""), ("if-match", "\"v1\"")];
        let bad_second: &[(&str, &str)] = &[("if-match", "\"v1\""), ("if-match", "nope")];
        let two_stars: &[(&str, &str)] = &[("if-match", "*"), ("if-match", "*")];
        let split_tag: &[(&str, &str)] = &[("if-match", "\"v"), ("if-match", "1\"")];
        run(&[
            case(Method::GET, strong(), match_second, PROCEED),
            case(Method::GET, strong(), bad_second, FAILED),
            case(Method::GET, strong(), two_stars, FAILED),
            case(Method::GET, strong(), split_tag, FAILED),
        ]);
    }

    // ---- §13.1.4 If-Unmodified-Since ----

    #[test]
    fn if_unmodified_since_compares_seconds() {
        run(&[
            // One second before our date: modified since, so the condition is false.
            case(
                Method::GET,
                strong(),
                &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:36 GMT")],
                FAILED,
            ),
            case(
                Method::PUT,
                strong(),
                &[("if-unmodified-since", LM_IMF)],
                PROCEED,
            ),
            case(
                Method::PUT,
                strong(),
                &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:38 GMT")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn if_unmodified_since_ignored_when_if_match_present() {
        let stale = "Sun, 06 Nov 1994 08:49:36 GMT";
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-match", OURS), ("if-unmodified-since", stale)],
                PROCEED,
            ),
            case(
                Method::PUT,
                strong(),
                &[("if-match", "*"), ("if-unmodified-since", stale)],
                PROCEED,
            ),
            // If-Match decides alone, in both directions.
            case(
                Method::GET,
                strong(),
                &[("if-match", "\"x\""), ("if-unmodified-since", LM_IMF)],
                FAILED,
            ),
        ]);
    }

    #[test]
    fn if_unmodified_since_ignored_without_last_modified() {
        run(&[case(
            Method::PUT,
            undated(),
            &[("if-unmodified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            PROCEED,
        )]);
    }

    #[test]
    fn if_unmodified_since_with_two_members_is_ignored() {
        let stale = "Sun, 06 Nov 1994 08:49:36 GMT";
        let two_lines: &[(&str, &str)] = &[
            ("if-unmodified-since", stale),
            ("if-unmodified-since", stale),
        ];
        let one_line = "Sun, 06 Nov 1994 08:49:36 GMT, Sun, 06 Nov 1994 08:49:36 GMT";
        run(&[
            case(Method::PUT, strong(), two_lines, PROCEED),
            case(
                Method::PUT,
                strong(),
                &[("if-unmodified-since", one_line)],
                PROCEED,
            ),
        ]);
    }

    // ---- §13.1.2 If-None-Match ----

    #[test]
    fn if_none_match_star_is_not_modified() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "*")],
                NOT_MODIFIED,
            ),
            case(
                Method::HEAD,
                undated(),
                &[("if-none-match", "*")],
                NOT_MODIFIED,
            ),
            case(Method::PUT, strong(), &[("if-none-match", "*")], FAILED),
        ]);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-none-match", OURS)],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "W/\"v1\"")],
                NOT_MODIFIED,
            ),
            case(
                Method::HEAD,
                weak(),
                &[("if-none-match", OURS)],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                weak(),
                &[("if-none-match", "W/\"v1\"")],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                weak(),
                &[("if-none-match", "\"x\", W/\"v1\"")],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "\"v2\", W/\"x\"")],
                PROCEED,
            ),
            case(Method::GET, strong(), &[("if-none-match", "")], PROCEED),
        ]);
    }

    #[test]
    fn if_none_match_on_non_get_fails() {
        run(&[
            case(Method::POST, strong(), &[("if-none-match", OURS)], FAILED),
            case(
                Method::PUT,
                weak(),
                &[("if-none-match", "W/\"v1\"")],
                FAILED,
            ),
            case(Method::DELETE, strong(), &[("if-none-match", "*")], FAILED),
            case(
                Method::PATCH,
                strong(),
                &[("if-none-match", "\"x\"")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn if_none_match_malformed_matches_nothing() {
        run(&[
            case(Method::GET, strong(), &[("if-none-match", "v1")], PROCEED),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "\"v1\", bad")],
                PROCEED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "*, \"v1\"")],
                PROCEED,
            ),
            case(
                Method::PUT,
                strong(),
                &[("if-none-match", "w/\"v1\"")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn if_none_match_field_lines_combine_into_one_list() {
        let second: &[(&str, &str)] = &[("if-none-match", "\"a\""), ("if-none-match", OURS)];
        let bad: &[(&str, &str)] = &[("if-none-match", OURS), ("if-none-match", "x")];
        run(&[
            case(Method::GET, strong(), second, NOT_MODIFIED),
            case(Method::GET, strong(), bad, PROCEED),
        ]);
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        run(&[
            // If-None-Match holds: If-Modified-Since (which would say 304) is not consulted.
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "\"v0\""), ("if-modified-since", LM_IMF)],
                PROCEED,
            ),
            // A malformed If-None-Match is still present, so it still wins.
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "junk"), ("if-modified-since", LM_IMF)],
                PROCEED,
            ),
            // If-None-Match fails: 304 although If-Modified-Since says "modified".
            case(
                Method::GET,
                strong(),
                &[
                    ("if-none-match", OURS),
                    ("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT"),
                ],
                NOT_MODIFIED,
            ),
        ]);
    }

    // ---- §13.1.3 If-Modified-Since ----

    #[test]
    fn if_modified_since_compares_seconds() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:36 GMT")],
                PROCEED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-modified-since", LM_IMF)],
                NOT_MODIFIED,
            ),
            case(
                Method::HEAD,
                strong(),
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:38 GMT")],
                NOT_MODIFIED,
            ),
        ]);
    }

    #[test]
    fn if_modified_since_only_for_get_and_head() {
        let fields: &[(&str, &str)] = &[("if-modified-since", LM_IMF)];
        run(&[
            case(Method::GET, strong(), fields, NOT_MODIFIED),
            case(Method::HEAD, strong(), fields, NOT_MODIFIED),
            case(Method::POST, strong(), fields, PROCEED),
            case(Method::PUT, strong(), fields, PROCEED),
        ]);
    }

    #[test]
    fn if_modified_since_ignored_without_last_modified() {
        run(&[case(
            Method::GET,
            undated(),
            &[("if-modified-since", "Fri, 31 Dec 9999 23:59:59 GMT")],
            PROCEED,
        )]);
    }

    #[test]
    fn if_modified_since_with_two_members_is_ignored() {
        let two_lines: &[(&str, &str)] =
            &[("if-modified-since", LM_IMF), ("if-modified-since", LM_IMF)];
        let one_line = "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT";
        run(&[
            case(Method::GET, strong(), two_lines, PROCEED),
            case(
                Method::GET,
                strong(),
                &[("if-modified-since", one_line)],
                PROCEED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT,")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn malformed_dates_are_ignored() {
        let bad = [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "sun, 06 nov 1994 08:49:37 gmt",
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Thu, 01 Jan 1969 00:00:00 GMT",
            "784111777",
            "Sun, 06 Nov 1994 08:49:37 GMT junk",
        ];
        for date in bad {
            run(&[
                case(
                    Method::GET,
                    strong(),
                    &[("if-modified-since", date)],
                    PROCEED,
                ),
                case(
                    Method::PUT,
                    strong(),
                    &[("if-unmodified-since", date)],
                    PROCEED,
                ),
                case(
                    Method::GET,
                    strong(),
                    &[("range", "bytes=0-0"), ("if-range", date)],
                    IGNORE_RANGE,
                ),
            ]);
        }
        // Non-UTF-8 bytes are just another invalid date.
        for name in ["if-modified-since", "if-unmodified-since"] {
            assert_eq!(
                get(&[(name, b"Sun, 06 Nov 1994 08:49:37 GM\xff")], &strong()),
                PROCEED,
                "{name}"
            );
        }
    }

    #[test]
    fn dates_are_trimmed_of_surrounding_whitespace() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-modified-since", " \tSun, 06 Nov 1994 08:49:37 GMT\t ")],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-range", " Sun, 06 Nov 1994 08:49:37 GMT ")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn all_three_http_date_formats_are_accepted() {
        // RFC 9110 §5.6.7's example instant in each format, then one second before and after.
        let formats = [
            [
                "Sun, 06 Nov 1994 08:49:36 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                "Sun, 06 Nov 1994 08:49:38 GMT",
            ],
            [
                "Sunday, 06-Nov-94 08:49:36 GMT",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sunday, 06-Nov-94 08:49:38 GMT",
            ],
            [
                "Sun Nov  6 08:49:36 1994",
                "Sun Nov  6 08:49:37 1994",
                "Sun Nov  6 08:49:38 1994",
            ],
        ];
        for [before, equal, after] in formats {
            run(&[
                // If-Modified-Since: 304 unless modified after the date.
                case(
                    Method::GET,
                    strong(),
                    &[("if-modified-since", before)],
                    PROCEED,
                ),
                case(
                    Method::GET,
                    strong(),
                    &[("if-modified-since", equal)],
                    NOT_MODIFIED,
                ),
                case(
                    Method::GET,
                    strong(),
                    &[("if-modified-since", after)],
                    NOT_MODIFIED,
                ),
                // If-Unmodified-Since: 412 when modified after the date.
                case(
                    Method::GET,
                    strong(),
                    &[("if-unmodified-since", before)],
                    FAILED,
                ),
                case(
                    Method::GET,
                    strong(),
                    &[("if-unmodified-since", equal)],
                    PROCEED,
                ),
                case(
                    Method::GET,
                    strong(),
                    &[("if-unmodified-since", after)],
                    PROCEED,
                ),
                // If-Range: only the very same second.
                case(Method::GET, strong(), &[("if-range", before)], IGNORE_RANGE),
                case(Method::GET, strong(), &[("if-range", equal)], PROCEED),
                case(Method::GET, strong(), &[("if-range", after)], IGNORE_RANGE),
            ]);
        }
    }

    #[test]
    fn sub_second_last_modified_is_compared_in_whole_seconds() {
        let fractional = Validators {
            last_modified: Some(at(LM_SECS) + Duration::from_millis(999)),
            ..strong()
        };
        run(&[
            case(
                Method::GET,
                fractional,
                &[("if-modified-since", LM_IMF)],
                NOT_MODIFIED,
            ),
            case(
                Method::PUT,
                fractional,
                &[("if-unmodified-since", LM_IMF)],
                PROCEED,
            ),
            case(Method::GET, fractional, &[("if-range", LM_IMF)], PROCEED),
        ]);
    }

    #[test]
    fn last_modified_before_the_epoch_is_older_than_any_http_date() {
        let ancient = Validators {
            last_modified: UNIX_EPOCH.checked_sub(Duration::from_millis(1_500)),
            ..strong()
        };
        let epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
        run(&[
            case(
                Method::GET,
                ancient,
                &[("if-modified-since", epoch)],
                NOT_MODIFIED,
            ),
            case(
                Method::PUT,
                ancient,
                &[("if-unmodified-since", epoch)],
                PROCEED,
            ),
            case(Method::GET, ancient, &[("if-range", epoch)], IGNORE_RANGE),
        ]);
        assert_eq!(unix_seconds(at(0) - Duration::from_secs(2)), -2);
        assert_eq!(unix_seconds(at(0) - Duration::from_millis(1)), -1);
    }

    // ---- §13.1.5 If-Range ----

    #[test]
    fn if_range_absent_applies() {
        run(&[
            case(Method::GET, strong(), &[("range", "bytes=0-0")], PROCEED),
            case(Method::GET, undated(), &[], PROCEED),
        ]);
    }

    #[test]
    fn if_range_strong_etag_must_match_strongly() {
        run(&[
            case(Method::GET, strong(), &[("if-range", OURS)], PROCEED),
            case(Method::GET, strong(), &[("if-range", " \"v1\"\t")], PROCEED),
            case(
                Method::GET,
                strong(),
                &[("if-range", "\"v2\"")],
                IGNORE_RANGE,
            ),
            // Our weak tag cannot satisfy If-Range either.
            case(Method::GET, weak(), &[("if-range", OURS)], IGNORE_RANGE),
        ]);
    }

    #[test]
    fn if_range_weak_etag_is_false() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-range", "W/\"v1\"")],
                IGNORE_RANGE,
            ),
            case(
                Method::GET,
                weak(),
                &[("if-range", "W/\"v1\"")],
                IGNORE_RANGE,
            ),
        ]);
    }

    #[test]
    fn if_range_date_must_equal_exactly() {
        let later = Validators {
            last_modified: Some(at(LM_SECS + 1)),
            ..strong()
        };
        let value_not_sent = Validators {
            last_modified_value: None,
            ..strong()
        };
        run(&[
            case(Method::GET, strong(), &[("if-range", LM_IMF)], PROCEED),
            // Same second spelled in RFC 850 form.
            case(
                Method::GET,
                strong(),
                &[("if-range", "Sunday, 06-Nov-94 08:49:37 GMT")],
                PROCEED,
            ),
            // Newer than ours is not "equal" (unlike If-Modified-Since's <=).
            case(
                Method::GET,
                strong(),
                &[("if-range", "Sun, 06 Nov 1994 08:49:38 GMT")],
                IGNORE_RANGE,
            ),
            case(Method::GET, later, &[("if-range", LM_IMF)], IGNORE_RANGE),
            // No Last-Modified field sent, or no date at all: no date can match.
            case(
                Method::GET,
                value_not_sent,
                &[("if-range", LM_IMF)],
                IGNORE_RANGE,
            ),
            case(
                Method::GET,
                undated(),
                &[("if-range", LM_IMF)],
                IGNORE_RANGE,
            ),
        ]);
    }

    #[test]
    fn if_range_date_must_be_a_strong_validator() {
        // The second the date names is not over (another version may still get it), or the cache saw two
        // versions with this date: the date is weak, and a matching one sends the whole file.
        let unsettled = Validators {
            strong_date_from: Some(SystemTime::now() + Duration::from_secs(3600)),
            ..strong()
        };
        let ambiguous = Validators {
            strong_date_from: None,
            ..strong()
        };
        let settled = Validators {
            strong_date_from: Some(SystemTime::now() - Duration::from_secs(1)),
            ..strong()
        };
        run(&[
            case(
                Method::GET,
                unsettled,
                &[("if-range", LM_IMF)],
                IGNORE_RANGE,
            ),
            case(
                Method::GET,
                ambiguous,
                &[("if-range", LM_IMF)],
                IGNORE_RANGE,
            ),
            case(Method::GET, settled, &[("if-range", LM_IMF)], PROCEED),
            // Entity-tags are unaffected.
            case(Method::GET, ambiguous, &[("if-range", OURS)], PROCEED),
        ]);
    }

    #[test]
    fn if_range_anything_else_is_false() {
        let two_lines: &[(&str, &str)] = &[("if-range", OURS), ("if-range", OURS)];
        run(&[
            case(Method::GET, strong(), &[("if-range", "")], IGNORE_RANGE),
            case(Method::GET, strong(), &[("if-range", "v1")], IGNORE_RANGE),
            case(Method::GET, strong(), &[("if-range", "*")], IGNORE_RANGE),
            case(
                Method::GET,
                strong(),
                &[("if-range", "\"v1\", \"v1\"")],
                IGNORE_RANGE,
            ),
            case(Method::GET, strong(), &[("if-range", "\"v1")], IGNORE_RANGE),
            case(Method::GET, strong(), two_lines, IGNORE_RANGE),
        ]);
        assert_eq!(get(&[("if-range", b"\"v1\xff\"")], &strong()), IGNORE_RANGE);
    }

    #[test]
    fn if_range_is_only_consulted_when_proceeding() {
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-none-match", OURS), ("if-range", "junk")],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-match", "\"x\""), ("if-range", OURS)],
                FAILED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-match", OURS), ("if-range", "W/\"v1\"")],
                IGNORE_RANGE,
            ),
        ]);
    }

    // ---- entity-tag grammar (§8.8.3) and lists (§5.6.1) ----

    #[test]
    fn comma_inside_opaque_tag_is_part_of_the_tag() {
        let comma = Validators {
            etag: b"\"a,b\"",
            ..strong()
        };
        run(&[
            case(Method::GET, comma, &[("if-match", "\"a,b\"")], PROCEED),
            case(Method::GET, comma, &[("if-match", "\"a\", \"b\"")], FAILED),
            case(
                Method::GET,
                comma,
                &[("if-match", "\"x\",\"a,b\",\"y\"")],
                PROCEED,
            ),
            case(
                Method::GET,
                comma,
                &[("if-none-match", "\"x,\", \"a,b\"")],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                comma,
                &[("if-none-match", "\"a\",\"b\"")],
                PROCEED,
            ),
            case(Method::GET, comma, &[("if-range", "\"a,b\"")], PROCEED),
            // A tag made of commas is still one tag.
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "\",,,\"")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn obs_text_is_allowed_in_opaque_tags() {
        let ours: &[u8] = b"\"\x80caf\xc3\xa9\xff\"";
        let latin = Validators {
            etag: ours,
            ..strong()
        };
        assert_eq!(get(&[("if-match", ours)], &latin), PROCEED);
        assert_eq!(
            get(&[("if-none-match", b"W/\"\x80caf\xc3\xa9\xff\"")], &latin),
            NOT_MODIFIED
        );
        assert_eq!(get(&[("if-range", ours)], &latin), PROCEED);
        assert_eq!(
            get(&[("if-match", b"\"\x80caf\xc3\xa9\xfe\"")], &latin),
            FAILED
        );
        // Valid UTF-8 non-ASCII is obs-text too.
        let accented = Validators {
            etag: "\"é\"".as_bytes(),
            ..strong()
        };
        run(&[case(
            Method::GET,
            accented,
            &[("if-match", "\"x\", \"é\"")],
            PROCEED,
        )]);
    }

    #[test]
    fn entity_tag_grammar_is_strict() {
        // Each is malformed, so If-Match fails and If-None-Match holds.
        let malformed = [
            "v1",
            "'v1'",
            "\"v1",
            "v1\"",
            "w/\"v1\"",
            "W/ \"v1\"",
            "W/v1",
            "W/",
            "\"v 1\"",
            "\"v\t1\"",
            "\"v1\"\"\"",
            "\"v1\"x",
            "\"\"\"",
            "\"v1\";",
            "\"x, \"",
        ];
        for value in malformed {
            run(&[
                case(Method::GET, strong(), &[("if-match", value)], FAILED),
                case(Method::GET, strong(), &[("if-none-match", value)], PROCEED),
                case(Method::GET, strong(), &[("if-range", value)], IGNORE_RANGE),
            ]);
        }
        // DEL is not etagc (HeaderValue refuses it anyway).
        assert!(!is_etagc(0x7F));
        assert!(!is_etagc(b'"'));
        assert!(!is_etagc(b' '));
        // The empty opaque-tag and backslashes are fine.
        let empty = Validators {
            etag: b"\"\"",
            ..strong()
        };
        run(&[
            case(Method::GET, empty, &[("if-match", "\"\"")], PROCEED),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", "\"\\\"")],
                PROCEED,
            ),
        ]);
    }

    #[test]
    fn our_invalid_etag_never_matches() {
        for etag in [&b""[..], b"v1", b"\"v1", b"W/v1", b" \"v1\""] {
            let broken = Validators { etag, ..strong() };
            run(&[
                case(Method::GET, broken, &[("if-match", OURS)], FAILED),
                case(Method::GET, broken, &[("if-match", "*")], PROCEED),
                case(Method::GET, broken, &[("if-none-match", OURS)], PROCEED),
                case(Method::GET, broken, &[("if-none-match", "*")], NOT_MODIFIED),
                case(Method::GET, broken, &[("if-range", OURS)], IGNORE_RANGE),
                case(Method::GET, broken, &[("if-range", LM_IMF)], PROCEED),
            ]);
        }
    }

    #[test]
    fn lists_allow_whitespace_and_empty_elements() {
        let spaced = [
            ",\"v1\"",
            "\"v1\",",
            " , ,\t\"v1\" ,, ",
            "\"a\" ,\t\"v1\"",
            "\"a\",,,\"v1\",,,\"b\"",
            "\t\"a\"\t,\t\"v1\"\t",
        ];
        for value in spaced {
            run(&[
                case(Method::GET, strong(), &[("if-match", value)], PROCEED),
                case(
                    Method::GET,
                    strong(),
                    &[("if-none-match", value)],
                    NOT_MODIFIED,
                ),
            ]);
        }
        // Whitespace separates nothing by itself: a comma is required between members.
        run(&[case(
            Method::GET,
            strong(),
            &[("if-match", "\"a\"\t\"v1\"")],
            FAILED,
        )]);
        assert_eq!(scan_tag_list(b" ,\t, ", |_| true), Some(false));
    }

    #[test]
    fn ten_thousand_tags_are_evaluated() {
        let misses: Vec<String> = (0..9_999).map(|n| format!("\"t{n}\"")).collect();
        let list_ending_in_ours = format!("{}, {OURS}", misses.join(", "));
        let list_without_ours = misses.join(",");
        let spoiled_at_end = format!("{list_ending_in_ours}, x");
        run(&[
            case(
                Method::GET,
                strong(),
                &[("if-match", &list_ending_in_ours)],
                PROCEED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-match", &list_without_ours)],
                FAILED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-match", &spoiled_at_end)],
                FAILED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", &list_ending_in_ours)],
                NOT_MODIFIED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", &list_without_ours)],
                PROCEED,
            ),
            case(
                Method::GET,
                strong(),
                &[("if-none-match", &spoiled_at_end)],
                PROCEED,
            ),
        ]);
        // The same 10,000 tags as separate field lines.
        let mut lines = HeaderMap::new();
        for tag in misses.iter().map(String::as_str).chain([OURS]) {
            lines.append(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(tag).expect("tag"),
            );
        }
        assert_eq!(
            evaluate_preconditions(&Method::GET, &lines, &strong()),
            NOT_MODIFIED
        );
        // A single huge opaque-tag and a long run of empty members are linear too.
        let huge = format!("\"{}\"", "x".repeat(100_000));
        let commas = ",".repeat(100_000);
        run(&[
            case(Method::GET, strong(), &[("if-match", &huge)], FAILED),
            case(Method::GET, strong(), &[("if-match", &commas)], FAILED),
        ]);
    }

    // ---- properties ----

    const NAMES: [&str; 5] = [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
    ];

    /// Pieces that steer random field values into the interesting branches.
    const PIECES: &[&[u8]] = &[
        b"\"v1\"",
        b"W/\"v1\"",
        b"\"v2\"",
        b"\"a,b\"",
        b"\"\xe9\xff\"",
        b"*",
        b",",
        b", ",
        b" ",
        b"\t",
        b"\"",
        b"W/",
        b"w/",
        b"x",
        b"\xff",
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49:36 GMT",
        b"Sunday, 06-Nov-94 08:49:38 GMT",
        b"Sun Nov  6 08:49:37 1994",
    ];

    /// Bytes a `HeaderValue` accepts: HTAB, visible ASCII, SP and obs-text.
    fn value_byte() -> impl Strategy<Value = u8> {
        prop_oneof![Just(b'\t'), 0x20u8..=0x7E, 0x80u8..=0xFF]
    }

    fn field_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(value_byte(), 0..48),
            proptest::collection::vec(proptest::sample::select(PIECES), 0..6)
                .prop_map(|pieces| pieces.concat()),
        ]
    }

    /// Up to five field lines, each for a random conditional field (repeats allowed).
    fn fields() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
        proptest::collection::vec((0..NAMES.len(), field_value()), 0..6)
    }

    fn method() -> impl Strategy<Value = Method> {
        proptest::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::from_bytes(b"PURGE").expect("extension method"),
        ])
    }

    /// Owned validators, borrowed as [`Validators`] by [`OwnedValidators::view`].
    #[derive(Debug, Clone)]
    struct OwnedValidators {
        etag: Vec<u8>,
        last_modified: Option<u64>,
        value_sent: bool,
    }

    impl OwnedValidators {
        fn view(&self) -> Validators<'_> {
            Validators {
                etag: &self.etag,
                etag_is_ours: false,
                last_modified: self.last_modified.map(at),
                last_modified_value: self.value_sent.then_some(LM_IMF.as_bytes()),
                strong_date_from: Some(UNIX_EPOCH),
            }
        }
    }

    fn validators() -> impl Strategy<Value = OwnedValidators> {
        let etag = prop_oneof![
            proptest::sample::select(vec![
                b"\"v1\"".to_vec(),
                b"W/\"v1\"".to_vec(),
                b"\"a,b\"".to_vec(),
                b"\"\xe9\xff\"".to_vec(),
            ]),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        let seconds = prop_oneof![
            Just(LM_SECS),
            Just(LM_SECS - 1),
            Just(LM_SECS + 1),
            0u64..4_000_000_000
        ];
        (etag, proptest::option::of(seconds), any::<bool>()).prop_map(
            |(etag, last_modified, value_sent)| OwnedValidators {
                etag,
                last_modified,
                value_sent,
            },
        )
    }

    fn build(fields: &[(usize, Vec<u8>)], name_case: impl Fn(usize, &str) -> String) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (index, (name, value)) in fields.iter().enumerate() {
            let name = name_case(index, NAMES[*name]);
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                HeaderValue::from_bytes(value).expect("value_byte only yields valid bytes"),
            );
        }
        map
    }

    fn lower(_: usize, name: &str) -> String {
        name.to_owned()
    }

    fn without(fields: &[(usize, Vec<u8>)], name: &str) -> Vec<(usize, Vec<u8>)> {
        fields
            .iter()
            .filter(|(index, _)| NAMES[*index] != name)
            .cloned()
            .collect()
    }

    fn has(fields: &[(usize, Vec<u8>)], name: &str) -> bool {
        fields.iter().any(|(index, _)| NAMES[*index] == name)
    }

    /// The verdict with `range_applies` forgotten.
    fn outcome(verdict: Precondition) -> Precondition {
        match verdict {
            Precondition::Proceed { .. } => PROCEED,
            other => other,
        }
    }

    /// Renders Unix seconds in the three HTTP-date formats (RFC 850 needs 1970..=2069).
    fn three_formats(secs: u64) -> [String; 3] {
        let imf = httpdate::fmt_http_date(at(secs));
        let (day_name, rest) = imf.split_at(3);
        let (day, month, year, time) = (&rest[2..4], &rest[5..8], &rest[9..13], &rest[14..22]);
        let long_day = match day_name {
            "Mon" => "Monday",
            "Tue" => "Tuesday",
            "Wed" => "Wednesday",
            "Thu" => "Thursday",
            "Fri" => "Friday",
            "Sat" => "Saturday",
            _ => "Sunday",
        };
        let rfc850 = format!("{long_day}, {day}-{month}-{} {time} GMT", &year[2..]);
        let asc_day = day.strip_prefix('0').unwrap_or(day);
        let asctime = format!("{day_name} {month} {asc_day:>2} {time} {year}");
        [imf, rfc850, asctime]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any bytes in any conditional field: no panic, and 304 only ever answers GET or HEAD.
        #[test]
        fn arbitrary_fields_never_panic(
            method in method(),
            fields in fields(),
            owned in validators(),
        ) {
            let verdict = evaluate_preconditions(&method, &build(&fields, lower), &owned.view());
            if verdict == NOT_MODIFIED {
                prop_assert!(method == Method::GET || method == Method::HEAD);
            }
            if fields.is_empty() {
                prop_assert_eq!(verdict, PROCEED);
            }
        }

        /// Field names are case-insensitive; HeaderMap normalises them, so any spelling gives
        /// the same verdict as the lowercase one.
        #[test]
        fn field_name_case_does_not_matter(
            method in method(),
            fields in fields(),
            owned in validators(),
            upper in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let mixed = |index: usize, name: &str| -> String {
                name.chars()
                    .enumerate()
                    .map(|(at, c)| {
                        if upper[(index * 7 + at) % upper.len()] { c.to_ascii_uppercase() } else { c }
                    })
                    .collect()
            };
            let view = owned.view();
            prop_assert_eq!(
                evaluate_preconditions(&method, &build(&fields, mixed), &view),
                evaluate_preconditions(&method, &build(&fields, lower), &view)
            );
        }

        /// An entity-tag the service vouches for (`etag_is_ours`, not parsed) gives the verdicts that parsing it
        /// gives, whatever the request says.
        #[test]
        fn a_trusted_etag_decides_as_a_parsed_one(
            method in method(),
            fields in fields(),
            owned in validators(),
        ) {
            let parsed = owned.view();
            prop_assume!(parse_entity_tag(parsed.etag).is_some_and(|tag| !tag.weak));
            let trusted = Validators { etag_is_ours: true, ..parsed };
            let headers = build(&fields, lower);
            prop_assert_eq!(
                evaluate_preconditions(&method, &headers, &trusted),
                evaluate_preconditions(&method, &headers, &parsed)
            );
        }

        /// A field that is exactly our ETag, which takes the shortcut (no parsing), decides as the same bytes
        /// with whitespace around them, which are parsed: for If-Match and If-None-Match, trusted or not.
        #[test]
        fn an_echoed_etag_decides_as_a_parsed_one(
            method in method(),
            owned in validators(),
            name in proptest::sample::select(vec!["if-match", "if-none-match"]),
            trusted in any::<bool>(),
        ) {
            prop_assume!(HeaderValue::from_bytes(&owned.etag).is_ok());
            let view = Validators {
                etag_is_ours: trusted && parse_entity_tag(&owned.etag).is_some_and(|tag| !tag.weak),
                ..owned.view()
            };
            let padded = [b" ".as_slice(), &owned.etag, b"\t"].concat();
            let exact = evaluate_preconditions(&method, &header_map(&[(name, &owned.etag)]), &view);
            let parsed = evaluate_preconditions(&method, &header_map(&[(name, &padded)]), &view);
            prop_assert_eq!(exact, parsed);
        }

        /// The fields §13.2.2 says to skip really have no effect: If-Unmodified-Since under
        /// If-Match, If-Modified-Since under If-None-Match or for other methods, and If-Range
        /// on anything but `range_applies` (which is true without it).
        #[test]
        fn skipped_fields_have_no_effect(
            method in method(),
            fields in fields(),
            owned in validators(),
        ) {
            let view = owned.view();
            let verdict = evaluate_preconditions(&method, &build(&fields, lower), &view);
            let dropping = |name: &str| {
                evaluate_preconditions(&method, &build(&without(&fields, name), lower), &view)
            };
            if has(&fields, "if-match") {
                prop_assert_eq!(dropping("if-unmodified-since"), verdict);
            }
            let get_or_head = method == Method::GET || method == Method::HEAD;
            if has(&fields, "if-none-match") || !get_or_head {
                prop_assert_eq!(dropping("if-modified-since"), verdict);
            }
            let no_range = dropping("if-range");
            prop_assert_eq!(outcome(no_range), outcome(verdict));
            if let Precondition::Proceed { range_applies } = no_range {
                prop_assert!(range_applies);
            }
        }

        /// A list means the same whatever the order of its members, the whitespace and empty
        /// members around them, and however it is split into field lines; W/ on their side
        /// only matters for If-Match.
        #[test]
        fn list_layout_does_not_matter(
            method in method(),
            owned in validators(),
            tags in proptest::collection::vec(
                (any::<bool>(), proptest::sample::select(vec!["v1", "v2", "a,b", "", "\u{e9}"])),
                1..6,
            ),
            padding in proptest::collection::vec(proptest::sample::select(vec!["", " ", "\t", " ,", ", ,"]), 6),
            rotate in 0usize..6,
            split in 1usize..6,
            name in proptest::sample::select(vec!["if-match", "if-none-match"]),
        ) {
            let view = owned.view();
            let rendered: Vec<String> = tags
                .iter()
                .map(|(weak, opaque)| format!("{}\"{opaque}\"", if *weak { "W/" } else { "" }))
                .collect();
            let eval = |lines: Vec<String>| {
                let fields: Vec<(&str, &[u8])> =
                    lines.iter().map(|line| (name, line.as_bytes())).collect();
                evaluate_preconditions(&method, &header_map(&fields), &view)
            };
            let plain = eval(vec![rendered.join(", ")]);

            let mut rotated = rendered.clone();
            rotated.rotate_left(rotate % rendered.len());
            let padded = rotated
                .iter()
                .enumerate()
                .map(|(index, tag)| format!("{}{tag}{}", padding[index % 6], padding[(index + 1) % 6]))
                .collect::<Vec<_>>()
                .join(",");
            prop_assert_eq!(eval(vec![padded]), plain);

            let split = split.min(rendered.len());
            let lines = vec![rendered[..split].join(","), rendered[split..].join(",")];
            prop_assert_eq!(eval(lines), plain);

            if name == "if-none-match" {
                let flipped: Vec<String> = tags
                    .iter()
                    .map(|(weak, opaque)| format!("{}\"{opaque}\"", if *weak { "" } else { "W/" }))
                    .collect();
                prop_assert_eq!(eval(vec![flipped.join(",")]), plain);
            }
        }

        /// The three HTTP-date formats of one instant agree, and the verdicts follow the
        /// second-precision comparisons of §13.1.3, §13.1.4 and §13.1.5.
        #[test]
        fn date_formats_agree_and_compare_by_second(
            date in 0u64..3_155_760_000,
            delta in -2i64..=2,
            far in 0u64..3_155_760_000,
            near in any::<bool>(),
        ) {
            let modified = if near { date.saturating_add_signed(delta) } else { far };
            let validators = Validators {
                last_modified: Some(at(modified)),
                ..strong()
            };
            for rendered in three_formats(date) {
                let bytes = rendered.as_bytes();
                prop_assert_eq!(parse_http_date(bytes), Some(i128::from(date)), "{}", rendered);
                let ims = get(&[("if-modified-since", bytes)], &validators);
                prop_assert_eq!(ims == NOT_MODIFIED, modified <= date, "{}", rendered);
                let ius = get(&[("if-unmodified-since", bytes)], &validators);
                prop_assert_eq!(ius == FAILED, modified > date, "{}", rendered);
                let range = get(&[("if-range", bytes)], &validators);
                prop_assert_eq!(range == PROCEED, modified == date, "{}", rendered);
            }
        }
    }
}
