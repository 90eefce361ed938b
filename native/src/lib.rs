//! coinstream's record path for posts in native code: stream bytes in, the warehouse row line out.
//!
//! `PostRows(terms)(records, processed_at)` gives `(keys, lines)`: for each record of a batch its natural
//! key and row line when the record is a post envelope in its usual shape, or `None` in both. On `None`
//! the Python path decides
//! (`coinstream/records.py` and `consumer/enrich.py`): a candle or a count, a valid but unusual shape
//! (an offset instead of `Z`, seven fraction digits), a text with characters whose word class or case
//! this module does not know, or a record to dead-letter with its reason. This code is sound, not
//! complete: a record it accepts is one the Python contract accepts, and its line is byte for byte
//! the one the Python path writes. `tests/unit/test_native.py` checks both against the Python path,
//! and the two character tables below against Python over every code point.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use serde::Deserialize;
use std::borrow::Cow;

/// Column widths of raw_posts (consumer/enrich.py): a row that would be cut goes the Python way.
const TEXT_BYTES: usize = 65535;
const HASHTAGS_BYTES: usize = 4096;
const CASHTAGS_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default = "schema_version")]
    v: i64,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    event_time: Cow<'a, str>,
    #[serde(borrow)]
    fetched_at: Cow<'a, str>,
    /// parsed as a post whatever the kind says: another kind's payload fails here (unknown fields), and
    /// that record goes the Python way as it would anyway
    #[serde(borrow)]
    payload: Post<'a>,
}

fn schema_version() -> i64 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Post<'a> {
    #[serde(default)]
    simulated: bool,
    #[serde(borrow)]
    post_id: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    #[serde(borrow, default)]
    author_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lang: Option<Cow<'a, str>>,
    #[serde(default)]
    is_retweet: bool,
    #[serde(default)]
    is_reply: bool,
    /// The author's own clock (Bluesky): its row takes the Python path, which writes it as the post's date.
    #[serde(default)]
    authored_at: Option<serde::de::IgnoredAny>,
}

/// A UTC instant as its calendar fields (ordered as a tuple: the comparison is the time order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Instant {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
}

const EARLIEST: Instant = Instant {
    year: 2009,
    month: 1,
    day: 3,
    hour: 0,
    minute: 0,
    second: 0,
    micro: 0,
};
const LATEST: Instant = Instant {
    year: 2100,
    month: 1,
    day: 1,
    hour: 0,
    minute: 0,
    second: 0,
    micro: 0,
};

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` inside the contract's range; any other spelling is left to Python.
fn parse_time(text: &str) -> Option<Instant> {
    let b = text.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if shape.iter().any(|&(at, sep)| b[at] != sep) {
        return None;
    }
    let micro = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=6).contains(&fraction.len()) => {
            digits(fraction)? * 10u32.pow(6 - fraction.len() as u32)
        }
        _ => return None,
    };
    let at = Instant {
        year: digits(&b[0..4])?,
        month: digits(&b[5..7])?,
        day: digits(&b[8..10])?,
        hour: digits(&b[11..13])?,
        minute: digits(&b[14..16])?,
        second: digits(&b[17..19])?,
        micro,
    };
    let valid = (1..=12).contains(&at.month)
        && at.day >= 1
        && at.day <= days_in_month(at.year, at.month)
        && at.hour < 24
        && at.minute < 60
        && at.second < 60;
    (valid && EARLIEST <= at && at <= LATEST).then_some(at)
}

/// The same instant in Korea Standard Time (UTC+9, no daylight saving).
fn kst(at: Instant) -> Instant {
    let mut out = at;
    out.hour += 9;
    if out.hour >= 24 {
        out.hour -= 24;
        out.day += 1;
        if out.day > days_in_month(out.year, out.month) {
            out.day = 1;
            out.month += 1;
            if out.month > 12 {
                out.month = 1;
                out.year += 1;
            }
        }
    }
    out
}

fn push_number(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut buffer = [b'0'; 6];
    let mut n = value;
    for slot in buffer[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buffer[..width]);
}

/// `"YYYY-MM-DD HH:MM:SS[.ffffff]"`, as `coinstream.timeutil.ts` (with micros) and `kst` (without) write it.
fn push_time(out: &mut Vec<u8>, at: Instant, with_micros: bool) {
    // each field with the character written before it
    let fields = [
        (b'"', at.year, 4),
        (b'-', at.month, 2),
        (b'-', at.day, 2),
        (b' ', at.hour, 2),
        (b':', at.minute, 2),
        (b':', at.second, 2),
        (b'.', at.micro, 6),
    ];
    for &(before, value, width) in &fields[..if with_micros { 7 } else { 6 }] {
        out.push(before);
        push_number(out, value, width);
    }
    out.push(b'"');
}

/// Per byte: 0 written as it is, else the letter after `\\` (`u` for `\\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = b'u';
        c += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// A JSON string as orjson writes it: `"` `\\` and control characters escaped, everything else as UTF-8.
fn push_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(c)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 15)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn push_list<S: AsRef<str>>(out: &mut Vec<u8>, items: &[S]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, item.as_ref());
    }
    out.push(b']');
}

fn push_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn push_optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => push_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Blocks whose characters this module classifies as Python's `\w` does (`str.isalnum()` or `_`); the
/// test compares every code point of them with Python. Elsewhere a character next to `#` or `$`, or
/// inside a tag, sends the record the Python way.
const KNOWN_WORD_BLOCKS: &[(u32, u32)] = &[
    (0x0080, 0x024F),   // Latin-1 Supplement, Latin Extended-A and -B
    (0x0370, 0x03FF),   // Greek and Coptic
    (0x0400, 0x04FF),   // Cyrillic
    (0x1E00, 0x1EFF),   // Latin Extended Additional (Vietnamese)
    (0x2000, 0x206F),   // General Punctuation
    (0x20A0, 0x20CF),   // Currency Symbols
    (0x2190, 0x21FF),   // Arrows
    (0x2300, 0x23FF),   // Miscellaneous Technical
    (0x25A0, 0x27BF),   // Geometric Shapes, Miscellaneous Symbols, Dingbats
    (0x3000, 0x30FF),   // CJK Symbols and Punctuation, Hiragana, Katakana
    (0x3130, 0x318F),   // Hangul Compatibility Jamo
    (0x4E00, 0x9FFF),   // CJK Unified Ideographs
    (0xAC00, 0xD7A3),   // Hangul Syllables
    (0xFE00, 0xFE0F),   // Variation Selectors
    (0xFF00, 0xFFEF),   // Halfwidth and Fullwidth Forms
    (0x1F000, 0x1F0FF), // Mahjong, Domino and Playing Cards
    (0x1F300, 0x1FAFF), // emoji and pictographs (not the enclosed letters before them: alphabetic in Rust only)
];

/// Python's `\w` for one character, or None where this module does not know it.
fn word(c: char) -> Option<bool> {
    if c.is_ascii() {
        return Some(c.is_ascii_alphanumeric() || c == '_');
    }
    let code = u32::from(c);
    KNOWN_WORD_BLOCKS
        .iter()
        .any(|&(low, high)| low <= code && code <= high)
        .then(|| c.is_alphanumeric())
}

/// True when lower-casing leaves `c` as it is (then Python's `str.lower` leaves it too: checked for every
/// code point); a text with any other character goes the Python way.
fn case_stable(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_uppercase();
    }
    if matches!(u32::from(c), 0x3040..=0x30FF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3) {
        return true; // kana, CJK ideographs, Hangul syllables: no case (the table test checks this too)
    }
    let mut lower = c.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

/// `(?<![\w#])#(\w+)` (sign `#`) or `(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,9})\b` (sign `$`), as
/// re.findall finds them; Err(()) where a character's word class is unknown.
fn find_tags(text: &str, sign: char) -> Result<Vec<&str>, ()> {
    let mut tags = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let before = previous;
        previous = Some(c);
        if c != sign {
            continue;
        }
        if let Some(p) = before {
            if p == sign || word(p).ok_or(())? {
                continue;
            }
        }
        let start = at + c.len_utf8();
        let mut end = start;
        let mut next: Option<char> = None;
        for (taken, (i, d)) in text[start..].char_indices().enumerate() {
            let fits = if sign == '#' {
                word(d).ok_or(())?
            } else {
                taken < 10 && d.is_ascii_alphanumeric() && (taken > 0 || d.is_ascii_alphabetic())
            };
            if !fits {
                next = Some(d);
                break;
            }
            end = start + i + d.len_utf8();
        }
        if end == start {
            continue;
        }
        if sign == '$' {
            // \b after the tag: every character taken is \w, so a shorter tag never ends on a boundary either
            if let Some(d) = next {
                if word(d).ok_or(())? {
                    continue;
                }
            }
        }
        tags.push(&text[start..end]);
        // the tag's characters are \w: none of them is a sign, and the one after it was looked at above
        while chars.peek().is_some_and(|&(i, _)| i < end) {
            previous = chars.next().map(|(_, d)| d);
        }
    }
    Ok(tags)
}

/// The distinct tags, cased and sorted as Python sorts them, if they surely fit their column. ASCII casing
/// is Python's here because `line` has already sent texts with other cased letters the Python way.
fn tag_list(text: &str, sign: char, max_bytes: usize) -> Result<Vec<String>, ()> {
    if !text.contains(sign) {
        return Ok(Vec::new());
    }
    let mut tags: Vec<String> = find_tags(text, sign)?
        .into_iter()
        .map(|tag| {
            if sign == '$' {
                tag.to_ascii_uppercase()
            } else {
                tag.to_ascii_lowercase()
            }
        })
        .collect();
    tags.sort_unstable(); // UTF-8 byte order is code point order, as Python sorts str
    tags.dedup();
    // consumer/enrich.py's fit_list: fits even if every character took JSON's longest escape
    let chars: usize = tags.iter().map(|tag| tag.chars().count()).sum();
    if 2 + 6 * chars + 3 * tags.len() > max_bytes {
        return Err(());
    }
    Ok(tags)
}

/// `(?<![a-z0-9])btc(?![a-z0-9])` in the lower-cased text.
fn btc_word(lowered: &str) -> bool {
    let b = lowered.as_bytes();
    let outside = |i: Option<&u8>| !i.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    lowered
        .match_indices("btc")
        .any(|(at, _)| outside(at.checked_sub(1).and_then(|i| b.get(i))) && outside(b.get(at + 3)))
}

fn chars_within(text: &str, low: usize, high: usize) -> bool {
    (text.len() <= high || text.chars().count() <= high)
        && (low == 0 || !text.is_empty() && text.chars().count() >= low)
}

#[pyclass(frozen)]
struct PostRows {
    terms: Vec<String>,
}

impl PostRows {
    /// Writes the row line of one record into `out` and gives its key, or None where the Python path decides.
    /// (`lowered`: a buffer for the lower-cased text, kept across records.)
    fn line<'a>(
        &self,
        data: &'a [u8],
        processed_at: &str,
        out: &mut Vec<u8>,
        lowered: &mut String,
    ) -> Option<Cow<'a, str>> {
        // one UTF-8 check of the whole record, then no check per string (serde_json's StrRead)
        let envelope: Envelope = serde_json::from_str(std::str::from_utf8(data).ok()?).ok()?;
        if envelope.kind != "post" || envelope.v != 1 {
            return None;
        }
        let post = &envelope.payload;
        if post.authored_at.is_some() {
            return None;
        }
        let fits = chars_within(&envelope.source, 1, 32)
            && chars_within(&envelope.key, 1, 256)
            && chars_within(&post.post_id, 1, 128)
            && post
                .author_id
                .as_deref()
                .is_none_or(|a| chars_within(a, 0, 128))
            && post.lang.as_deref().is_none_or(|l| chars_within(l, 0, 16));
        if !fits {
            return None;
        }
        let created = parse_time(&envelope.event_time)?;
        let fetched = parse_time(&envelope.fetched_at)?;
        let text: &str = &post.text;
        if text.len() > TEXT_BYTES || !(text.is_ascii() || text.chars().all(case_stable_or_ascii)) {
            return None;
        }
        let hashtags = tag_list(text, '#', HASHTAGS_BYTES).ok()?;
        let cashtags = tag_list(text, '$', CASHTAGS_BYTES).ok()?;
        lowered.clear();
        lowered.push_str(text);
        lowered.make_ascii_lowercase();
        let ascii = text.is_ascii();

        out.clear();
        out.extend_from_slice(b"{\"record_key\":");
        push_str(out, &envelope.key);
        out.extend_from_slice(b",\"simulated\":");
        push_bool(out, post.simulated);
        out.extend_from_slice(b",\"fetched_at\":");
        push_time(out, fetched, true);
        out.extend_from_slice(b",\"processed_at\":");
        push_str(out, processed_at);
        out.extend_from_slice(b",\"source\":");
        push_str(out, &envelope.source);
        out.extend_from_slice(b",\"post_id\":");
        push_str(out, &post.post_id);
        out.extend_from_slice(b",\"created_at\":");
        push_time(out, created, true);
        out.extend_from_slice(b",\"created_at_kst\":");
        push_time(out, kst(created), false);
        out.extend_from_slice(b",\"minute_utc\":");
        push_time(
            out,
            Instant {
                second: 0,
                micro: 0,
                ..created
            },
            true,
        );
        out.extend_from_slice(b",\"author_id\":");
        push_optional(out, post.author_id.as_deref());
        out.extend_from_slice(b",\"lang\":");
        push_optional(out, post.lang.as_deref().filter(|l| !l.is_empty()));
        out.extend_from_slice(b",\"text\":");
        push_str(out, text);
        out.extend_from_slice(b",\"hashtags\":");
        push_list(out, &hashtags);
        out.extend_from_slice(b",\"cashtags\":");
        push_list(out, &cashtags);
        out.extend_from_slice(b",\"matched_terms\":[");
        let mut first = true;
        for term in &self.terms {
            // a term beyond ASCII is in no ASCII text
            if (!ascii || term.is_ascii())
                && lowered.contains(term.as_str())
                && (term != "btc" || btc_word(lowered))
            {
                if !first {
                    out.push(b',');
                }
                first = false;
                push_str(out, term);
            }
        }
        out.push(b']');
        out.extend_from_slice(b",\"is_retweet\":");
        push_bool(out, post.is_retweet);
        out.extend_from_slice(b",\"is_reply\":");
        push_bool(out, post.is_reply);
        out.extend_from_slice(b",\"truncated\":false}\n");
        Some(envelope.key)
    }
}

fn case_stable_or_ascii(c: char) -> bool {
    c.is_ascii() || case_stable(c)
}

#[pymethods]
impl PostRows {
    /// `terms`: the watched terms, lower-case, in the order `matched_terms` lists them.
    #[new]
    fn new(terms: Vec<String>) -> Self {
        PostRows { terms }
    }

    /// `(keys, lines)`: for each record its key and row line, or None in both where the Python path decides
    /// (two lists rather than a tuple per record: tuples are tracked by Python's garbage collector).
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        records: Vec<Bound<'py, PyBytes>>,
        processed_at: &str,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let keys = PyList::empty(py);
        let lines = PyList::empty(py);
        let mut line = Vec::with_capacity(4096);
        let mut lowered = String::with_capacity(1024);
        for record in &records {
            match self.line(record.as_bytes(), processed_at, &mut line, &mut lowered) {
                Some(key) => {
                    keys.append(PyString::new(py, &key))?;
                    lines.append(PyBytes::new(py, &line))?;
                }
                None => {
                    keys.append(py.None())?;
                    lines.append(py.None())?;
                }
            }
        }
        Ok((keys, lines))
    }
}

/// Per code point, this module's `\w`: 0 no, 1 yes, 2 not known (for the test against Python).
#[pyfunction]
fn word_table(py: Python<'_>) -> Bound<'_, PyBytes> {
    let table: Vec<u8> = (0..0x110000u32)
        .map(|code| match char::from_u32(code).map(word) {
            Some(Some(false)) => 0,
            Some(Some(true)) => 1,
            _ => 2,
        })
        .collect();
    PyBytes::new(py, &table)
}

/// Per code point, 1 where this module lower-cases the character as itself (for the test against Python).
#[pyfunction]
fn case_stable_table(py: Python<'_>) -> Bound<'_, PyBytes> {
    let table: Vec<u8> = (0..0x110000u32)
        .map(|code| u8::from(char::from_u32(code).is_some_and(case_stable)))
        .collect();
    PyBytes::new(py, &table)
}

#[pymodule]
fn coinstream_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PostRows>()?;
    m.add_function(wrap_pyfunction!(word_table, m)?)?;
    m.add_function(wrap_pyfunction!(case_stable_table, m)?)?;
    Ok(())
}
