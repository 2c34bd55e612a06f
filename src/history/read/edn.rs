//! A small EDN parser for Jepsen histories, and the EDN → JSON conversion of
//! operation values.
//!
//! Hand-written rather than built on an EDN crate because the history readers
//! need three things the crates did not give together: the byte position of
//! every top-level element (to report the line of each operation, also inside
//! one big `[...]` vector), a nesting limit (a recursive parser without one
//! overflows the stack on `[[[[...`, which aborts the process), and speed on
//! millions of small maps.
//!
//! Supported: `nil`, booleans, integers (`42`, `-7`, `42N`, beyond 64 bits
//! kept as text), floats (`1.5`, `1e3`, `1.5M`), ratios (`1/2`), strings with
//! the usual escapes, characters (`\a`, `\newline`, `\u00e9`), keywords,
//! symbols, lists, vectors, maps, sets, tagged values (`#inst "..."`, record
//! tags like `#jepsen.history.Op{...}`), `##Inf`/`##-Inf`/`##NaN`, `;`
//! comments, `#_` discards and commas as whitespace.

use serde_json::{Map, Number, Value};
use std::fmt;

/// How deeply collections and tags may nest. Jepsen values nest a handful of
/// levels; the limit only exists so hostile input cannot exhaust the stack
/// (here, when dropping the tree, or when printing the JSON later).
pub(crate) const MAX_DEPTH: usize = 128;

/// One parsed EDN value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Edn {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A number JSON can hold: a 64-bit integer or a finite float.
    Num(Number),
    /// A number JSON cannot hold exactly (an integer beyond 64 bits, an
    /// infinity, NaN): its EDN text.
    BigNum(String),
    /// A string.
    Str(String),
    /// A character literal.
    Char(char),
    /// A keyword, without its leading `:`.
    Keyword(String),
    /// A symbol other than `nil`, `true` and `false`.
    Symbol(String),
    /// `[...]`.
    Vector(Vec<Edn>),
    /// `(...)`.
    List(Vec<Edn>),
    /// `#{...}`.
    Set(Vec<Edn>),
    /// `{...}`, in source order.
    Map(Vec<(Edn, Edn)>),
    /// `#tag value`.
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The name of a keyword, string or symbol: what a name-like field holds.
    pub(crate) fn as_name(&self) -> Option<&str> {
        match self {
            Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => Some(s),
            _ => None,
        }
    }

    /// The value with any tags removed (`#jepsen.history.Op{...}` → `{...}`).
    pub(crate) fn untagged(self) -> Edn {
        let mut e = self;
        while let Edn::Tagged(_, inner) = e {
            e = *inner;
        }
        e
    }

    /// The elements of a vector or list.
    pub(crate) fn as_seq(&self) -> Option<&[Edn]> {
        match self {
            Edn::Vector(v) | Edn::List(v) => Some(v),
            _ => None,
        }
    }

    /// Converts to JSON: nil → null, keyword → its name without `:`, vector,
    /// list and set → array, map → object (keys stringified the same way;
    /// other keys become their JSON text), char → one-character string,
    /// tagged → the inner value, unrepresentable numbers → their EDN text.
    pub(crate) fn into_json(self) -> Value {
        match self {
            Edn::Nil => Value::Null,
            Edn::Bool(b) => Value::Bool(b),
            Edn::Num(n) => Value::Number(n),
            Edn::BigNum(s) | Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s),
            Edn::Char(c) => Value::String(c.to_string()),
            Edn::Vector(v) | Edn::List(v) | Edn::Set(v) => {
                Value::Array(v.into_iter().map(Edn::into_json).collect())
            }
            Edn::Map(kvs) => {
                let mut m = Map::with_capacity(kvs.len());
                for (k, v) in kvs {
                    m.insert(k.into_json_key(), v.into_json());
                }
                Value::Object(m)
            }
            Edn::Tagged(_, inner) => inner.into_json(),
        }
    }

    /// The JSON object key for a map key.
    fn into_json_key(self) -> String {
        match self.into_json() {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The value printed as EDN, cut to about `max` characters, for messages.
    pub(crate) fn brief(&self, max: usize) -> String {
        let s = self.to_string();
        if s.chars().count() <= max {
            return s;
        }
        let mut cut: String = s.chars().take(max).collect();
        cut.push_str("...");
        cut
    }
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str) -> fmt::Result {
            f.write_str(open)?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{x}")?;
            }
            f.write_str(close)
        }
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Num(n) => write!(f, "{n}"),
            Edn::BigNum(s) | Edn::Symbol(s) => f.write_str(s),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(s) => write!(f, ":{s}"),
            Edn::Vector(v) => seq(f, "[", v, "]"),
            Edn::List(v) => seq(f, "(", v, ")"),
            Edn::Set(v) => seq(f, "#{", v, "}"),
            Edn::Map(kvs) => {
                f.write_str("{")?;
                for (i, (k, v)) in kvs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Edn::Tagged(t, v) => write!(f, "#{t} {v}"),
        }
    }
}

/// A syntax error: where (byte offset into the parsed text) and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EdnError {
    /// Byte offset of the problem.
    pub(crate) pos: usize,
    /// What was wrong and what was expected.
    pub(crate) message: String,
}

type Result<T> = std::result::Result<T, EdnError>;

/// A cursor over EDN text.
pub(crate) struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Bytes that end a token (symbol, keyword, number, tag): whitespace, commas
/// and the characters Clojure's reader treats as terminating macros.
fn ends_token(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | 0x0c
            | b','
            | b'"'
            | b';'
            | b'@'
            | b'^'
            | b'`'
            | b'~'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'\\'
    )
}

impl<'a> Parser<'a> {
    /// A parser at the start of `src`.
    pub(crate) fn new(src: &'a str) -> Parser<'a> {
        Parser {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    /// The current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next byte, if any.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips one byte the caller has peeked at (an ASCII delimiter).
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// The text not yet parsed.
    pub(crate) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T> {
        Err(EdnError {
            pos,
            message: message.into(),
        })
    }

    /// Skips whitespace, commas and `;` comments.
    fn skip_plain_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0c => self.pos += 1,
                b';' => {
                    // A comment runs to the end of the line.
                    match self.bytes[self.pos..].iter().position(|&c| c == b'\n') {
                        Some(n) => self.pos += n + 1,
                        None => self.pos = self.bytes.len(),
                    }
                }
                _ => break,
            }
        }
    }

    /// Skips whitespace, comments and `#_` discarded forms.
    pub(crate) fn skip_ws(&mut self, depth: usize) -> Result<()> {
        loop {
            self.skip_plain_ws();
            if self.bytes[self.pos..].starts_with(b"#_") {
                self.pos += 2;
                self.parse_form(depth + 1)?;
            } else {
                return Ok(());
            }
        }
    }

    /// True when only whitespace and comments remain.
    pub(crate) fn at_end(&mut self) -> Result<bool> {
        self.skip_ws(0)?;
        Ok(self.pos >= self.bytes.len())
    }

    /// Reads a run of token bytes starting at the cursor.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if ends_token(b) {
                break;
            }
            self.pos += 1;
        }
        // Token boundaries are ASCII bytes or the ends of the text, so they
        // are always character boundaries.
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// Parses one form, skipping whitespace before it. `depth` is the nesting
    /// of the enclosing collections.
    pub(crate) fn parse_form(&mut self, depth: usize) -> Result<Edn> {
        if depth > MAX_DEPTH {
            return self.err(
                self.pos,
                format!("values nested more than {MAX_DEPTH} levels deep"),
            );
        }
        self.skip_ws(depth)?;
        let start = self.pos;
        let Some(b) = self.peek() else {
            return self.err(start, "unexpected end of input, expected a value");
        };
        match b {
            b'[' => {
                self.pos += 1;
                Ok(Edn::Vector(self.parse_seq(start, b']', "vector", depth)?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Edn::List(self.parse_seq(start, b')', "list", depth)?))
            }
            b'{' => {
                self.pos += 1;
                self.parse_map(start, depth)
            }
            b'"' => self.parse_string(),
            b'\\' => self.parse_char(),
            b':' => {
                self.pos += 1;
                let name = self.token();
                if name.is_empty() {
                    return self.err(start, "expected a keyword name after `:`");
                }
                Ok(Edn::Keyword(name.to_string()))
            }
            b'#' => self.parse_dispatch(depth),
            b')' | b']' | b'}' => self.err(
                start,
                format!("unexpected `{}`, expected a value", b as char),
            ),
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    let c = self.rest().chars().next().unwrap_or('?');
                    return self.err(
                        start,
                        format!("unexpected character `{c}`, expected a value"),
                    );
                }
                atom(tok).map_err(|message| EdnError {
                    pos: start,
                    message,
                })
            }
        }
    }

    /// Elements up to the closing delimiter `close`.
    fn parse_seq(
        &mut self,
        open_pos: usize,
        close: u8,
        what: &str,
        depth: usize,
    ) -> Result<Vec<Edn>> {
        let mut items = Vec::new();
        loop {
            self.skip_ws(depth + 1)?;
            match self.peek() {
                None => {
                    return self.err(
                        open_pos,
                        format!(
                            "unterminated {what}: expected `{}` to close it",
                            close as char
                        ),
                    )
                }
                Some(b) if b == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(b @ (b')' | b']' | b'}')) => {
                    return self.err(
                        self.pos,
                        format!(
                            "expected `{}` to close the {what}, found `{}`",
                            close as char, b as char
                        ),
                    )
                }
                Some(_) => items.push(self.parse_form(depth + 1)?),
            }
        }
    }

    fn parse_map(&mut self, open_pos: usize, depth: usize) -> Result<Edn> {
        let items = self.parse_seq(open_pos, b'}', "map", depth)?;
        if items.len() % 2 != 0 {
            return self.err(
                open_pos,
                "a map needs an even number of forms (a value for every key)",
            );
        }
        let mut kvs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            kvs.push((k, v));
        }
        Ok(Edn::Map(kvs))
    }

    /// `#{...}`, `##Inf`, `#tag value`, `#"regex"` (`#_` is handled as whitespace).
    fn parse_dispatch(&mut self, depth: usize) -> Result<Edn> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                Ok(Edn::Set(self.parse_seq(start, b'}', "set", depth)?))
            }
            Some(b'#') => {
                self.pos += 1;
                let tok = self.token();
                match tok {
                    "Inf" | "-Inf" | "NaN" => Ok(Edn::BigNum(format!("##{tok}"))),
                    _ => self.err(
                        start,
                        format!("expected ##Inf, ##-Inf or ##NaN, found ##{tok}"),
                    ),
                }
            }
            Some(b'"') => {
                // A regex literal: keep its text.
                match self.parse_string()? {
                    Edn::Str(s) => Ok(Edn::Str(s)),
                    _ => self.err(start, "expected a regex string"),
                }
            }
            _ => {
                let tag = self.token();
                if tag.is_empty() || tag.starts_with(':') {
                    return self.err(
                        start,
                        "expected a tag name after `#` (like #inst or #jepsen.history.Op)",
                    );
                }
                let inner = self.parse_form(depth + 1)?;
                Ok(Edn::Tagged(tag.to_string(), Box::new(inner)))
            }
        }
    }

    fn parse_string(&mut self) -> Result<Edn> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote or backslash in one go.
            let run = self.bytes[self.pos..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\');
            let Some(n) = run else {
                return self.err(start, "unterminated string: expected a closing `\"`");
            };
            out.push_str(self.src.get(self.pos..self.pos + n).unwrap_or(""));
            self.pos += n;
            if self.peek() == Some(b'"') {
                self.pos += 1;
                return Ok(Edn::Str(out));
            }
            // A backslash escape.
            let esc_pos = self.pos;
            self.pos += 1;
            let Some(c) = self.peek() else {
                return self.err(start, "unterminated string: expected a closing `\"`");
            };
            self.pos += 1;
            match c {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'/' => out.push('/'),
                b'u' => {
                    let hex = self
                        .bytes
                        .get(self.pos..self.pos + 4)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    let ch = hex
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32);
                    match ch {
                        Some(ch) => {
                            out.push(ch);
                            self.pos += 4;
                        }
                        None => {
                            return self
                                .err(esc_pos, "expected four hex digits of a character after \\u")
                        }
                    }
                }
                _ => {
                    let shown = self
                        .src
                        .get(esc_pos..)
                        .and_then(|s| s.chars().nth(1))
                        .unwrap_or('?');
                    return self.err(
                        esc_pos,
                        format!("unknown escape `\\{shown}` in string, expected one of \\\" \\\\ \\n \\t \\r \\b \\f \\uXXXX"),
                    );
                }
            }
        }
    }

    fn parse_char(&mut self) -> Result<Edn> {
        let start = self.pos;
        self.pos += 1;
        let Some(first) = self.rest().chars().next() else {
            return self.err(start, "expected a character after `\\`");
        };
        self.pos += first.len_utf8();
        // `\a` is one character, `\newline` a name: read the rest of a name.
        let more = if first.is_alphanumeric() {
            self.token()
        } else {
            ""
        };
        if more.is_empty() {
            return Ok(Edn::Char(first));
        }
        let name = self.src.get(start + 1..self.pos).unwrap_or("");
        let c = match name {
            "newline" => Some('\n'),
            "space" => Some(' '),
            "tab" => Some('\t'),
            "return" => Some('\r'),
            "formfeed" => Some('\u{c}'),
            "backspace" => Some('\u{8}'),
            _ => {
                if let Some(h) = name.strip_prefix('u').filter(|h| h.len() == 4) {
                    u32::from_str_radix(h, 16).ok().and_then(char::from_u32)
                } else if let Some(o) = name
                    .strip_prefix('o')
                    .filter(|o| !o.is_empty() && o.len() <= 3)
                {
                    u32::from_str_radix(o, 8)
                        .ok()
                        .filter(|&n| n <= 0o377)
                        .and_then(char::from_u32)
                } else {
                    None
                }
            }
        };
        match c {
            Some(c) => Ok(Edn::Char(c)),
            None => self.err(start, format!("unknown character name `\\{name}`")),
        }
    }
}

/// A token that is not a string, keyword, character or collection: a number
/// or a symbol.
fn atom(tok: &str) -> std::result::Result<Edn, String> {
    let b = tok.as_bytes();
    let numeric = match b {
        [d, ..] if d.is_ascii_digit() => true,
        [b'+' | b'-', d, ..] if d.is_ascii_digit() => true,
        _ => false,
    };
    if numeric {
        return number(tok).ok_or_else(|| format!("invalid number `{tok}`"));
    }
    Ok(match tok {
        "nil" => Edn::Nil,
        "true" => Edn::Bool(true),
        "false" => Edn::Bool(false),
        _ => Edn::Symbol(tok.to_string()),
    })
}

/// Parses an EDN number token.
fn number(tok: &str) -> Option<Edn> {
    if let Some(int) = tok.strip_suffix('N') {
        return integer(int);
    }
    if let Some(dec) = tok.strip_suffix('M') {
        return float(dec, tok);
    }
    if let Some((n, d)) = tok.split_once('/') {
        // A ratio such as 1/3: a float is the closest JSON has.
        let n: f64 = integer_digits(n)?.parse().ok()?;
        let d: f64 = integer_digits(d)?.parse().ok()?;
        if d == 0.0 {
            return None;
        }
        return Some(float_value(n / d, tok));
    }
    if tok.bytes().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return float(tok, tok);
    }
    integer(tok)
}

/// The token itself when it is an optionally signed run of decimal digits.
fn integer_digits(tok: &str) -> Option<&str> {
    let digits = tok.strip_prefix(['+', '-']).unwrap_or(tok);
    (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())).then_some(tok)
}

fn integer(tok: &str) -> Option<Edn> {
    let tok = integer_digits(tok)?;
    if let Ok(i) = tok.parse::<i64>() {
        return Some(Edn::Num(Number::from(i)));
    }
    if let Ok(u) = tok.parse::<u64>() {
        return Some(Edn::Num(Number::from(u)));
    }
    // Beyond 64 bits: keep the digits exactly rather than round.
    Some(Edn::BigNum(
        tok.strip_prefix('+').unwrap_or(tok).to_string(),
    ))
}

fn float(text: &str, whole: &str) -> Option<Edn> {
    // Rust also accepts "inf" and "nan"; EDN numbers are digits, a point,
    // an exponent and signs only.
    if !text
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let x: f64 = text.parse().ok()?;
    Some(float_value(x, whole))
}

fn float_value(x: f64, text: &str) -> Edn {
    match Number::from_f64(x) {
        Some(n) => Edn::Num(n),
        None => Edn::BigNum(text.to_string()),
    }
}

/// Parses a whole text holding exactly one form (tests and small callers).
#[cfg(test)]
pub(crate) fn parse_one(text: &str) -> Result<Edn> {
    let mut p = Parser::new(text);
    let v = p.parse_form(0)?;
    if !p.at_end()? {
        return Err(EdnError {
            pos: p.pos(),
            message: "expected end of input".into(),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(text: &str) -> Value {
        parse_one(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .into_json()
    }

    #[test]
    fn scalars() {
        assert_eq!(j("nil"), Value::Null);
        assert_eq!(j("true"), json!(true));
        assert_eq!(j("42"), json!(42));
        assert_eq!(j("-7"), json!(-7));
        assert_eq!(j("+7"), json!(7));
        assert_eq!(j("42N"), json!(42));
        assert_eq!(j("18446744073709551615"), json!(18446744073709551615u64));
        assert_eq!(
            j("123456789012345678901234567890N"),
            json!("123456789012345678901234567890")
        );
        assert_eq!(j("1.5"), json!(1.5));
        assert_eq!(j("1e3"), json!(1000.0));
        assert_eq!(j("2.5M"), json!(2.5));
        assert_eq!(j("1/2"), json!(0.5));
        assert_eq!(j("1e999"), json!("1e999"));
        assert_eq!(j("##Inf"), json!("##Inf"));
        assert_eq!(j(":timed-out"), json!("timed-out"));
        assert_eq!(j(":jepsen.history/op"), json!("jepsen.history/op"));
        assert_eq!(j("foo"), json!("foo"));
        assert_eq!(j(r#""a\"b\n\u00e9""#), json!("a\"b\né"));
        assert_eq!(j(r"\a"), json!("a"));
        assert_eq!(j(r"\newline"), json!("\n"));
        assert_eq!(j(r"\u0041"), json!("A"));
        assert_eq!(j(r"\("), json!("("));
        assert_eq!(j(r"\é"), json!("é"));
    }

    #[test]
    fn collections_tags_comments() {
        assert_eq!(j("[1 (2 3) #{4}]"), json!([1, [2, 3], [4]]));
        assert_eq!(
            j("{:a 1, \"b\" :c, 3 nil, [1 2] 4}"),
            json!({"a": 1, "b": "c", "3": null, "[1,2]": 4})
        );
        assert_eq!(j("#jepsen.history.Op{:f :read}"), json!({"f": "read"}));
        assert_eq!(j("#inst \"2020-01-01\""), json!("2020-01-01"));
        assert_eq!(j("[1 ; two\n #_ 2 3]"), json!([1, 3]));
        assert_eq!(j("[1 #_ #_ 2 3]"), json!([1]));
        assert_eq!(j("{:a #{}}"), json!({"a": []}));
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = parse_one("[1 2").unwrap_err();
        assert_eq!(e.pos, 0);
        assert!(e.message.contains("expected `]`"), "{}", e.message);
        let e = parse_one("[1 2)").unwrap_err();
        assert!(
            e.message
                .contains("expected `]` to close the vector, found `)`"),
            "{}",
            e.message
        );
        assert!(parse_one("{:a}")
            .unwrap_err()
            .message
            .contains("even number"));
        assert!(parse_one("\"abc")
            .unwrap_err()
            .message
            .contains("unterminated string"));
        assert!(parse_one("\"a\\qb\"")
            .unwrap_err()
            .message
            .contains("unknown escape"));
        assert!(parse_one("0x1F")
            .unwrap_err()
            .message
            .contains("invalid number `0x1F`"));
        assert!(parse_one("1.2.3")
            .unwrap_err()
            .message
            .contains("invalid number"));
        assert!(parse_one("1/0")
            .unwrap_err()
            .message
            .contains("invalid number"));
        assert!(parse_one(":").unwrap_err().message.contains("keyword name"));
        assert!(parse_one(r"\bogus")
            .unwrap_err()
            .message
            .contains("unknown character name"));
        assert!(parse_one("#").unwrap_err().message.contains("tag name"));
        assert!(parse_one("@x")
            .unwrap_err()
            .message
            .contains("unexpected character `@`"));
        assert!(parse_one("").unwrap_err().message.contains("end of input"));
        assert!(parse_one("1 2")
            .unwrap_err()
            .message
            .contains("expected end of input"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        let e = parse_one(&deep).unwrap_err();
        assert!(e.message.contains("nested more than"), "{}", e.message);
        let tags = "#a ".repeat(100_000);
        assert!(parse_one(&tags)
            .unwrap_err()
            .message
            .contains("nested more than"));
        let discards = "#_".repeat(100_000);
        assert!(parse_one(&discards).is_err());
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse_one(&ok).is_ok());
    }

    #[test]
    fn display_round_trips_for_messages() {
        let v = parse_one("{:type :okk, :value [1 \"a\" #{:x}]}").unwrap();
        assert_eq!(v.to_string(), "{:type :okk, :value [1 \"a\" #{:x}]}");
        assert_eq!(parse_one("[1 2 3 4 5 6]").unwrap().brief(5), "[1 2 ...");
    }
}
