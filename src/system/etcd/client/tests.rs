//! Unit tests of the etcd client: encoding, response parsing and error
//! classification, and the client against a fake gateway on loopback that
//! answers what etcd 3.4 answers (omitted fields, int64 strings, 503 bodies)
//! or misbehaves on purpose (hangs, closes, garbage).

use super::*;
use crate::client::Status;
use crate::history::Process;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

mod txn;

fn inv(f: &str, key: Option<Value>, value: Value) -> Invocation {
    Invocation {
        process: Process::Client(0),
        f: f.into(),
        value,
        key,
        timeout: Duration::from_secs(5),
    }
}

fn opts(timeout_ms: u64) -> EtcdClientOptions {
    EtcdClientOptions {
        timeout: Duration::from_millis(timeout_ms),
        ..EtcdClientOptions::default()
    }
}

// ---- encoding and parsing ----

#[test]
fn keys_are_json_text_under_the_workload() {
    assert_eq!(
        register_key("register", Some(&json!(3))),
        b"/faultline/register/3".to_vec()
    );
    assert_eq!(
        register_key("register", Some(&json!("3"))),
        b"/faultline/register/\"3\"".to_vec(),
        "a string key differs from the integer key"
    );
    assert_eq!(set_prefix("set", None), b"/faultline/set/null/".to_vec());
    assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
    assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
    assert_eq!(prefix_end(&[0xff, 0xff]), vec![0]);
    assert_eq!(set_element(b"/p/", b"/p/42").unwrap(), 42);
    assert_eq!(set_element(b"/p/", b"/p/-7").unwrap(), -7);
    let e = set_element(b"/p/", b"/p/x").unwrap_err();
    assert_eq!(e.class, ErrorClass::Unknown);
    assert_eq!(element_value(5), json!(5));
    assert_eq!(element_value(i128::from(u64::MAX)), json!(u64::MAX));
}

#[test]
fn urls_parse_to_endpoints() {
    let e = Endpoint::parse("http://10.0.0.1:2379").unwrap();
    assert_eq!((e.host.as_str(), e.port), ("10.0.0.1", 2379));
    assert_eq!(e.authority, "10.0.0.1:2379");
    let e = Endpoint::parse("http://[fd00::1]:12379/").unwrap();
    assert_eq!((e.host.as_str(), e.port), ("fd00::1", 12379));
    assert_eq!(e.authority, "[fd00::1]:12379");
    assert_eq!(Endpoint::parse("http://n1").unwrap().port, 2379);
    assert!(Endpoint::parse("https://n1:2379")
        .unwrap_err()
        .contains("only http://"));
    assert!(Endpoint::parse("http://n1:x").unwrap_err().contains("port"));
    assert!(Endpoint::parse("http://:2379").is_err());
    assert!(Endpoint::parse("http://n1:2379/v3").is_err());
    let err =
        EtcdClientFactory::new([("n1", "ftp://x")], EtcdClientOptions::default()).unwrap_err();
    assert_eq!(err.class, ErrorClass::NotApplied);
    assert!(
        EtcdClientFactory::new(Vec::<(String, String)>::new(), EtcdClientOptions::default())
            .is_err()
    );
}

#[test]
fn read_modes_parse_and_print() {
    assert_eq!("serializable".parse(), Ok(ReadMode::Serializable));
    assert_eq!("linearizable".parse(), Ok(ReadMode::Linearizable));
    assert!("stale".parse::<ReadMode>().unwrap_err().contains("stale"));
    assert_eq!(ReadMode::Serializable.to_string(), "serializable");
    assert_eq!(ReadMode::default(), ReadMode::Linearizable);
    assert_eq!(DataKind::for_model("set"), DataKind::Set);
    assert_eq!(DataKind::for_model("cas-register"), DataKind::Register);
}

#[test]
fn operations_are_checked_before_sending() {
    let o = EtcdClientOptions::default();
    let bad = [
        inv("write", Some(json!(1)), json!(null)),
        inv("cas", Some(json!(1)), json!(3)),
        inv("cas", Some(json!(1)), json!([1])),
        inv("cas", Some(json!(1)), json!([1, null])),
        inv("add", None, json!("x")),
        inv("add", None, json!(1.5)),
        inv("frob", None, json!(null)),
    ];
    for i in &bad {
        let e = parse_op(i, &o).unwrap_err();
        assert_eq!(e.class, ErrorClass::NotApplied, "{i:?}");
    }
    assert_eq!(
        parse_op(&inv("read", Some(json!(2)), json!(null)), &o).unwrap(),
        Encoded::Read {
            key: b"/faultline/register/2".to_vec()
        }
    );
    let set = EtcdClientOptions {
        kind: DataKind::Set,
        workload: "set".into(),
        ..EtcdClientOptions::default()
    };
    assert_eq!(
        parse_op(&inv("read", None, json!(null)), &set).unwrap(),
        Encoded::ReadSet {
            prefix: b"/faultline/set/null/".to_vec()
        }
    );
    assert_eq!(
        parse_op(&inv("add", None, json!(17)), &set).unwrap(),
        Encoded::Add {
            key: b"/faultline/set/null/17".to_vec(),
            element: "17".into()
        }
    );
}

#[test]
fn responses_with_omitted_fields_parse() {
    // A range that matched nothing: no kvs, no count.
    let r: RangeResponse = parse_body(
        "read",
        br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"7","raft_term":"2"}}"#,
    )
    .unwrap();
    assert_eq!(r.header.revision, 7);
    assert!(r.kvs.is_empty() && !r.more);
    assert_eq!(register_value(&r).unwrap(), Value::Null);
    let r: RangeResponse = parse_body(
        "read",
        format!(
            r#"{{"header":{{"revision":"9"}},"kvs":[{{"key":"{}","create_revision":"8","mod_revision":"9","version":"2","value":"{}"}}],"count":"1"}}"#,
            b64(b"/faultline/register/1"),
            b64(b"4")
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(register_value(&r).unwrap(), json!(4));
    // Revision as a number is accepted too.
    let t: TxnResponse = parse_body("cas", br#"{"header":{"revision":12}}"#).unwrap();
    assert_eq!((t.header.revision, t.succeeded), (12, false));
    let t: TxnResponse = parse_body(
        "cas",
        br#"{"header":{"revision":"13"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"13"}}}]}"#,
    )
    .unwrap();
    assert!(t.succeeded);
    // Garbage or a non-JSON stored value: unknown.
    let e = parse_body::<TxnResponse>("cas", b"<html>proxy error</html>").unwrap_err();
    assert_eq!(e.class, ErrorClass::Unknown);
    assert!(e.message.contains("proxy error"), "{e}");
    let r: PutResponse = parse_body("write", b"{}").unwrap();
    let e = check_header("write", &r.header, b"{}").unwrap_err();
    assert_eq!(e.class, ErrorClass::Unknown, "an answer needs a header");
    assert!(check_header("read", &Header { revision: 1 }, b"").is_ok());
    let r = RangeResponse {
        kvs: vec![KeyValue {
            key: b64(b"k"),
            value: b64(b"not json"),
        }],
        ..RangeResponse::default()
    };
    assert_eq!(register_value(&r).unwrap_err().class, ErrorClass::Unknown);
}

#[test]
fn statuses_are_classified() {
    // What a minority member's gateway answers after ~7 s.
    let e = classify_status(
        503,
        br#"{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}"#,
    );
    assert_eq!(e.class, ErrorClass::Unknown);
    assert_eq!(
        e.message,
        "HTTP 503, code 14: etcdserver: request timed out"
    );
    let e = classify_status(
        400,
        br#"{"error":"etcdserver: key is not provided","code":3}"#,
    );
    assert_eq!(e.class, ErrorClass::NotApplied);
    assert!(e.message.contains("code 3"), "{e}");
    assert_eq!(
        classify_status(404, b"Not Found").class,
        ErrorClass::NotApplied
    );
    assert_eq!(classify_status(403, b"").class, ErrorClass::NotApplied);
    for s in [500, 502, 504, 429, 409] {
        assert_eq!(
            classify_status(s, b"oops").class,
            ErrorClass::Unknown,
            "{s}"
        );
    }
    assert!(classify_status(502, b"bad gateway")
        .message
        .contains("bad gateway"));
}

// ---- against a fake gateway ----

/// What the fake gateway does with one request.
enum Reply {
    /// Answers with this status and JSON body.
    Json(u16, String),
    /// Answers like `Json`, then closes the connection.
    JsonThenClose(u16, String),
    /// Never answers, keeping the connection open.
    Hang,
    /// Closes the connection without answering.
    Close,
}

type Handler = Arc<dyn Fn(&str, &Value) -> Reply + Send + Sync>;

/// A fake etcd gateway on 127.0.0.1: HTTP/1.1 with keep-alive, every
/// request recorded as (path, head, body).
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task with it.
        self.task.abort();
    }
}

impl Fake {
    async fn start(handler: impl Fn(&str, &Value) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let reqs = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                conns.spawn(serve(s, Arc::clone(&handler), Arc::clone(&reqs)));
            }
        });
        Fake {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<(String, String, Value)> {
        self.requests.lock().unwrap().clone()
    }

    async fn client(&self, o: EtcdClientOptions) -> EtcdClient {
        let f = EtcdClientFactory::new([("n1", self.url.as_str())], o).unwrap();
        let mut c = f.client();
        c.open("n1").await.expect("open");
        c
    }
}

async fn serve(
    mut s: TcpStream,
    handler: Handler,
    requests: Arc<Mutex<Vec<(String, String, Value)>>>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match s.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        requests
            .lock()
            .unwrap()
            .push((path.clone(), head, body.clone()));
        match handler(&path, &body) {
            Reply::Json(status, text) => {
                if s.write_all(answer(status, &text, "").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Reply::JsonThenClose(status, text) => {
                let text = answer(status, &text, "Connection: close\r\n");
                let _ = s.write_all(text.as_bytes()).await;
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Reply::Close => return,
        }
    }
}

fn answer(status: u16, text: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{text}",
        text.len()
    )
}

const HEADER: &str =
    r#"{"header":{"cluster_id":"1","member_id":"2","revision":"5","raft_term":"2"}}"#;

fn decoded(v: &Value) -> String {
    String::from_utf8(
        B64.decode(v.as_str().expect("base64 string"))
            .expect("base64"),
    )
    .expect("utf8")
}

#[tokio::test]
async fn requests_carry_etcds_json_and_answers_map_to_completions() {
    let fake = Fake::start(|path, body| match path {
        "/v3/kv/put" => Reply::Json(200, HEADER.into()),
        "/v3/kv/range" if decoded(&body["key"]).ends_with("/1") => Reply::Json(
            200,
            format!(
                r#"{{"header":{{"revision":"5"}},"kvs":[{{"key":"{}","value":"{}"}}],"count":"1"}}"#,
                b64(b"/faultline/register/1"),
                b64(b"3")
            ),
        ),
        "/v3/kv/range" => Reply::Json(200, HEADER.into()),
        // The compare matches when it expects 3 or absence.
        "/v3/kv/txn" => {
            let c = &body["compare"][0];
            let ok = c.get("value").map(decoded).as_deref() == Some("3")
                || c["target"] == "CREATE";
            if ok {
                Reply::Json(200, r#"{"header":{"revision":"6"},"succeeded":true}"#.into())
            } else {
                Reply::Json(200, r#"{"header":{"revision":"6"}}"#.into())
            }
        }
        _ => Reply::Json(404, "Not Found".into()),
    })
    .await;
    let mut c = fake.client(opts(2000)).await;
    assert_eq!(c.node(), Some("n1"));

    let w = c.invoke(&inv("write", Some(json!(1)), json!(3))).await;
    assert_eq!(w, Completion::ok(json!(3)));
    let r = c.invoke(&inv("read", Some(json!(1)), json!(null))).await;
    assert_eq!(r, Completion::ok(json!(3)));
    let r = c.invoke(&inv("read", Some(json!(2)), json!(null))).await;
    assert_eq!(r, Completion::ok(json!(null)), "absent key reads null");
    let ok = c.invoke(&inv("cas", Some(json!(1)), json!([3, 4]))).await;
    assert_eq!(ok, Completion::ok(json!([3, 4])));
    let bad = c.invoke(&inv("cas", Some(json!(1)), json!([2, 4]))).await;
    assert_eq!(bad.status, Status::Fail);
    assert_eq!(bad.value, json!([2, 4]));
    let absent = c
        .invoke(&inv("cas", Some(json!(9)), json!([null, 1])))
        .await;
    assert_eq!(absent.status, Status::Ok);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 6, "one keep-alive request per operation");
    let (path, head, put) = &reqs[0];
    assert_eq!(path, "/v3/kv/put");
    assert_eq!(decoded(&put["key"]), "/faultline/register/1");
    assert_eq!(decoded(&put["value"]), "3");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("grpc-timeout: "), "{head}");
    assert!(head.contains("host: 127.0.0.1:"), "{head}");
    assert!(head.starts_with("post /v3/kv/put http/1.1"), "{head}");
    let range = &reqs[1].2;
    assert!(
        range.get("serializable").is_none(),
        "linearizable by default"
    );
    let txn = &reqs[3].2;
    assert_eq!(txn["compare"][0]["target"], "VALUE");
    assert_eq!(txn["compare"][0]["result"], "EQUAL");
    assert_eq!(decoded(&txn["compare"][0]["value"]), "3");
    assert_eq!(decoded(&txn["success"][0]["request_put"]["value"]), "4");
    assert_eq!(
        decoded(&txn["success"][0]["request_put"]["key"]),
        "/faultline/register/1"
    );
    let txn = &reqs[5].2;
    assert_eq!(txn["compare"][0]["target"], "CREATE");
    assert_eq!(txn["compare"][0]["create_revision"], "0");

    // Serializable reads say so.
    let mut s = fake
        .client(EtcdClientOptions {
            read_mode: ReadMode::Serializable,
            ..opts(2000)
        })
        .await;
    assert_eq!(
        s.invoke(&inv("read", Some(json!(1)), json!(null))).await,
        Completion::ok(json!(3))
    );
    assert_eq!(fake.requests()[6].2["serializable"], json!(true));

    // Nothing is sent for a malformed operation or a closed client.
    let n = fake.requests().len();
    let f = s.invoke(&inv("write", Some(json!(1)), json!(null))).await;
    assert_eq!(f.status, Status::Fail);
    s.close().await.unwrap();
    let f = s.invoke(&inv("write", Some(json!(1)), json!(1))).await;
    assert_eq!(f.status, Status::Fail);
    assert!(f.error.unwrap().to_string().contains("not open"));
    assert_eq!(fake.requests().len(), n);
}

#[tokio::test]
async fn set_reads_page_through_one_revision() {
    // 25 elements under the set prefix, plus neighbours that must not show.
    let prefix = "/faultline/set/null/";
    let mut keys: Vec<String> = (0..25).map(|i| format!("{prefix}{}", i * 3)).collect();
    keys.push("/faultline/set/nullx".into());
    keys.push("/faultline/set/0/1".into());
    keys.sort();
    let fake = Fake::start(move |path, body| {
        if path == "/v3/kv/put" {
            return Reply::Json(200, HEADER.into());
        }
        let start = decoded(&body["key"]);
        let end = decoded(&body["range_end"]);
        let limit = body["limit"].as_u64().unwrap_or(0) as usize;
        let matching: Vec<&String> = keys
            .iter()
            .filter(|k| **k >= start && **k < end)
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .take(limit)
            .map(|k| json!({ "key": b64(k.as_bytes()), "create_revision": "3" }))
            .collect();
        let more = matching.len() > limit;
        let mut v = json!({ "header": { "revision": "41" }, "kvs": page, "count": matching.len().to_string() });
        if more {
            v["more"] = json!(true);
        }
        Reply::Json(200, v.to_string())
    })
    .await;
    let o = EtcdClientOptions {
        kind: DataKind::Set,
        workload: "set".into(),
        set_page: 10,
        ..opts(2000)
    };
    let mut c = fake.client(o).await;
    assert_eq!(
        c.invoke(&inv("add", None, json!(7))).await,
        Completion::ok(json!(7))
    );
    let add = &fake.requests()[0].2;
    assert_eq!(decoded(&add["key"]), format!("{prefix}7"));
    let r = c.invoke(&inv("read", None, json!(null))).await;
    let want: Vec<i64> = (0..25).map(|i| i * 3).collect();
    assert_eq!(r, Completion::ok(json!(want)));
    let reqs = fake.requests();
    let pages: Vec<&Value> = reqs[1..].iter().map(|(_, _, b)| b).collect();
    assert_eq!(pages.len(), 3, "25 keys in pages of 10");
    assert!(pages[0].get("revision").is_none());
    assert!(pages[0].get("serializable").is_none());
    assert_eq!(pages[0]["keys_only"], json!(true));
    for p in &pages[1..] {
        assert_eq!(
            p["revision"],
            json!("41"),
            "later pages at the first's revision"
        );
        assert_eq!(p["serializable"], json!(true));
    }
    assert_eq!(decoded(&pages[0]["range_end"]), "/faultline/set/null0");
}

#[tokio::test]
async fn a_hung_node_times_out_unknown_for_writes_and_fail_for_reads() {
    let fake = Fake::start(|_, _| Reply::Hang).await;
    let mut c = fake.client(opts(300)).await;
    let t = std::time::Instant::now();
    let w = c.invoke(&inv("write", Some(json!(1)), json!(1))).await;
    let took = t.elapsed();
    assert_eq!(w.status, Status::Info, "{w:?}");
    assert!(w.error.unwrap().to_string().contains("deadline"));
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let cas = c.invoke(&inv("cas", Some(json!(1)), json!([1, 2]))).await;
    assert_eq!(cas.status, Status::Info);
    let r = c.invoke(&inv("read", Some(json!(1)), json!(null))).await;
    assert_eq!(r.status, Status::Fail, "a read has no effect: {r:?}");
    // The invocation's shorter timeout wins over the client's.
    let mut short = inv("write", Some(json!(1)), json!(1));
    short.timeout = Duration::from_millis(100);
    let t = std::time::Instant::now();
    let mut c = fake.client(opts(5000)).await;
    assert_eq!(c.invoke(&short).await.status, Status::Info);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test]
async fn error_answers_are_classified() {
    let fake = Fake::start(|_, body| {
        // A put or range names its key at the top, a txn in its compare.
        let key = body.get("key").unwrap_or(&body["compare"][0]["key"]);
        // String keys are stored as JSON text, quotes included.
        match decoded(key).rsplit('/').next().unwrap_or("").trim_matches('"') {
            "503" => Reply::Json(
                503,
                r#"{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}"#.into(),
            ),
            "400" => Reply::Json(400, r#"{"error":"bad","code":3,"message":"bad"}"#.into()),
            "500" => Reply::Json(500, "internal".into()),
            "garbage" => Reply::Json(200, "not json at all".into()),
            "empty" => Reply::Json(200, "{}".into()),
            "close" => Reply::Close,
            _ => Reply::Json(200, HEADER.into()),
        }
    })
    .await;
    let mut c = fake.client(opts(2000)).await;
    let cases = [
        ("503", Status::Info, "code 14"),
        ("400", Status::Fail, "code 3"),
        ("500", Status::Info, "HTTP 500"),
        ("garbage", Status::Info, "unparsable"),
        ("empty", Status::Info, "without an etcd header"),
        ("close", Status::Info, ""),
        ("fine", Status::Ok, ""),
    ];
    for (key, status, msg) in cases {
        let w = c.invoke(&inv("write", Some(json!(key)), json!(1))).await;
        assert_eq!(w.status, status, "{key}: {w:?}");
        if !msg.is_empty() {
            let e = w.error.unwrap().to_string();
            assert!(e.contains(msg), "{key}: {e}");
        }
        let a = c.invoke(&inv("cas", Some(json!(key)), json!([1, 2]))).await;
        // A 200 without `succeeded` is a compare that did not match.
        let want = if key == "fine" { Status::Fail } else { status };
        assert_eq!(a.status, want, "cas {key}: {a:?}");
    }
    // Unknown reads are fail: the answer did not come, the state is as it was.
    let r = c
        .invoke(&inv("read", Some(json!("503")), json!(null)))
        .await;
    assert_eq!(r.status, Status::Fail);
    assert!(r.error.unwrap().to_string().contains("code 14"));
}

#[tokio::test]
async fn a_refused_connection_is_fail() {
    // A port with nothing listening: bind, note it, close.
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let f = EtcdClientFactory::new([("n1", format!("http://{addr}"))], opts(1000)).unwrap();
    let mut c = f.client();
    let e = c.open("n1").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::NotApplied);
    assert!(e.message.contains("open n1"), "{e}");
    let e = c.open("n7").await.unwrap_err();
    assert!(e.message.contains("known: n1"), "{e}");

    // Open while the node is up; it goes away; the next write reconnects,
    // is refused and is certainly not applied.
    let fake = Fake::start(|_, _| Reply::Json(200, HEADER.into())).await;
    let mut c = fake.client(opts(1000)).await;
    assert_eq!(
        c.invoke(&inv("write", Some(json!(1)), json!(1)))
            .await
            .status,
        Status::Ok
    );
    drop(fake);
    // Let the client's connection task see the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let w = c.invoke(&inv("write", Some(json!(1)), json!(2))).await;
    assert_eq!(w.status, Status::Fail, "{w:?}");
    assert!(w.error.unwrap().to_string().contains("connect"));
}

#[tokio::test]
async fn the_factory_hands_out_clients_round_robin() {
    let f = EtcdClientFactory::new(
        [
            ("n1", "http://10.0.0.1:2379"),
            ("n2", "http://10.0.0.2:2379"),
        ],
        EtcdClientOptions::default(),
    )
    .unwrap();
    assert_eq!(
        [f.node_for(0), f.node_for(1), f.node_for(2)],
        ["n1", "n2", "n1"]
    );
    assert_eq!(f.options().read_mode, ReadMode::Linearizable);
    let make = f.into_factory();
    let mut c = make(3);
    // Not opened: refused without sending.
    let r = c.invoke(&inv("read", Some(json!(1)), json!(null))).await;
    assert_eq!(r.status, Status::Fail);
}

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced() {
    // Every answer closes its connection: each request needs a new one.
    let fake = Fake::start(|_, _| Reply::JsonThenClose(200, HEADER.into())).await;
    let mut c = fake.client(opts(1000)).await;
    for v in 0..5 {
        let w = c.invoke(&inv("write", Some(json!(1)), json!(v))).await;
        assert_eq!(w.status, Status::Ok, "{w:?}");
    }
    assert_eq!(fake.requests().len(), 5);
}
