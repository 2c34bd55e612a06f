//! Reading a history file as a stream of operations, for checkers that
//! keep only a compact form of each (the transactional checker at a
//! million transactions and more): the file is read in blocks, each
//! operation is handed out as it is parsed, and nothing of it is kept.
//!
//! The stream is an accelerator, not a second reader: it recognises the
//! common shapes of native JSON Lines and Jepsen EDN (one op map per line,
//! or one vector of them) and hands out each operation's header (process,
//! type, function, time) parsed, and its `:value` as raw text for the
//! caller to decode; a transaction value of the usual shape comes decoded
//! into integers as well ([`IntTxn`]), by the same scan that finds the
//! operation's end, so that its text is read once. An operation it does not recognise at a glance
//! (escapes in strings, unusual numbers, tags, duplicate keys, ...) is
//! parsed by the ordinary reader's own code for one operation, so it means
//! what it always meant. Whenever the whole-file readers would decide
//! something from the whole file (a bad line and its message, EDN tuples
//! of an `independent` test, operations without `:process`, a console
//! log), the stream gives up with [`Fallback`] and the caller reads the
//! file with [`read_path`](super::read_path): the outcome is the same by
//! construction, only slower.

use super::edn::{Parser, MAX_DEPTH};
use super::{jepsen_edn, Format};
use crate::history::{Op, OpType, Process};
use serde_json::Value;
use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

/// The stream cannot read this file exactly as the whole-file readers do:
/// read it with [`read_path`](super::read_path) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback;

/// How many bytes are read at a time.
const BLOCK: usize = 8 << 20;

/// The most text the ordinary parser is given to find the end of one
/// unusual operation before the stream gives up on the file.
const SLOW_MAX: usize = 64 << 20;

/// Serde's recursion limit; deeper JSON is left to serde (and its error).
const JSON_DEPTH: usize = 100;

/// An operation's value as it appears in the file.
#[derive(Debug)]
pub enum RawValue<'a> {
    /// No value (or JSON `null` / EDN `nil` given explicitly: the same).
    Absent,
    /// JSON text of the value.
    Json(&'a str),
    /// EDN text of the value, at this nesting depth in the file.
    Edn(&'a str, usize),
    /// Parsed by the ordinary reader (an operation of unusual shape).
    Parsed(Value),
}

impl RawValue<'_> {
    /// True for no value, `null` or `nil`.
    pub fn is_null(&self) -> bool {
        matches!(self, RawValue::Absent | RawValue::Parsed(Value::Null))
    }

    /// The value as the whole-file reader gives it; `Err` when the text is
    /// not a value that reader accepts (the caller then falls back).
    pub fn to_value(&self) -> Result<Value, Fallback> {
        match self {
            RawValue::Absent => Ok(Value::Null),
            RawValue::Json(t) => serde_json::from_str(t).map_err(|_| Fallback),
            RawValue::Edn(t, depth) => {
                let mut p = Parser::new(t);
                let v = p.parse_form(*depth).map_err(|_| Fallback)?;
                Ok(v.into_json())
            }
            RawValue::Parsed(v) => Ok(v.clone()),
        }
    }
}

/// One operation of the stream.
#[derive(Debug)]
pub struct RawOp<'a> {
    /// Its position among the history's events, from 0.
    pub index: usize,
    /// The line it begins on, from 1.
    pub line: usize,
    /// Who performed it.
    pub process: Process,
    /// Invocation or completion.
    pub kind: OpType,
    /// The function.
    pub f: Cow<'a, str>,
    /// Nanoseconds, when given.
    pub time: Option<u64>,
    /// The value.
    pub value: RawValue<'a>,
    /// The value already decoded, when it is a transaction of the usual
    /// shape (see [`IntTxn`]); its text is in `value` all the same.
    pub ints: Option<&'a IntTxn>,
    /// The operation's whole text, and whether it is EDN (at what depth).
    text: &'a str,
    edn: Option<usize>,
}

impl RawOp<'_> {
    /// The whole operation as the ordinary reader reads it (for the few
    /// events a report shows in full).
    pub fn to_op(&self) -> Result<Op, Fallback> {
        let mut op = match self.edn {
            None => json_line(self.text)?,
            Some(depth) => {
                let mut p = Parser::new(self.text);
                edn_form(p.parse_form(depth).map_err(|_| Fallback)?)?
            }
        };
        op.index = self.index as u64;
        Ok(op)
    }
}

/// A transaction value of the usual shape (`[[append 1 2] [r 3 [1 2]]]`
/// in EDN or JSON: micro-operations `append`, `r` or `w`, integer keys,
/// and as values integers, `nil` / `null` or lists of integers), decoded
/// while the operation is scanned, so that its text is read once. The
/// buffers are reused from one operation to the next. Anything else in a
/// value is left undecoded (the text is still handed out): the caller
/// decodes it from JSON.
#[derive(Debug, Default)]
pub struct IntTxn {
    /// The micro-operations, in order.
    pub mops: Vec<IntMop>,
    /// The elements of every list, each list a range of it.
    pub elems: Vec<i64>,
}

impl IntTxn {
    fn clear(&mut self) {
        self.mops.clear();
        self.elems.clear();
    }
}

/// One micro-operation of an [`IntTxn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntMop {
    /// Its function.
    pub f: MopName,
    /// Its key.
    pub key: i64,
    /// Its value.
    pub value: IntValue,
}

/// The function of an [`IntMop`] (written `append` / `:append` /
/// `":append"` and so on in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MopName {
    /// `append`.
    Append,
    /// `r`.
    Read,
    /// `w`.
    Write,
}

/// The value of an [`IntMop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntValue {
    /// `nil` / `null`.
    Nil,
    /// An integer.
    Int(i64),
    /// A list of integers: a range of [`IntTxn::elems`] (start, length).
    List(u32, u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Jsonl,
    /// EDN; `close` is the byte closing the one collection holding every
    /// op, once its opening byte has been read.
    Edn {
        close: Option<u8>,
        done: bool,
    },
}

/// What one attempt at parsing an operation at the cursor gave.
enum Parsed {
    /// An operation, and the offset just past it.
    Op(Header, usize),
    /// The block ended inside it: read more and try again.
    Incomplete,
    /// A shape the fast path does not take: use the ordinary reader's code
    /// for this one operation.
    Slow,
}

/// An operation header from the fast path.
struct Header {
    process: Option<Process>,
    kind: Option<OpType>,
    /// Where the function's name is.
    f: Option<(usize, usize)>,
    time: Option<u64>,
    value: Option<(usize, usize)>,
    /// The value was decoded into the stream's [`IntTxn`].
    ints: bool,
    has_key: bool,
}

/// A history file read operation by operation. See the module comment.
pub struct OpStream {
    file: std::fs::File,
    buf: Vec<u8>,
    /// Bytes before `pos` are consumed.
    pos: usize,
    /// Bytes before `valid` are valid UTF-8 (ending on a char boundary).
    valid: usize,
    /// Bytes before `filled` hold file data.
    filled: usize,
    eof: bool,
    /// The line at `pos`.
    line: usize,
    syntax: Syntax,
    /// Events handed out.
    events: usize,
    /// Detected EDN (not named) must be checked for `independent` tuples
    /// unless some op settles it: one with a `:key`, or an invocation
    /// whose value is not a pair.
    tuples_open: bool,
    /// Bytes read from the file.
    bytes: u64,
    /// The value of the operation last handed out, when decoded.
    ints: IntTxn,
}

impl OpStream {
    /// Opens `path` for streaming in `format` (detected when `None`, as
    /// [`detect`](super::detect) does).
    pub fn open(path: &Path, format: Option<Format>) -> Result<OpStream, Fallback> {
        let file = std::fs::File::open(path).map_err(|_| Fallback)?;
        let mut s = OpStream {
            file,
            buf: vec![0; BLOCK],
            pos: 0,
            valid: 0,
            filled: 0,
            eof: false,
            line: 1,
            syntax: Syntax::Jsonl,
            events: 0,
            tuples_open: false,
            bytes: 0,
            ints: IntTxn::default(),
        };
        s.refill()?;
        if s.buf[..s.filled].starts_with("\u{feff}".as_bytes()) {
            s.pos = 3;
        }
        s.syntax = match format {
            Some(Format::Jsonl) => Syntax::Jsonl,
            Some(Format::Edn) => Syntax::Edn {
                close: None,
                done: false,
            },
            Some(_) => return Err(Fallback),
            None => {
                let f = s.detect()?;
                if f == Syntax::Jsonl {
                    f
                } else {
                    s.tuples_open = true;
                    f
                }
            }
        };
        Ok(s)
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The format of the first line that is not blank, by the rules of
    /// [`detect`](super::detect); only JSON Lines and EDN stream.
    fn detect(&mut self) -> Result<Syntax, Fallback> {
        loop {
            let text = &self.buf[self.pos..self.valid];
            let start = text.iter().position(|b| !b.is_ascii_whitespace());
            let line_end = start.and_then(|s| text[s..].iter().position(|&b| b == b'\n'));
            if let Some(s) = start {
                if line_end.is_some() || self.eof {
                    let first = &text[s..];
                    let first = &first[..line_end.unwrap_or(first.len())];
                    if first.windows(11).any(|w| w == b"jepsen.util") && first[0] != b'{' {
                        return Err(Fallback);
                    }
                    return match first[0] {
                        b'{' => {
                            let rest = first[1..].iter().find(|b| !b.is_ascii_whitespace());
                            Ok(match rest {
                                Some(b'"') | Some(b'}') => Syntax::Jsonl,
                                _ => Syntax::Edn {
                                    close: None,
                                    done: false,
                                },
                            })
                        }
                        b'[' | b'(' | b'#' | b';' => Ok(Syntax::Edn {
                            close: None,
                            done: false,
                        }),
                        _ => Err(Fallback),
                    };
                }
            }
            if self.eof {
                // Blank: an empty history, in every format.
                return Ok(Syntax::Jsonl);
            }
            if self.pos > 0 || self.filled == self.buf.len() {
                // The first line is longer than a block: not worth streaming.
                return Err(Fallback);
            }
            self.refill()?;
        }
    }

    /// Reads more of the file, keeping the unconsumed bytes.
    fn refill(&mut self) -> Result<(), Fallback> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.valid -= self.pos;
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            // One operation larger than the buffer.
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        let n = self
            .file
            .read(&mut self.buf[self.filled..])
            .map_err(|_| Fallback)?;
        if n == 0 {
            self.eof = true;
        }
        self.filled += n;
        self.bytes += n as u64;
        match std::str::from_utf8(&self.buf[self.valid..self.filled]) {
            Ok(_) => self.valid = self.filled,
            // A character cut by the block's end: complete next time.
            Err(e) if e.error_len().is_none() && !self.eof => self.valid += e.valid_up_to(),
            Err(_) => return Err(Fallback),
        }
        Ok(())
    }

    fn text(&self) -> &str {
        // SAFETY: `buf[..valid]` was checked by `str::from_utf8` in
        // `refill` (and moved as a whole since), and `valid` is always a
        // character boundary (`valid_up_to` or the end of the data).
        unsafe { std::str::from_utf8_unchecked(&self.buf[..self.valid]) }
    }

    /// Counts lines from `pos` to `to` and moves there.
    fn advance(&mut self, to: usize) {
        self.line += self.buf[self.pos..to]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = to;
    }

    /// The next operation, `None` at the end of the history.
    pub fn next_op(&mut self) -> Result<Option<RawOp<'_>>, Fallback> {
        loop {
            // Whitespace (and, in EDN, commas and comments) between ops.
            let edn = matches!(self.syntax, Syntax::Edn { .. });
            let mut at = self.pos;
            loop {
                match self.buf[at..self.valid].first() {
                    Some(b' ' | b'\t' | b'\n' | b'\r') => at += 1,
                    Some(b',' | 0x0c) if edn => at += 1,
                    Some(b';') if edn => {
                        match self.buf[at..self.valid].iter().position(|&b| b == b'\n') {
                            Some(n) => at += n + 1,
                            None if self.eof => at = self.valid,
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
            self.advance(at);
            if self.pos == self.valid {
                if self.eof {
                    return match self.syntax {
                        // An unclosed history vector.
                        Syntax::Edn {
                            close: Some(_),
                            done: false,
                        } => Err(Fallback),
                        _ if self.tuples_open => Err(Fallback),
                        _ => Ok(None),
                    };
                }
                self.refill()?;
                continue;
            }
            let b = self.buf[self.pos];
            if let Syntax::Edn { close, done } = &mut self.syntax {
                if *done {
                    // Anything after the history's closing bracket.
                    return Err(Fallback);
                }
                match (*close, b) {
                    (None, b'[' | b'(') if self.events == 0 => {
                        *close = Some(if b == b'[' { b']' } else { b')' });
                        self.pos += 1;
                        continue;
                    }
                    (Some(c), _) if b == c => {
                        *done = true;
                        self.pos += 1;
                        continue;
                    }
                    _ => {}
                }
                if b == b'#' && self.buf.get(self.pos + 1) == Some(&b'_') {
                    return Err(Fallback);
                }
            }
            let depth = match self.syntax {
                Syntax::Edn { close: Some(_), .. } => 1,
                _ => 0,
            };
            // The scratch is taken out while the scanner borrows the buffer.
            let mut ints = std::mem::take(&mut self.ints);
            ints.clear();
            let parsed = match self.syntax {
                Syntax::Jsonl => Scan::new(self, self.pos, &mut ints).json_op(),
                Syntax::Edn { .. } => Scan::new(self, self.pos, &mut ints).edn_op(depth),
            };
            self.ints = ints;
            let (h, end) = match parsed {
                Parsed::Incomplete if !self.eof => {
                    self.refill()?;
                    continue;
                }
                Parsed::Incomplete => return Err(Fallback),
                Parsed::Slow => return self.slow(depth),
                Parsed::Op(h, end) => (h, end),
            };
            // Elle's EDN histories may leave `:f` out: then `txn`.
            let f = match (h.f, edn) {
                (Some(f), _) => Some(f),
                (None, true) => None,
                (None, false) => return self.slow(depth),
            };
            let (Some(process), Some(kind)) = (h.process, h.kind) else {
                // A missing field: the ordinary reader says which (or, for
                // an EDN op without `:process`, numbers the processes).
                return self.slow(depth);
            };
            if h.has_key {
                self.tuples_open = false;
            }
            if self.tuples_open && kind == OpType::Invoke && process != Process::Nemesis {
                let pair = if h.ints {
                    self.ints.mops.len() == 2
                } else {
                    matches!(
                        self.raw_value(h.value, depth).to_value()?,
                        Value::Array(xs) if xs.len() == 2
                    )
                };
                if !pair {
                    self.tuples_open = false;
                }
            }
            let line = self.line;
            let index = self.events;
            let start = self.pos;
            self.advance(end);
            self.events += 1;
            let text = self.text();
            return Ok(Some(RawOp {
                index,
                line,
                process,
                kind,
                f: Cow::Borrowed(f.map_or("txn", |(a, z)| &text[a..z])),
                time: h.time,
                value: self.raw_value(h.value, depth),
                ints: h.ints.then_some(&self.ints),
                text: &text[start..end],
                edn: edn.then_some(depth),
            }));
        }
    }

    /// The raw value at `span` of the buffer.
    fn raw_value(&self, span: Option<(usize, usize)>, depth: usize) -> RawValue<'_> {
        let text = self.text();
        match (span, self.syntax) {
            (None, _) => RawValue::Absent,
            (Some((a, z)), Syntax::Jsonl) => RawValue::Json(&text[a..z]),
            (Some((a, z)), Syntax::Edn { .. }) => RawValue::Edn(&text[a..z], depth + 1),
        }
    }

    /// The operation at the cursor, parsed by the ordinary reader's code.
    fn slow(&mut self, depth: usize) -> Result<Option<RawOp<'_>>, Fallback> {
        loop {
            let text = &self.text()[self.pos..];
            let parsed = match self.syntax {
                Syntax::Jsonl => match text.find('\n') {
                    Some(n) => Some((json_line(&text[..n]), n)),
                    None if self.eof => Some((json_line(text), text.len())),
                    None => None,
                },
                Syntax::Edn { .. } => {
                    let mut p = Parser::new(text);
                    match p.parse_form(depth) {
                        Ok(form) => Some((edn_form(form), p.pos())),
                        // Perhaps cut by the block's end: read on, but not
                        // without bound for what is surely an error.
                        Err(_) if self.eof || text.len() > SLOW_MAX => return Err(Fallback),
                        Err(_) => None,
                    }
                }
            };
            let Some((op, len)) = parsed else {
                if self.eof {
                    return Err(Fallback);
                }
                self.refill()?;
                continue;
            };
            let op = op?;
            let line = self.line;
            let start = self.pos;
            let to = self.pos + len;
            self.advance(to);
            let index = self.events;
            self.events += 1;
            if op.key.is_some() {
                self.tuples_open = false;
            }
            if self.tuples_open
                && op.kind == OpType::Invoke
                && op.is_client()
                && !matches!(&op.value, Value::Array(xs) if xs.len() == 2)
            {
                self.tuples_open = false;
            }
            return Ok(Some(RawOp {
                index,
                line,
                process: op.process,
                kind: op.kind,
                f: Cow::Owned(op.f),
                time: op.time,
                value: RawValue::Parsed(op.value),
                ints: None,
                text: &self.text()[start..to],
                edn: matches!(self.syntax, Syntax::Edn { .. }).then_some(depth),
            }));
        }
    }
}

/// One JSON Lines line, as the native reader reads it.
fn json_line(line: &str) -> Result<Op, Fallback> {
    serde_json::from_str::<Op>(line).map_err(|_| Fallback)
}

/// One EDN op form, as the EDN reader reads it (without `independent`
/// tuples, and refusing an op without `:process`, which needs the whole
/// history to number).
fn edn_form(form: super::edn::Edn) -> Result<Op, Fallback> {
    let mut keys = rustc_hash::FxHashMap::default();
    let (op, anonymous) = jepsen_edn::op_from_edn(form, false, &mut keys).map_err(|_| Fallback)?;
    if anonymous {
        return Err(Fallback);
    }
    Ok(op)
}

/// A cursor over the stream's valid bytes for the fast path.
struct Scan<'a> {
    b: &'a [u8],
    text: &'a str,
    i: usize,
    eof: bool,
    /// Where a transaction value of the usual shape is decoded.
    ints: &'a mut IntTxn,
}

/// Why the fast path stopped: ran out of bytes, or met something it
/// leaves to the ordinary reader.
enum Stop {
    Incomplete,
    Slow,
}

type R<T> = Result<T, Stop>;

impl<'a> Scan<'a> {
    fn new(s: &'a OpStream, at: usize, ints: &'a mut IntTxn) -> Scan<'a> {
        let text = s.text();
        Scan {
            b: text.as_bytes(),
            text,
            i: at,
            eof: s.eof,
            ints,
        }
    }

    fn out(&self) -> Stop {
        if self.eof {
            Stop::Slow
        } else {
            Stop::Incomplete
        }
    }

    #[inline]
    fn peek(&self) -> R<u8> {
        self.b.get(self.i).copied().ok_or_else(|| self.out())
    }

    fn finish(r: R<(Header, usize)>) -> Parsed {
        match r {
            Ok((h, end)) => Parsed::Op(h, end),
            Err(Stop::Incomplete) => Parsed::Incomplete,
            Err(Stop::Slow) => Parsed::Slow,
        }
    }

    // ---- JSON ----

    fn json_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Stop::Slow)
        }
    }

    /// A JSON string without escapes or control characters: its contents.
    fn json_str(&mut self) -> R<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Ok(&self.text[start..self.i - 1]);
                }
                b'\\' => return Err(Stop::Slow),
                c if c < 0x20 => return Err(Stop::Slow),
                _ => self.i += 1,
            }
        }
    }

    /// A non-negative JSON integer that fits in a u64.
    fn json_u64(&mut self) -> R<u64> {
        let start = self.i;
        while self.peek()?.is_ascii_digit() {
            self.i += 1;
        }
        let digits = &self.text[start..self.i];
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return Err(Stop::Slow);
        }
        if matches!(self.peek()?, b'.' | b'e' | b'E') {
            return Err(Stop::Slow);
        }
        digits.parse().map_err(|_| Stop::Slow)
    }

    fn json_literal(&mut self, word: &[u8]) -> R<()> {
        for &c in word {
            self.expect(c)?;
        }
        Ok(())
    }

    /// Skips one JSON value strictly (as serde_json would accept it).
    fn json_skip(&mut self, depth: usize) -> R<()> {
        if depth > JSON_DEPTH {
            return Err(Stop::Slow);
        }
        match self.peek()? {
            b'"' => self.json_str().map(drop),
            b't' => self.json_literal(b"true"),
            b'f' => self.json_literal(b"false"),
            b'n' => self.json_literal(b"null"),
            b'-' | b'0'..=b'9' => self.json_number(),
            b'[' => {
                self.i += 1;
                self.json_ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.json_skip(depth + 1)?;
                    self.json_ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            self.json_ws();
                        }
                        b']' => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(Stop::Slow),
                    }
                }
            }
            b'{' => {
                self.i += 1;
                self.json_ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.json_str()?;
                    self.json_ws();
                    self.expect(b':')?;
                    self.json_ws();
                    self.json_skip(depth + 1)?;
                    self.json_ws();
                    match self.peek()? {
                        b',' => {
                            self.i += 1;
                            self.json_ws();
                        }
                        b'}' => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(Stop::Slow),
                    }
                }
            }
            _ => Err(Stop::Slow),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn json_number(&mut self) -> R<()> {
        if self.peek()? == b'-' {
            self.i += 1;
        }
        let digits = |s: &mut Scan<'a>| -> R<usize> {
            let start = s.i;
            while s.peek()?.is_ascii_digit() {
                s.i += 1;
            }
            Ok(s.i - start)
        };
        let first = self.peek()?;
        let n = digits(self)?;
        if n == 0 || (first == b'0' && n > 1) {
            return Err(Stop::Slow);
        }
        if self.peek()? == b'.' {
            self.i += 1;
            if digits(self)? == 0 {
                return Err(Stop::Slow);
            }
        }
        if matches!(self.peek()?, b'e' | b'E') {
            self.i += 1;
            if matches!(self.peek()?, b'+' | b'-') {
                self.i += 1;
            }
            if digits(self)? == 0 {
                return Err(Stop::Slow);
            }
        }
        Ok(())
    }

    fn json_op(mut self) -> Parsed {
        let r = self.json_op_inner();
        Scan::finish(r)
    }

    fn json_op_inner(&mut self) -> R<(Header, usize)> {
        let mut h = Header {
            process: None,
            kind: None,
            f: None,
            time: None,
            value: None,
            ints: false,
            has_key: false,
        };
        // Fields seen, to leave duplicates (an error) to serde.
        let mut seen = 0u16;
        self.expect(b'{')?;
        self.json_ws();
        if self.peek()? == b'}' {
            return Err(Stop::Slow);
        }
        loop {
            let name = self.json_str()?;
            self.json_ws();
            self.expect(b':')?;
            self.json_ws();
            let bit = match name {
                "index" => {
                    self.json_u64()?;
                    0
                }
                "time" => {
                    if self.peek()? == b'n' {
                        self.json_literal(b"null")?;
                    } else {
                        h.time = Some(self.json_u64()?);
                    }
                    1
                }
                "process" => {
                    h.process = Some(if self.peek()? == b'"' {
                        match self.json_str()? {
                            "nemesis" | ":nemesis" => Process::Nemesis,
                            _ => return Err(Stop::Slow),
                        }
                    } else {
                        Process::Client(self.json_u64()?)
                    });
                    2
                }
                "type" => {
                    h.kind = Some(match self.json_str()? {
                        "invoke" => OpType::Invoke,
                        "ok" => OpType::Ok,
                        "fail" => OpType::Fail,
                        "info" => OpType::Info,
                        _ => return Err(Stop::Slow),
                    });
                    3
                }
                "f" => {
                    let start = self.i + 1;
                    self.json_str()?;
                    h.f = Some((start, self.i - 1));
                    4
                }
                "value" => {
                    let start = self.i;
                    h.ints = self.txn_value(false)?;
                    if !h.ints {
                        self.json_skip(1)?;
                    }
                    if &self.b[start..self.i] != b"null" {
                        h.value = Some((start, self.i));
                    }
                    5
                }
                "key" => {
                    let start = self.i;
                    self.json_skip(1)?;
                    h.has_key = &self.b[start..self.i] != b"null";
                    6
                }
                "node" => {
                    if self.peek()? == b'n' {
                        self.json_literal(b"null")?;
                    } else {
                        self.json_str()?;
                    }
                    7
                }
                "error" => {
                    self.json_skip(1)?;
                    8
                }
                _ => return Err(Stop::Slow),
            };
            if seen & (1 << bit) != 0 {
                return Err(Stop::Slow);
            }
            seen |= 1 << bit;
            self.json_ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.json_ws();
                }
                b'}' => {
                    self.i += 1;
                    break;
                }
                _ => return Err(Stop::Slow),
            }
        }
        // The rest of the line must be blank.
        self.json_ws();
        match self.b.get(self.i) {
            Some(b'\n') => {}
            None if self.eof => {}
            None => return Err(Stop::Incomplete),
            Some(_) => return Err(Stop::Slow),
        }
        Ok((h, self.i))
    }

    // ---- Transaction values, EDN or JSON ----

    /// Decodes a transaction value of the usual shape at the cursor into
    /// `ints` (see [`IntTxn`]): true when it was one, and the cursor is
    /// past it. False for any other value, with the cursor where it was
    /// and `ints` empty: the value is then skipped as any value is. Every
    /// value taken here is one the skipping would take, ending at the same
    /// byte.
    fn txn_value(&mut self, edn: bool) -> R<bool> {
        let start = self.i;
        match self.txn_value_inner(edn) {
            Ok(()) => Ok(true),
            Err(Stop::Slow) => {
                self.i = start;
                self.ints.clear();
                Ok(false)
            }
            Err(Stop::Incomplete) => Err(Stop::Incomplete),
        }
    }

    fn txn_value_inner(&mut self, edn: bool) -> R<()> {
        let close = match self.peek()? {
            b'[' => b']',
            b'(' if edn => b')',
            _ => return Err(Stop::Slow),
        };
        self.i += 1;
        self.value_ws(edn);
        if self.peek()? == close {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.txn_mop(edn)?;
            if !self.value_sep(close, edn)? {
                return Ok(());
            }
        }
    }

    /// Whitespace inside a value: in EDN also commas; in JSON not the end
    /// of the line.
    #[inline]
    fn value_ws(&mut self, edn: bool) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b' ' | b'\t' | b'\r' => {}
                b'\n' | b',' if edn => {}
                _ => return,
            }
            self.i += 1;
        }
    }

    /// A separator between elements (whitespace in EDN, a comma in JSON):
    /// false at the closing bracket, which is consumed.
    #[inline]
    fn value_sep(&mut self, close: u8, edn: bool) -> R<bool> {
        self.value_ws(edn);
        let c = self.peek()?;
        if c == close {
            self.i += 1;
            return Ok(false);
        }
        if !edn {
            if c != b',' {
                return Err(Stop::Slow);
            }
            self.i += 1;
            self.value_ws(edn);
        }
        Ok(true)
    }

    /// `[f key value]`.
    fn txn_mop(&mut self, edn: bool) -> R<()> {
        self.expect(b'[')?;
        self.value_ws(edn);
        let f = self.mop_name(edn)?;
        if !self.value_sep(b']', edn)? {
            return Err(Stop::Slow);
        }
        let key = self.value_int()?;
        if !self.value_sep(b']', edn)? {
            return Err(Stop::Slow);
        }
        let value = match self.peek()? {
            b'[' => {
                self.i += 1;
                let start = self.ints.elems.len();
                self.value_ws(edn);
                if self.peek()? == b']' {
                    self.i += 1;
                } else {
                    loop {
                        let x = self.value_int()?;
                        self.ints.elems.push(x);
                        if !self.value_sep(b']', edn)? {
                            break;
                        }
                    }
                }
                let len = self.ints.elems.len() - start;
                match (u32::try_from(start), u32::try_from(len)) {
                    (Ok(a), Ok(n)) => IntValue::List(a, n),
                    _ => return Err(Stop::Slow),
                }
            }
            b'n' => {
                let word: &[u8] = if edn { b"nil" } else { b"null" };
                let Some(after) = self.b.get(self.i + word.len()) else {
                    return Err(self.out());
                };
                if !self.b[self.i..].starts_with(word) || !ends_value_atom(*after) {
                    return Err(Stop::Slow);
                }
                self.i += word.len();
                IntValue::Nil
            }
            _ => IntValue::Int(self.value_int()?),
        };
        self.value_ws(edn);
        self.expect(b']')?;
        self.ints.mops.push(IntMop { f, key, value });
        Ok(())
    }

    /// `append`, `r` or `w`: a keyword in EDN, or a string (with or
    /// without a leading colon) in either.
    fn mop_name(&mut self, edn: bool) -> R<MopName> {
        let quoted = match self.peek()? {
            b'"' => true,
            b':' if edn => false,
            _ => return Err(Stop::Slow),
        };
        if quoted {
            self.i += 1;
        }
        if self.peek()? == b':' {
            self.i += 1;
        }
        let start = self.i;
        while self.peek()?.is_ascii_lowercase() {
            self.i += 1;
        }
        let name = match &self.b[start..self.i] {
            b"append" => MopName::Append,
            b"r" => MopName::Read,
            b"w" => MopName::Write,
            _ => return Err(Stop::Slow),
        };
        if quoted {
            self.expect(b'"')?;
        } else if !matches!(self.peek()?, b' ' | b',' | b'\n' | b'\t' | b'\r') {
            return Err(Stop::Slow);
        }
        Ok(name)
    }

    /// An integer of at most 18 digits (so it fits in an i64), written as
    /// JSON and EDN both write it: no leading zeros, no `-0`, no `+`.
    #[inline]
    fn value_int(&mut self) -> R<i64> {
        let b = self.b;
        let mut i = self.i;
        let neg = b.get(i) == Some(&b'-');
        if neg {
            i += 1;
        }
        let start = i;
        let mut n: i64 = 0;
        // Up to 7 digits and the byte after them at once, without a branch
        // per digit (their count varies from number to number).
        if let Some(&word) = b.get(i..i + 8).and_then(|w| <&[u8; 8]>::try_from(w).ok()) {
            let (digits, value) = swar_digits(u64::from_le_bytes(word));
            if digits < 8 {
                i += digits;
                n = value as i64;
            }
        }
        // Wrapping: a number of more than 18 digits is refused below.
        while let Some(&c) = b.get(i) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            n = n.wrapping_mul(10).wrapping_add(i64::from(d));
            i += 1;
        }
        let len = i - start;
        if len > 18 {
            return Err(Stop::Slow);
        }
        match b.get(i) {
            Some(&c) if ends_value_atom(c) => {}
            Some(_) => return Err(Stop::Slow),
            None => return Err(self.out()),
        }
        if len == 0 || (len > 1 && b[start] == b'0') || (neg && n == 0) {
            return Err(Stop::Slow);
        }
        self.i = i;
        Ok(if neg { -n } else { n })
    }

    // ---- EDN ----

    /// Whitespace, commas and comments inside a form; `#_` is left to the
    /// ordinary reader.
    fn edn_ws(&mut self) -> R<()> {
        loop {
            match self.peek()? {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0c => self.i += 1,
                b';' => match self.b[self.i..].iter().position(|&c| c == b'\n') {
                    Some(n) => self.i += n + 1,
                    None => return Err(self.out()),
                },
                b'#' if self.b.get(self.i + 1) == Some(&b'_') => return Err(Stop::Slow),
                _ => return Ok(()),
            }
        }
    }

    /// A run of token bytes (symbol, keyword name, number).
    fn edn_token(&mut self) -> R<&'a str> {
        let start = self.i;
        loop {
            match self.b.get(self.i) {
                Some(&c) if !ends_token(c) => self.i += 1,
                Some(_) => break,
                None if self.eof => break,
                None => return Err(Stop::Incomplete),
            }
        }
        Ok(&self.text[start..self.i])
    }

    /// `:name`: the name.
    fn edn_keyword(&mut self) -> R<&'a str> {
        self.expect(b':')?;
        let name = self.edn_token()?;
        if name.is_empty() {
            return Err(Stop::Slow);
        }
        Ok(name)
    }

    /// A string without escapes: its contents.
    fn edn_str(&mut self) -> R<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Ok(&self.text[start..self.i - 1]);
                }
                b'\\' => return Err(Stop::Slow),
                _ => self.i += 1,
            }
        }
    }

    /// A non-negative integer token that fits in a u64 (digits only).
    fn edn_u64(&mut self) -> R<u64> {
        let tok = self.edn_token()?;
        if tok.is_empty() || !tok.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Stop::Slow);
        }
        tok.parse().map_err(|_| Stop::Slow)
    }

    /// Skips one form as [`Scan::edn_skip`] does, by one loop over the
    /// bytes when the form is of the usual shape of values (vectors and
    /// lists of keywords, symbols and integers); any other form is left
    /// to `edn_skip` from its start.
    fn edn_skip_value(&mut self, depth: usize) -> R<()> {
        let start = self.i;
        if let Some(end) = self.plain_end(depth) {
            self.i = end;
            return Ok(());
        }
        self.i = start;
        self.edn_skip(depth)
    }

    /// Where the form at the cursor ends, when it is of the shapes
    /// [`Scan::edn_skip_value`] takes and lies wholly in the block.
    fn plain_end(&self, depth: usize) -> Option<usize> {
        let b = self.b;
        let mut i = self.i;
        // The open brackets, innermost in the lowest bit: 1 for `(`.
        let mut stack: u64 = 0;
        let mut open = 0usize;
        if depth > MAX_DEPTH {
            return None;
        }
        loop {
            match *b.get(i)? {
                c @ (b'[' | b'(') => {
                    // Its elements are one deeper: within the limit.
                    if open == 63 || depth + open + 1 > MAX_DEPTH {
                        return None;
                    }
                    stack = (stack << 1) | u64::from(c == b'(');
                    open += 1;
                    i += 1;
                }
                c @ (b']' | b')') => {
                    if open == 0 || (stack & 1 == 1) != (c == b')') {
                        return None;
                    }
                    stack >>= 1;
                    open -= 1;
                    i += 1;
                }
                b' ' | b'\t' | b'\n' | b'\r' | b',' | 0x0c if open > 0 => i += 1,
                _ => {
                    let start = i;
                    while !ends_token(*b.get(i)?) {
                        i += 1;
                    }
                    // The rules of `edn_skip` for a keyword, symbol or number.
                    let ok = match &b[start..i] {
                        [] | [b'#', ..] => false,
                        [b':', name @ ..] => !name.is_empty(),
                        tok @ [d, ..] if d.is_ascii_digit() => tok.iter().all(u8::is_ascii_digit),
                        [b'+' | b'-', d, rest @ ..] if d.is_ascii_digit() => {
                            rest.iter().all(u8::is_ascii_digit)
                        }
                        _ => true,
                    };
                    if !ok {
                        return None;
                    }
                }
            }
            if open == 0 {
                return Some(i);
            }
        }
    }

    /// Skips one form of the shapes the fast path knows.
    fn edn_skip(&mut self, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(Stop::Slow);
        }
        match self.peek()? {
            open @ (b'[' | b'(' | b'{') => {
                let close = match open {
                    b'[' => b']',
                    b'(' => b')',
                    _ => b'}',
                };
                self.i += 1;
                let mut n = 0;
                loop {
                    self.edn_ws()?;
                    match self.peek()? {
                        c if c == close => {
                            self.i += 1;
                            return if close == b'}' && n % 2 != 0 {
                                Err(Stop::Slow)
                            } else {
                                Ok(())
                            };
                        }
                        b')' | b']' | b'}' => return Err(Stop::Slow),
                        _ => {
                            self.edn_skip(depth + 1)?;
                            n += 1;
                        }
                    }
                }
            }
            b'"' => self.edn_str().map(drop),
            b':' => self.edn_keyword().map(drop),
            b'#' | b'\\' | b')' | b']' | b'}' => Err(Stop::Slow),
            _ => {
                let tok = self.edn_token()?;
                let t = tok.as_bytes();
                let numeric = match t {
                    [d, ..] if d.is_ascii_digit() => true,
                    [b'+' | b'-', d, ..] if d.is_ascii_digit() => true,
                    _ => false,
                };
                let digits = tok.strip_prefix(['+', '-']).unwrap_or(tok);
                if tok.is_empty() || (numeric && !digits.bytes().all(|c| c.is_ascii_digit())) {
                    return Err(Stop::Slow);
                }
                Ok(())
            }
        }
    }

    fn edn_op(mut self, depth: usize) -> Parsed {
        let r = self.edn_op_inner(depth);
        Scan::finish(r)
    }

    fn edn_op_inner(&mut self, depth: usize) -> R<(Header, usize)> {
        let mut h = Header {
            process: None,
            kind: None,
            f: None,
            time: None,
            value: None,
            ints: false,
            has_key: false,
        };
        if self.peek()? == b'#' {
            // A record tag: `#jepsen.history.Op{...}`.
            self.i += 1;
            let tag = self.edn_token()?;
            if tag.is_empty() || !tag.as_bytes()[0].is_ascii_alphabetic() {
                return Err(Stop::Slow);
            }
            self.edn_ws()?;
        }
        self.expect(b'{')?;
        let mut seen = 0u16;
        loop {
            self.edn_ws()?;
            if self.peek()? == b'}' {
                self.i += 1;
                break;
            }
            if self.peek()? != b':' {
                return Err(Stop::Slow);
            }
            let name = self.edn_keyword()?;
            self.edn_ws()?;
            if matches!(self.peek()?, b'}' | b']' | b')') {
                return Err(Stop::Slow);
            }
            let nil = self.b[self.i..].starts_with(b"nil")
                && self.b.get(self.i + 3).map_or(true, |&c| ends_token(c));
            let bit = match name {
                "process" => {
                    h.process = Some(if self.peek()? == b':' {
                        match self.edn_keyword()? {
                            "nemesis" => Process::Nemesis,
                            _ => return Err(Stop::Slow),
                        }
                    } else {
                        Process::Client(self.edn_u64()?)
                    });
                    1
                }
                "type" => {
                    h.kind = Some(OpType::parse(self.edn_keyword()?).ok_or(Stop::Slow)?);
                    2
                }
                "f" => {
                    let start = self.i + 1;
                    if self.peek()? == b'"' {
                        self.edn_str()?;
                        h.f = Some((start, self.i - 1));
                    } else {
                        self.edn_keyword()?;
                        h.f = Some((start, self.i));
                    }
                    3
                }
                "value" => {
                    let start = self.i;
                    h.ints = depth + 4 <= MAX_DEPTH && self.txn_value(true)?;
                    if !h.ints {
                        self.edn_skip_value(depth + 1)?;
                    }
                    if !nil {
                        h.value = Some((start, self.i));
                    }
                    4
                }
                "time" if nil => {
                    self.edn_token()?;
                    0
                }
                "time" => {
                    h.time = Some(self.edn_u64()?);
                    5
                }
                "key" | "error" if nil => {
                    self.edn_token()?;
                    0
                }
                "key" => {
                    self.edn_skip(depth + 1)?;
                    h.has_key = true;
                    6
                }
                "error" => {
                    self.edn_skip(depth + 1)?;
                    7
                }
                "node" => {
                    match self.peek()? {
                        b':' => drop(self.edn_keyword()?),
                        b'"' => drop(self.edn_str()?),
                        _ if nil => drop(self.edn_token()?),
                        _ => drop(self.edn_u64()?),
                    }
                    // A nil node may repeat; a duplicate otherwise errs.
                    if nil {
                        0
                    } else {
                        8
                    }
                }
                _ => {
                    self.edn_skip(depth + 1)?;
                    0
                }
            };
            if bit != 0 {
                if seen & (1 << bit) != 0 {
                    return Err(Stop::Slow);
                }
                seen |= 1 << bit;
            }
        }
        Ok((h, self.i))
    }
}

/// The leading ASCII digits of eight bytes (the first in the lowest
/// byte): how many there are (8 when all are) and, when fewer than 8,
/// their value.
#[inline]
fn swar_digits(word: u64) -> (usize, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let v = word.wrapping_sub(ONES * u64::from(b'0'));
    // A byte's high bit is set where it is not a digit: below '0' the
    // subtraction wraps; above '9', adding 0x76 carries into the high bit.
    // Borrows and carries move only upwards, from the first non-digit on.
    let not_digit = (v | v.wrapping_add(ONES * 0x76)) & (ONES * 0x80);
    let digits = (not_digit.trailing_zeros() / 8) as usize;
    if digits == 0 || digits == 8 {
        return (digits, 0);
    }
    // The digits' values, moved to the top bytes (zeros before them), then
    // summed pairwise: 2, 4, then 8 digits at a time.
    let mut x = (v << (8 * (8 - digits))) & (ONES * 0x0f);
    x = (x.wrapping_mul(10) + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_ffff_0000_ffff;
    x = x.wrapping_mul(10_000) + (x >> 32);
    (digits, x & 0xffff_ffff)
}

/// Bytes that may follow an integer or `nil` / `null` in a transaction
/// value of the usual shape: all of them end an EDN token and a JSON
/// number.
#[inline]
fn ends_value_atom(b: u8) -> bool {
    matches!(b, b' ' | b',' | b']' | b')' | b'\n' | b'\t' | b'\r')
}

/// Bytes that end an EDN token (as the EDN parser has them).
fn ends_token(b: u8) -> bool {
    ENDS_TOKEN[usize::from(b)]
}

/// [`ends_token`] as a table: it is asked of nearly every byte.
static ENDS_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b" \t\n\r\x0c,\";@^`~()[]{}\\";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::{Scan, Stop, MAX_DEPTH};

    /// Where `edn_skip` ends the form at the start of `text`, or how it
    /// stops; `one_pass` says the same of `edn_skip_value`.
    fn skip(text: &str, depth: usize, one_pass: bool) -> Result<usize, &'static str> {
        let mut ints = super::IntTxn::default();
        let mut s = Scan {
            b: text.as_bytes(),
            text,
            i: 0,
            eof: false,
            ints: &mut ints,
        };
        let r = if one_pass {
            s.edn_skip_value(depth)
        } else {
            s.edn_skip(depth)
        };
        match r {
            Ok(()) => Ok(s.i),
            Err(Stop::Incomplete) => Err("incomplete"),
            Err(Stop::Slow) => Err("slow"),
        }
    }

    #[test]
    fn eight_bytes_at_once_give_the_leading_digits() {
        for (text, want) in [
            (&b"1234567 "[..], (7, 1_234_567)),
            (b"0]      ", (1, 0)),
            (b"42, 7]  ", (2, 42)),
            (b"9999999]", (7, 9_999_999)),
            (b"12345678", (8, 0)),
            (b" 1      ", (0, 0)),
            (b"7/      ", (1, 7)),
            (b"7:      ", (1, 7)),
            (b"305\xff\xff\xff\xff\xff", (3, 305)),
        ] {
            let word = u64::from_le_bytes(text.try_into().unwrap());
            assert_eq!(super::swar_digits(word), want, "{text:?}");
        }
        // Every number of up to 7 digits, followed by each kind of byte.
        for n in (0..10_000_000u64).step_by(997).chain([1, 10, 100, 999_999]) {
            for after in [b' ', b']', b'/', b':', 0x00, 0xff] {
                let mut w = n.to_string().into_bytes();
                let digits = w.len();
                w.resize(8, after);
                let word = u64::from_le_bytes(w.try_into().unwrap());
                assert_eq!(super::swar_digits(word), (digits, n), "{n} then {after}");
            }
        }
    }

    #[test]
    fn one_pass_value_skip_ends_where_edn_skip_does() {
        let deep = format!("{}{} ", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let forms = [
            "[[:append 1 2] [:r 3 [1 2]]] ",
            "[[:r 3 nil], (:append -4 +5)] ",
            "[[:append 1 2]",
            "[1a] ",
            "[-1a] ",
            "[#foo 1] ",
            "[: 1] ",
            "[1 \"s\"] ",
            "[{:a 1}] ",
            "[1 ; c\n 2] ",
            "[1 #_2 3] ",
            "[1) ",
            "([1] ",
            "] ",
            "[@x] ",
            "[a.b/c :d/e 007] ",
            deep.as_str(),
        ];
        for form in forms {
            for depth in [1, 2, MAX_DEPTH] {
                assert_eq!(
                    skip(form, depth, true),
                    skip(form, depth, false),
                    "{form:?} at depth {depth}"
                );
            }
        }
        // The usual value is taken whole, and a bad one is refused.
        assert_eq!(skip("[[:append 1 2] [:r 3 [1 2]]] ", 1, true), Ok(28));
        assert_eq!(skip("[1a] ", 1, true), Err("slow"));
    }
}
