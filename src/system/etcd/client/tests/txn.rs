//! Transactions (list-append, rw-register): the request encoding, the
//! decoding of etcd's txn answers, and the client against a fake gateway
//! that keeps keys with mod revisions and evaluates `MOD` compares as etcd
//! does, so retries and every class of outcome can be provoked on purpose.

use super::super::txn::{Mop, Seen, Shape, Txn, TxnAnswer, TXN_ATTEMPTS};
use super::*;
use std::collections::BTreeMap;

fn list_opts(timeout_ms: u64) -> EtcdClientOptions {
    EtcdClientOptions {
        workload: "list-append".into(),
        kind: DataKind::List,
        ..opts(timeout_ms)
    }
}

fn txn_inv(value: Value) -> Invocation {
    inv("txn", None, value)
}

/// The fake's store: key → (stored text, mod revision), and the revision.
struct Store {
    rev: i64,
    data: BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
}

impl Store {
    fn new() -> Store {
        Store {
            rev: 1,
            data: BTreeMap::new(),
        }
    }

    /// A range answer the way the gateway writes one: int64 as strings,
    /// `kvs` and `count` omitted when the key is absent.
    fn range(&self, key: &[u8]) -> Value {
        let header = json!({ "revision": self.rev.to_string() });
        match self.data.get(key) {
            None => json!({ "response_range": { "header": header } }),
            Some((v, m)) => json!({ "response_range": {
                "header": header,
                "kvs": [{ "key": b64(key), "create_revision": "2", "mod_revision": m.to_string(),
                          "version": "1", "value": b64(v) }],
                "count": "1" } }),
        }
    }

    /// Writes `text` at `key` as one put of its own revision.
    fn put(&mut self, key: &str, text: &str) {
        self.rev += 1;
        self.data.insert(
            key.as_bytes().to_vec(),
            (text.as_bytes().to_vec(), self.rev),
        );
    }

    /// Evaluates a txn as etcd does: every compare (`MOD` only here; a
    /// missing key compares as mod revision 0), then `success` or
    /// `failure`; puts of one txn share one new revision.
    fn txn(&mut self, body: &Value) -> String {
        let empty = Vec::new();
        let compares = body["compare"].as_array().unwrap_or(&empty);
        let ok = compares.iter().all(|c| {
            assert_eq!(c["target"], "MOD", "{c}");
            assert_eq!(c["result"], "EQUAL", "{c}");
            let key = B64.decode(c["key"].as_str().unwrap()).unwrap();
            let want: i64 = c["mod_revision"].as_str().unwrap().parse().unwrap();
            self.data.get(&key).map_or(0, |x| x.1) == want
        });
        let ops = body[if ok { "success" } else { "failure" }]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let next = self.rev + 1;
        let mut wrote = false;
        let mut responses = Vec::new();
        for op in &ops {
            if let Some(r) = op.get("request_range") {
                responses.push(self.range(&B64.decode(r["key"].as_str().unwrap()).unwrap()));
            } else if let Some(p) = op.get("request_put") {
                let k = B64.decode(p["key"].as_str().unwrap()).unwrap();
                let v = B64.decode(p["value"].as_str().unwrap()).unwrap();
                self.data.insert(k, (v, next));
                wrote = true;
                responses.push(
                    json!({ "response_put": { "header": { "revision": next.to_string() } } }),
                );
            } else {
                panic!("unexpected request {op}");
            }
        }
        if wrote {
            self.rev = next;
        }
        let mut answer = json!({ "header": { "revision": self.rev.to_string() } });
        if ok {
            answer["succeeded"] = json!(true);
        }
        if !responses.is_empty() {
            answer["responses"] = Value::Array(responses);
        }
        answer.to_string()
    }
}

/// Whether a txn body is a commit (it compares) or a read (it does not).
fn is_commit(body: &Value) -> bool {
    body.get("compare").is_some()
}

// ---- encoding and decoding ----

#[test]
fn transactions_decode_and_encode_as_etcd_expects() {
    // The runner picks the kind from the workload's model.
    assert_eq!(DataKind::for_model("list-append"), DataKind::List);
    assert_eq!(DataKind::for_model("rw-register"), DataKind::RwRegister);
    assert_eq!(Shape::of(DataKind::List), Some(Shape::List));
    assert_eq!(Shape::of(DataKind::RwRegister), Some(Shape::Register));
    assert_eq!(Shape::of(DataKind::Set), None);
    let t = Txn::decode(
        "list-append",
        Shape::List,
        &json!([
            ["append", 1, 7],
            ["r", 1, null],
            ["r", "a", null],
            ["append", 1, 8]
        ]),
    )
    .unwrap();
    assert_eq!(
        t.keys,
        vec![json!(1), json!("a")],
        "keys once each, in order"
    );
    assert_eq!(
        t.etcd_keys,
        vec![
            b"/faultline/list-append/1".to_vec(),
            b"/faultline/list-append/\"a\"".to_vec()
        ]
    );
    assert!(!t.read_only());
    assert_eq!(t.mops[1], Mop::Read { key: 0 });

    // The read: ranges only, no compares, linearizable unless asked.
    let read = t.read_body(false);
    assert!(read.get("compare").is_none());
    assert_eq!(read["success"].as_array().unwrap().len(), 2);
    assert_eq!(
        decoded(&read["success"][1]["request_range"]["key"]),
        "/faultline/list-append/\"a\""
    );
    assert!(read["success"][0]["request_range"]
        .get("serializable")
        .is_none());
    assert_eq!(
        t.read_body(true)["success"][0]["request_range"]["serializable"],
        json!(true)
    );

    // Reads see the transaction's own earlier appends; key 1 is put once,
    // with its final list.
    let seen = vec![
        Seen {
            value: json!([3]),
            mod_revision: 12,
        },
        Seen {
            value: json!([]),
            mod_revision: 0,
        },
    ];
    let (done, puts) = t.apply(&seen);
    assert_eq!(
        done,
        json!([
            ["append", 1, 7],
            ["r", 1, [3, 7]],
            ["r", "a", []],
            ["append", 1, 8]
        ])
    );
    assert_eq!(puts, vec![(0, "[3,7,8]".to_string())]);

    // The commit compares every key read or written, absent ones at 0.
    let c = t.commit_body(&seen, &puts);
    let compare = c["compare"].as_array().unwrap();
    assert_eq!(compare.len(), 2);
    assert_eq!(compare[0]["target"], "MOD");
    assert_eq!(compare[0]["result"], "EQUAL");
    assert_eq!(compare[0]["mod_revision"], "12", "int64 as a string");
    assert_eq!(compare[1]["mod_revision"], "0");
    assert_eq!(decoded(&compare[1]["key"]), "/faultline/list-append/\"a\"");
    let success = c["success"].as_array().unwrap();
    assert_eq!(success.len(), 1);
    assert_eq!(
        decoded(&success[0]["request_put"]["key"]),
        "/faultline/list-append/1"
    );
    assert_eq!(decoded(&success[0]["request_put"]["value"]), "[3,7,8]");
    // A failed compare reads every key afresh, for the retry.
    assert_eq!(c["failure"], t.read_body(false)["success"]);

    // Registers: writes replace, an absent key reads null.
    let r = Txn::decode(
        "rw-register",
        Shape::Register,
        &json!([["r", 4, null], ["w", 4, 9], ["r", 4, null], ["r", 5, null]]),
    )
    .unwrap();
    let seen = vec![
        Seen {
            value: json!(2),
            mod_revision: 3,
        },
        Seen {
            value: Value::Null,
            mod_revision: 0,
        },
    ];
    let (done, puts) = r.apply(&seen);
    assert_eq!(
        done,
        json!([["r", 4, 2], ["w", 4, 9], ["r", 4, 9], ["r", 5, null]])
    );
    assert_eq!(puts, vec![(0, "9".to_string())]);
    let ro = Txn::decode("rw-register", Shape::Register, &json!([["r", 4, null]])).unwrap();
    assert!(ro.read_only());
}

#[test]
fn malformed_transactions_are_refused_before_sending() {
    let bad = [
        (Shape::List, json!(3), "list of micro-operations"),
        (Shape::List, json!([]), "at least one"),
        (Shape::List, json!([["r", 1]]), "expected [f, key, value]"),
        (Shape::List, json!([["w", 1, 2]]), "unknown micro-operation"),
        (
            Shape::Register,
            json!([["append", 1, 2]]),
            "unknown micro-operation",
        ),
        (
            Shape::List,
            json!([["append", 1, null]]),
            "null cannot be stored",
        ),
    ];
    for (shape, v, msg) in bad {
        let e = Txn::decode("w", shape, &v).unwrap_err();
        assert_eq!(e.class, ErrorClass::NotApplied, "{v}");
        assert!(e.message.contains(msg), "{v}: {}", e.message);
    }
}

#[test]
fn txn_answers_decode_with_omitted_fields() {
    let t = Txn::decode(
        "list-append",
        Shape::List,
        &json!([["r", 1, null], ["r", 2, null]]),
    )
    .unwrap();
    let mut store = Store::new();
    store.put("/faultline/list-append/1", "[5,6]");
    let text = store.txn(&t.read_body(false));
    let a: TxnAnswer = serde_json::from_str(&text).unwrap();
    assert!(a.succeeded);
    assert_eq!(a.header.revision, 2);
    let seen = t.seen("read", &a.responses).unwrap();
    assert_eq!(
        seen,
        vec![
            Seen {
                value: json!([5, 6]),
                mod_revision: 2
            },
            Seen {
                value: json!([]),
                mod_revision: 0
            }
        ]
    );

    // What etcd sends for a failed compare with an empty failure branch:
    // no `succeeded`, no `responses`.
    let a: TxnAnswer = serde_json::from_str(r#"{"header":{"revision":"9"}}"#).unwrap();
    assert!(!a.succeeded);
    let e = t.seen("read", &a.responses).unwrap_err();
    assert!(e.message.contains("0 range answers for 2 keys"), "{e:?}");

    // Answers that are not what was asked for are unknown.
    let wrong = json!([{ "response_put": {} }, { "response_range": {} }]);
    let a: TxnAnswer = serde_json::from_value(json!({ "responses": wrong })).unwrap();
    let e = t.seen("read", &a.responses).unwrap_err();
    assert_eq!(e.class, ErrorClass::Unknown);
    assert!(e.message.contains("not a range answer"), "{e:?}");
    let other_key = json!({ "response_range": { "kvs": [{ "key": b64(b"/x"), "value": b64(b"[]"), "mod_revision": "3" }] } });
    let a: TxnAnswer =
        serde_json::from_value(json!({ "responses": [other_key, { "response_range": {} }] }))
            .unwrap();
    assert!(t
        .seen("read", &a.responses)
        .unwrap_err()
        .message
        .contains("asked for"));
    let not_list = json!({ "response_range": { "kvs": [{ "key": b64(b"/faultline/list-append/1"),
                           "value": b64(b"7"), "mod_revision": "3" }] } });
    let a: TxnAnswer =
        serde_json::from_value(json!({ "responses": [not_list, { "response_range": {} }] }))
            .unwrap();
    assert!(t
        .seen("read", &a.responses)
        .unwrap_err()
        .message
        .contains("not a list"));
}

// ---- against a fake gateway ----

#[tokio::test]
async fn list_append_txns_read_compute_and_commit() {
    let store = Arc::new(Mutex::new(Store::new()));
    let s = Arc::clone(&store);
    let fake = Fake::start(move |path, body| match path {
        "/v3/kv/txn" => Reply::Json(200, s.lock().unwrap().txn(body)),
        _ => Reply::Json(404, "Not Found".into()),
    })
    .await;
    let mut c = fake.client(list_opts(2000)).await;

    let t1 = c
        .invoke(&txn_inv(json!([
            ["append", 1, 1],
            ["r", 1, null],
            ["r", 2, null]
        ])))
        .await;
    assert_eq!(
        t1,
        Completion::ok(json!([["append", 1, 1], ["r", 1, [1]], ["r", 2, []]]))
    );
    let t2 = c
        .invoke(&txn_inv(json!([
            ["append", 1, 2],
            ["append", 1, 3],
            ["r", 1, null]
        ])))
        .await;
    assert_eq!(
        t2,
        Completion::ok(json!([
            ["append", 1, 2],
            ["append", 1, 3],
            ["r", 1, [1, 2, 3]]
        ]))
    );
    let ro = c.invoke(&txn_inv(json!([["r", 1, null]]))).await;
    assert_eq!(ro, Completion::ok(json!([["r", 1, [1, 2, 3]]])));

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 5, "read + commit, read + commit, read");
    assert!(!is_commit(&reqs[0].2));
    let commit = &reqs[1].2;
    assert_eq!(
        commit["compare"][0]["mod_revision"], "0",
        "key 1 was absent"
    );
    assert_eq!(commit["compare"][1]["mod_revision"], "0");
    assert_eq!(
        commit["success"].as_array().unwrap().len(),
        1,
        "only key 1 written"
    );
    let commit = &reqs[3].2;
    assert_eq!(commit["compare"][0]["mod_revision"], "2", "as read");
    assert_eq!(
        decoded(&commit["success"][0]["request_put"]["value"]),
        "[1,2,3]"
    );
    assert!(!is_commit(&reqs[4].2), "a read-only txn only reads");
    assert!(reqs[4].1.to_ascii_lowercase().contains("grpc-timeout: "));

    // Serializable mode marks every range of a read-only txn.
    let mut s = fake
        .client(EtcdClientOptions {
            read_mode: ReadMode::Serializable,
            ..list_opts(2000)
        })
        .await;
    let ro = s
        .invoke(&txn_inv(json!([["r", 1, null], ["r", 3, null]])))
        .await;
    assert_eq!(
        ro,
        Completion::ok(json!([["r", 1, [1, 2, 3]], ["r", 3, []]]))
    );
    let last = &fake.requests()[5].2;
    for r in last["success"].as_array().unwrap() {
        assert_eq!(r["request_range"]["serializable"], json!(true));
    }

    // rw-register on the same mechanism.
    let mut rw = fake
        .client(EtcdClientOptions {
            workload: "rw-register".into(),
            kind: DataKind::RwRegister,
            ..opts(2000)
        })
        .await;
    let w = rw
        .invoke(&txn_inv(json!([
            ["r", 1, null],
            ["w", 1, 5],
            ["r", 1, null]
        ])))
        .await;
    assert_eq!(
        w,
        Completion::ok(json!([["r", 1, null], ["w", 1, 5], ["r", 1, 5]]))
    );
    let r = rw.invoke(&txn_inv(json!([["r", 1, null]]))).await;
    assert_eq!(r, Completion::ok(json!([["r", 1, 5]])));

    // A register client refuses txn; nothing is sent.
    let n = fake.requests().len();
    let mut reg = fake.client(opts(2000)).await;
    let f = reg.invoke(&txn_inv(json!([["r", 1, null]]))).await;
    assert_eq!(f.status, Status::Fail);
    assert!(f
        .error
        .unwrap()
        .to_string()
        .contains("list-append or rw-register"));
    let f = c.invoke(&txn_inv(json!([["w", 1, 1]]))).await;
    assert_eq!(f.status, Status::Fail);
    assert_eq!(fake.requests().len(), n);
}

#[tokio::test]
async fn a_key_changed_before_the_commit_is_retried_from_the_failure_reads() {
    // A concurrent writer appends 99 to key 1 just before each of the
    // first `interfere` commits lands.
    let store = Arc::new(Mutex::new(Store::new()));
    let interfere = Arc::new(Mutex::new(1usize));
    let (s, i) = (Arc::clone(&store), Arc::clone(&interfere));
    let fake = Fake::start(move |_, body| {
        let mut st = s.lock().unwrap();
        let mut left = i.lock().unwrap();
        if is_commit(body) && *left > 0 {
            *left -= 1;
            let key = "/faultline/list-append/1";
            let mut list: Vec<i64> = st
                .data
                .get(key.as_bytes())
                .map(|(v, _)| serde_json::from_slice(v).unwrap())
                .unwrap_or_default();
            list.push(99);
            st.put(key, &serde_json::to_string(&list).unwrap());
        }
        Reply::Json(200, st.txn(body))
    })
    .await;
    let mut c = fake.client(list_opts(2000)).await;
    let t = c
        .invoke(&txn_inv(json!([["r", 1, null], ["append", 1, 1]])))
        .await;
    // The first commit failed; the second used the failure branch's read.
    assert_eq!(t, Completion::ok(json!([["r", 1, [99]], ["append", 1, 1]])));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "read, failed commit, commit");
    assert_eq!(reqs[1].2["compare"][0]["mod_revision"], "0");
    assert_eq!(reqs[2].2["compare"][0]["mod_revision"], "2");
    assert_eq!(
        store.lock().unwrap().data[b"/faultline/list-append/1".as_slice()].0,
        b"[99,1]".to_vec()
    );

    // Always interfered with: `fail` after TXN_ATTEMPTS commits, none applied.
    *interfere.lock().unwrap() = usize::MAX;
    let before = fake.requests().len();
    let t = c.invoke(&txn_inv(json!([["append", 1, 2]]))).await;
    assert_eq!(t.status, Status::Fail, "{t:?}");
    assert!(t
        .error
        .unwrap()
        .to_string()
        .contains("changed between read and commit"));
    assert_eq!(t.value, json!([["append", 1, 2]]), "the invocation's value");
    assert_eq!(fake.requests().len() - before, 1 + TXN_ATTEMPTS);
    let stored = store.lock().unwrap().data[b"/faultline/list-append/1".as_slice()]
        .0
        .clone();
    assert!(!String::from_utf8(stored).unwrap().contains(",2"));
}

#[tokio::test]
async fn txn_outcomes_are_classified_by_stage() {
    // The first micro-operation's key picks the misbehaviour; `r:` acts on
    // the read, `c:` on the commit.
    let store = Arc::new(Mutex::new(Store::new()));
    let s = Arc::clone(&store);
    let fake = Fake::start(move |_, body| {
        let first = body["compare"][0]["key"]
            .as_str()
            .or(body["success"][0]["request_range"]["key"].as_str())
            .map(|k| String::from_utf8(B64.decode(k).unwrap()).unwrap())
            .unwrap_or_default();
        let tag = first.rsplit('/').next().unwrap_or("").trim_matches('"').to_string();
        let stage = if is_commit(body) { "c:" } else { "r:" };
        let Some(what) = tag.strip_prefix(stage) else {
            return Reply::Json(200, s.lock().unwrap().txn(body));
        };
        match what {
            "hang" => Reply::Hang,
            "close" => Reply::Close,
            "503" => Reply::Json(
                503,
                r#"{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}"#.into(),
            ),
            "400" => Reply::Json(
                400,
                r#"{"error":"etcdserver: duplicate key given in txn request","code":3}"#.into(),
            ),
            "garbage" => Reply::Json(200, "<html>".into()),
            "empty" => Reply::Json(200, "{}".into()),
            "bad-failure" => Reply::Json(200, r#"{"header":{"revision":"4"}}"#.into()),
            other => panic!("unknown tag {other}"),
        }
    })
    .await;
    let cases = [
        // Nothing is written before the commit: every read trouble is fail.
        ("r:hang", Status::Fail, "deadline"),
        ("r:close", Status::Fail, "nothing written"),
        ("r:503", Status::Fail, "code 14"),
        ("r:garbage", Status::Fail, "unparsable"),
        ("r:empty", Status::Fail, "without an etcd header"),
        // Once the commit is sent, only a refusal before proposal is fail.
        ("c:hang", Status::Info, "deadline"),
        ("c:close", Status::Info, ""),
        ("c:503", Status::Info, "code 14"),
        ("c:garbage", Status::Info, "unparsable"),
        ("c:empty", Status::Info, "without an etcd header"),
        ("c:400", Status::Fail, "code 3"),
        // A failed compare wrote nothing, whatever its reads look like.
        ("c:bad-failure", Status::Fail, "range answers"),
    ];
    for (tag, status, msg) in cases {
        let mut c = fake.client(list_opts(300)).await;
        let v = json!([["append", tag, 1], ["r", tag, null]]);
        let t = c.invoke(&txn_inv(v.clone())).await;
        assert_eq!(t.status, status, "{tag}: {t:?}");
        assert_eq!(t.value, v, "{tag}: the invocation's value, reads unknown");
        if !msg.is_empty() {
            let e = t.error.unwrap().to_string();
            assert!(e.contains(msg), "{tag}: {e}");
        }
        // The client is usable afterwards (an unknown outcome dropped its
        // connection; a fresh one is made).
        let ok = c.invoke(&txn_inv(json!([["append", 7, 1]]))).await;
        assert_eq!(ok.status, Status::Ok, "after {tag}: {ok:?}");
    }
    // A read-only transaction that hangs is fail: it has no effect.
    let mut c = fake.client(list_opts(300)).await;
    let t = c.invoke(&txn_inv(json!([["r", "r:hang", null]]))).await;
    assert_eq!(t.status, Status::Fail, "{t:?}");
}
