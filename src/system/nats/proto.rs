//! The part of the NATS client protocol faultline speaks, as pure
//! functions over bytes: what the client sends (`CONNECT`, `PING`/`PONG`,
//! `SUB`, `PUB`) and the frames the server sends back (`INFO`, `MSG`,
//! `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`), parsed from a buffer. The
//! blocking connection of the db's health probes (`db.rs`) and the tokio
//! connection of the clients (`client.rs`) share it, so the protocol is
//! written, and tested, once.
//!
//! Requests are plain NATS request/reply: the client subscribes to its own
//! inbox `_INBOX.<id>.*` once and publishes each request with a reply
//! subject `_INBOX.<id>.<n>`; the answer is a `MSG` (JetStream's JSON) or
//! an `HMSG` carrying only a status line (`503` no responders, `404` no
//! messages, `408` request timeout).

/// A frame from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `INFO {...}`: the server's greeting.
    Info(String),
    /// `MSG` or `HMSG`: a message delivered to one of our subscriptions.
    Msg(Message),
    /// `PING`: must be answered with `PONG` or the server drops us.
    Ping,
    /// `PONG`: the answer to our `PING`.
    Pong,
    /// `+OK` (verbose mode only).
    Ok,
    /// `-ERR '...'`: a protocol error; most close the connection.
    Err(String),
}

/// A delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// The subscription it was delivered to.
    pub sid: u64,
    /// Its reply subject (a JetStream message's ack subject), if any.
    pub reply: Option<String>,
    /// The status code of its header (`503`, `404`, ...), if it has headers.
    pub status: Option<u16>,
    /// The status line's description (`No Messages`), if any.
    pub description: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// What a client sends first: headers on (status replies come as headers),
/// `no_responders` on (a request nobody listens to is answered `503`
/// at once instead of timing out), no `+OK` for every command.
pub fn connect() -> Vec<u8> {
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,\
\"protocol\":1,\"lang\":\"rust\",\"version\":\"faultline\",\"name\":\"faultline\"}\r\nPING\r\n"
        .to_vec()
}

/// `SUB subject sid`.
pub fn sub(subject: &str, sid: u64) -> Vec<u8> {
    format!("SUB {subject} {sid}\r\n").into_bytes()
}

/// `UNSUB sid`.
pub fn unsub(sid: u64) -> Vec<u8> {
    format!("UNSUB {sid}\r\n").into_bytes()
}

/// `PUB subject [reply] len` and the payload.
pub fn publish(subject: &str, reply: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let mut out = match reply {
        Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
        None => format!("PUB {subject} {}\r\n", payload.len()),
    }
    .into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// `PONG`, the answer to the server's `PING`.
pub const PONG: &[u8] = b"PONG\r\n";

/// Parses the first frame of `buf`: `Ok(None)` when it is not complete
/// yet, else the frame and how many bytes it took; an error for bytes no
/// NATS server sends.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        // A control line longer than this is no NATS server's.
        if buf.len() > 64 * 1024 {
            return Err("a control line longer than 64 KiB".into());
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..eol]).map_err(|_| "a control line not in UTF-8")?;
    let after = eol + 2;
    let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let simple = |f: Frame| Ok(Some((f, after)));
    match op.to_ascii_uppercase().as_str() {
        "PING" => simple(Frame::Ping),
        "PONG" => simple(Frame::Pong),
        "+OK" => simple(Frame::Ok),
        "-ERR" => simple(Frame::Err(rest.trim().trim_matches('\'').to_string())),
        "INFO" => simple(Frame::Info(rest.trim().to_string())),
        "MSG" => {
            // MSG subject sid [reply] len — an empty reply may show as two
            // spaces, so fields are split on runs of whitespace.
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (subject, sid, reply, len) = match f.as_slice() {
                [s, sid, len] => (*s, *sid, None, *len),
                [s, sid, r, len] => (*s, *sid, Some(*r), *len),
                _ => return Err(format!("a malformed MSG line: {line}")),
            };
            let len = number(len, line)?;
            let Some(payload) = body(buf, after, len)? else {
                return Ok(None);
            };
            Ok(Some((
                Frame::Msg(Message {
                    subject: subject.to_string(),
                    sid: number(sid, line)? as u64,
                    reply: reply.map(str::to_string),
                    status: None,
                    description: String::new(),
                    payload: payload.to_vec(),
                }),
                after + len + 2,
            )))
        }
        "HMSG" => {
            // HMSG subject sid [reply] header-len total-len
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (subject, sid, reply, hlen, total) = match f.as_slice() {
                [s, sid, h, t] => (*s, *sid, None, *h, *t),
                [s, sid, r, h, t] => (*s, *sid, Some(*r), *h, *t),
                _ => return Err(format!("a malformed HMSG line: {line}")),
            };
            let (hlen, total) = (number(hlen, line)?, number(total, line)?);
            if hlen > total {
                return Err(format!("headers longer than the message: {line}"));
            }
            let Some(all) = body(buf, after, total)? else {
                return Ok(None);
            };
            let (status, description) = status_line(&all[..hlen]);
            Ok(Some((
                Frame::Msg(Message {
                    subject: subject.to_string(),
                    sid: number(sid, line)? as u64,
                    reply: reply.map(str::to_string),
                    status,
                    description,
                    payload: all[hlen..].to_vec(),
                }),
                after + total + 2,
            )))
        }
        _ => Err(format!("an unknown frame from the server: {line:.80}")),
    }
}

fn number(s: &str, line: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("a bad length {s:?} in {line:.80}"))
}

/// The `len` bytes after `start` and their `\r\n`, or `None` until they
/// have all arrived.
fn body(buf: &[u8], start: usize, len: usize) -> Result<Option<&[u8]>, String> {
    if buf.len() < start + len + 2 {
        return Ok(None);
    }
    if &buf[start + len..start + len + 2] != b"\r\n" {
        return Err("a message not ended by CRLF".into());
    }
    Ok(Some(&buf[start..start + len]))
}

/// The status code and description of a header block
/// (`NATS/1.0 404 No Messages\r\n...`).
fn status_line(headers: &[u8]) -> (Option<u16>, String) {
    let text = String::from_utf8_lossy(headers);
    let first = text.lines().next().unwrap_or_default();
    let mut parts = first
        .strip_prefix("NATS/1.0")
        .unwrap_or_default()
        .trim()
        .splitn(2, ' ');
    let status = parts.next().and_then(|c| c.parse().ok());
    let description = parts.next().unwrap_or_default().trim().to_string();
    (status, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> (Frame, usize) {
        parse(bytes).expect("parses").expect("complete")
    }

    #[test]
    fn messages_with_and_without_reply_and_headers_are_parsed() {
        // What nats-server 2.9.10 sent, byte for byte (note the two spaces
        // where a reply subject is absent).
        let ack = b"MSG _INBOX.a.1 1  24\r\n{\"stream\":\"fl\", \"seq\":1}\r\nPING\r\n";
        let (f, used) = one(ack);
        let Frame::Msg(m) = f else { panic!("{f:?}") };
        assert_eq!(m.subject, "_INBOX.a.1");
        assert_eq!(m.reply, None);
        assert_eq!(m.payload, b"{\"stream\":\"fl\", \"seq\":1}");
        assert_eq!(parse(&ack[used..]), Ok(Some((Frame::Ping, 6))));

        let (f, _) = one(b"MSG fl.q 1 $JS.ACK.fl.c.1.1.1.17964.1 1\r\n7\r\n");
        let Frame::Msg(m) = f else { panic!("{f:?}") };
        assert_eq!(m.reply.as_deref(), Some("$JS.ACK.fl.c.1.1.1.17964.1"));
        assert_eq!(m.sid, 1);
        assert_eq!((m.status, m.payload.as_slice()), (None, &b"7"[..]));

        let (f, _) = one(b"HMSG _INBOX.a.1 1  28 28\r\nNATS/1.0 404 No Messages\r\n\r\n\r\n");
        let Frame::Msg(m) = f else { panic!("{f:?}") };
        assert_eq!(
            (m.status, m.description.as_str()),
            (Some(404), "No Messages")
        );
        assert!(m.payload.is_empty());

        let (f, _) = one(b"HMSG _INBOX.a.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let Frame::Msg(m) = f else { panic!("{f:?}") };
        assert_eq!((m.status, m.description.as_str()), (Some(503), ""));
    }

    #[test]
    fn incomplete_frames_wait_and_bad_ones_are_refused() {
        assert_eq!(parse(b"MSG a 1 5\r\nab"), Ok(None));
        assert_eq!(parse(b"PIN"), Ok(None));
        assert_eq!(
            one(b"-ERR 'Authorization Violation'\r\n").0,
            Frame::Err("Authorization Violation".into())
        );
        let e = parse(b"MSG a 1 x\r\n").expect_err("bad length");
        assert!(e.contains("bad length"), "{e}");
        let e = parse(b"MSG a 1 1\r\nabc\r\n").expect_err("no CRLF");
        assert!(e.contains("CRLF"), "{e}");
        let e = parse(b"WHAT\r\n").expect_err("unknown");
        assert!(e.contains("unknown frame"), "{e}");
    }

    #[test]
    fn commands_are_encoded() {
        assert_eq!(
            publish("q", Some("_INBOX.a.3"), b"12"),
            b"PUB q _INBOX.a.3 2\r\n12\r\n"
        );
        assert_eq!(publish("q", None, b""), b"PUB q 0\r\n\r\n");
        assert_eq!(sub("_INBOX.a.*", 1), b"SUB _INBOX.a.* 1\r\n");
        assert_eq!(unsub(7), b"UNSUB 7\r\n");
        assert!(connect().ends_with(b"\r\nPING\r\n"));
    }
}
