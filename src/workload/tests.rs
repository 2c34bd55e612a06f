//! Tests of workload files: the shipped ones load and generate what they
//! say; every mistake is reported with file, line and field.

use super::*;
use crate::generator::simulate;

fn parse(text: &str) -> Result<Workload, WorkloadError> {
    Workload::parse(text, Path::new("workloads/test.toml"))
}

fn shipped(name: &str) -> Workload {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    Workload::find(name, &dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_register_workload_loads() {
    let w = shipped("register");
    assert_eq!(w.name, "register");
    assert_eq!(w.model, "cas-register");
    assert_eq!(
        w.ops,
        vec![("cas".into(), 1), ("read".into(), 2), ("write".into(), 1)]
    );
    assert_eq!(
        w.keys,
        Some(Keys::Independent {
            count: None,
            ops_per_key: 200,
            in_flight: 4,
            max_concurrency: Some(5)
        })
    );
    assert_eq!(w.values, DistSpec::Uniform { count: 5 });
    assert!(w.checkers.contains(&"linearizable".to_string()));
}

#[test]
fn shipped_set_workload_adds_unique_values_then_reads_on_every_worker() {
    let w = shipped("set");
    let mut g = w.generator(
        1,
        GenOptions {
            rate: None,
            time_limit_ns: Some(1_000),
        },
    );
    let ops = simulate(&mut g, 3, 10, 10_000);
    let adds: Vec<u64> = ops
        .iter()
        .filter(|o| o.f == "add")
        .filter_map(|o| o.value.as_u64())
        .collect();
    assert_eq!(
        adds,
        (0..adds.len() as u64).collect::<Vec<_>>(),
        "adds are 0, 1, 2, ..."
    );
    assert!(!adds.is_empty());
    let reads: Vec<&OpSpec> = ops.iter().filter(|o| o.f == "read").collect();
    assert_eq!(reads.len(), 3, "one final read per worker");
    assert!(
        ops.iter().rev().take(3).all(|o| o.f == "read"),
        "reads come last"
    );
}

#[test]
fn same_seed_same_ops_other_seed_other_ops() {
    let w = shipped("register");
    let run = |seed| {
        let mut g = w.generator(seed, GenOptions::default());
        simulate(&mut g, 10, 1, 5_000)
    };
    let a = run(42);
    assert_eq!(a.len(), 5_000);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    // Keys are independent and bounded: no key gets more than 200 ops.
    let mut per_key = std::collections::HashMap::new();
    for op in &a {
        *per_key.entry(op.key.clone().expect("keyed")).or_insert(0) += 1;
    }
    assert!(per_key.values().all(|n| *n <= 200));
    assert!(per_key.len() >= 25, "5000 ops over 200-op keys");
}

#[test]
fn rate_and_time_limit_bound_the_main_phase() {
    let w = shipped("register");
    // 100 ops/s for 2 s of virtual time.
    let mut g = w.generator(
        5,
        GenOptions {
            rate: Some(100.0),
            time_limit_ns: Some(2_000_000_000),
        },
    );
    let n = simulate(&mut g, 5, 1_000, 100_000).len();
    assert!((180..=220).contains(&n), "{n}");
}

#[test]
fn shared_keys_draw_from_the_key_distribution() {
    let w = parse(
        "model = \"register\"\n[ops]\nread = 1\nwrite = 1\n[keys]\ndistribution = \"zipf\"\ncount = 10\nexponent = 2.0\n",
    )
    .expect("parse");
    let mut g = w.generator(3, GenOptions::default());
    let ops = simulate(&mut g, 4, 1, 2_000);
    let zeros = ops.iter().filter(|o| o.key == Some(json!(0))).count();
    assert!(ops.iter().all(|o| o
        .key
        .as_ref()
        .and_then(Value::as_u64)
        .is_some_and(|k| k < 10)));
    assert!(
        zeros > 1_000,
        "zipf s=2 over 10 keys puts ~65% on key 0, got {zeros}"
    );
}

/// Asserts `text` is refused at `line`, naming `field`, with `words` in
/// the message.
fn refused(text: &str, line: usize, field: &str, words: &str) {
    let e = parse(text).expect_err("should be refused");
    assert_eq!(e.file, Path::new("workloads/test.toml"));
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.field.as_deref(), Some(field), "{e}");
    assert!(e.message.contains(words), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("workloads/test.toml:{line}: field `{field}`")),
        "{shown}"
    );
}

const BASE: &str = "model = \"cas-register\"\n[ops]\nread = 1\n";

#[test]
fn unknown_fields_are_refused_with_their_line() {
    refused(
        "model = \"cas-register\"\nmodle = 1\n[ops]\nread = 1\n",
        2,
        "modle",
        "unknown field",
    );
    refused(
        &format!("{BASE}[keys]\ndistribution = \"independent\"\nin_fligth = 3\n"),
        6,
        "keys.in_fligth",
        "unknown field",
    );
    refused(
        &format!("{BASE}[valuez]\ncount = 3\n"),
        4,
        "valuez",
        "unknown field",
    );
}

#[test]
fn bad_values_are_refused_with_their_line_and_field() {
    refused(
        "model = \"linearizable\"\n[ops]\nread = 1\n",
        1,
        "model",
        "unknown model",
    );
    refused(
        "model = \"cas-register\"\n[ops]\nread = 1\nadd = 1\n",
        4,
        "ops.add",
        "no function \"add\"",
    );
    refused(
        "model = \"cas-register\"\n[ops]\nread = -2\n",
        3,
        "ops.read",
        "weight",
    );
    refused(
        "model = \"cas-register\"\n[ops]\nread = 0\n",
        2,
        "ops",
        "positive weight",
    );
    refused(
        &format!("{BASE}[keys]\ndistribution = \"independent\"\nin_flight = 0\n"),
        6,
        "keys.in_flight",
        "from 1",
    );
    refused(
        &format!("{BASE}[keys]\ndistribution = \"random\"\n"),
        5,
        "keys.distribution",
        "unknown key distribution",
    );
    refused(
        &format!("{BASE}[keys]\ndistribution = \"uniform\"\ncount = 3\nops_per_key = 3\n"),
        7,
        "keys.ops_per_key",
        "does not apply",
    );
    refused(
        &format!("{BASE}[values]\ndistribution = \"uniform\"\n"),
        5,
        "values.distribution",
        "needs `count`",
    );
    refused(
        &format!("{BASE}[values]\ndistribution = \"zipf\"\ncount = 3\nexponent = -1.0\n"),
        7,
        "values.exponent",
        "≥ 0",
    );
    refused(
        &format!("{BASE}[values]\ndistribution = \"uniform\"\ncount = \"five\"\n"),
        6,
        "values.count",
        "invalid type",
    );
    refused(
        "model = \"cas-register\"\ncheckers = [\"linear\"]\n[ops]\nread = 1\n",
        2,
        "checkers",
        "unknown checker",
    );
    refused(
        &format!("{BASE}[keys]\ndistribution = \"independent\"\n[final]\nops = [\"read\"]\n"),
        6,
        "final",
        "without [keys]",
    );
}

#[test]
fn missing_file_and_missing_model_are_reported() {
    let e = Workload::load(Path::new("/nonexistent/w.toml")).expect_err("missing");
    assert!(e.to_string().contains("cannot read"));
    let e = parse("[ops]\nread = 1\n").expect_err("no model");
    assert!(e.message.contains("model"), "{e}");
}

#[test]
fn shipped_classic_workloads_load_and_generate_their_functions() {
    for (name, fs) in [
        ("bank", &["read", "transfer"][..]),
        ("counter", &["add", "read"][..]),
        ("unique-ids", &["generate"][..]),
        ("queue", &["dequeue", "enqueue"][..]),
        ("long-fork", &["txn"][..]),
    ] {
        let w = shipped(name);
        assert_eq!(w.model, name);
        assert_eq!(w.checkers, vec![name.to_string(), "stats".into()]);
        let ops = simulate(&mut *w.main_generator(9), 4, 1, 400);
        assert_eq!(ops.len(), 400, "{name}");
        let mut seen: Vec<&str> = ops.iter().map(|o| o.f.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, fs, "{name}");
        for o in &ops {
            match o.f.as_str() {
                "read" | "dequeue" | "generate" => assert!(o.value.is_null(), "{name} {o:?}"),
                "transfer" => assert!(o.value["amount"].as_i64().is_some_and(|a| a >= 1)),
                "add" => assert!(o.value.as_u64().is_some_and(|a| a <= 5)),
                "enqueue" => assert!(o.value.as_u64().is_some()),
                _ => assert!(o.value.as_array().is_some_and(|m| !m.is_empty())),
            }
        }
    }
    let q = shipped("queue");
    assert_eq!(q.final_ops, vec!["drain"]);
    let b = shipped("bank");
    assert_eq!(b.bank, Some(BankSpec::default()));
    assert_eq!(b.classic_options().bank.total, Some(100));
    assert_eq!(
        shipped("long-fork").long_fork,
        Some(LongForkSpec::default())
    );
}

#[test]
fn classic_tables_are_validated_and_refused_elsewhere() {
    let e = parse("model = \"bank\"\n[ops]\ntransfer = 1\n[bank]\naccounts = 1\n").unwrap_err();
    assert_eq!(e.line, Some(5));
    assert_eq!(e.field.as_deref(), Some("bank.accounts"));
    assert_eq!(e.message, "must be from 2 to 100000, got 1");
    let e = parse("model = \"counter\"\n[ops]\nadd = 1\n[bank]\naccounts = 3\n").unwrap_err();
    assert_eq!(e.message, "[bank] applies to the model bank only");
    let e = parse("model = \"long-fork\"\n[ops]\ntxn = 1\n[long_fork]\nread_fraction = 2.0\n")
        .unwrap_err();
    assert_eq!(e.message, "must be a number from 0 to 1, got 2");
    let e = parse(
        "model = \"bank\"\n[ops]\ntransfer = 1\n[keys]\ndistribution = \"uniform\"\ncount = 3\n",
    )
    .unwrap_err();
    assert_eq!(e.message, "model bank draws its own keys: remove [keys]");
    let e = parse("model = \"queue\"\n[ops]\npush = 1\n").unwrap_err();
    assert_eq!(
        e.message,
        "model queue has no function \"push\"; it takes enqueue, dequeue, drain"
    );
    let w = parse(
        "model = \"bank\"\n[ops]\ntransfer = 1\n[bank]\ntotal = 7\nnegative_balances = true\n",
    )
    .unwrap();
    assert_eq!(
        w.classic_options().bank,
        crate::check::bank::BankOptions {
            total: Some(7),
            negative_balances: true
        }
    );
}

#[test]
fn an_unknown_workload_name_lists_the_shipped_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
    let e = Workload::find("bogus", &dir).unwrap_err();
    assert_eq!(e.line, None);
    assert!(
        e.message
            .starts_with("unknown workload \"bogus\": expected one of ")
            && e.message.contains("list-append")
            && e.message.contains("register")
            && e.message.contains("set"),
        "{e}"
    );
    // Every name it lists loads.
    for name in Workload::names(&dir) {
        Workload::find(&name, &dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn shipped_lock_set_workload_cycles_acquire_add_release_with_its_lease() {
    let w = shipped("lock-set");
    assert_eq!(w.model, "mutex");
    assert_eq!(w.checkers, ["lock-set", "linearizable", "stats"]);
    assert_eq!(
        w.lock,
        Some(LockSpec {
            ttl_s: 2,
            max_sleep_ms: 1000,
            acquire_timeout_s: 20,
        })
    );
    assert_eq!(w.final_ops, vec!["read"]);
    // One worker, every operation ok: acquire, add 0, release, acquire, ...
    let ops = crate::generator::simulate(&mut *w.main_generator(1), 1, 1_000, 7);
    let fs: Vec<(&str, Value)> = ops
        .iter()
        .map(|o| (o.f.as_str(), o.value.clone()))
        .collect();
    assert_eq!(
        fs,
        [
            ("acquire", Value::Null),
            ("add", json!(0)),
            ("release", Value::Null),
            ("acquire", Value::Null),
            ("add", json!(1)),
            ("release", Value::Null),
            ("acquire", Value::Null),
        ]
    );
}

#[test]
fn lock_tables_are_validated_and_refused_elsewhere() {
    let e = parse("model = \"mutex\"\n[ops]\nadd = 1\n[lock]\nttl_s = 0\n").unwrap_err();
    assert_eq!(e.line, Some(5));
    assert_eq!(e.field.as_deref(), Some("lock.ttl_s"));
    assert_eq!(e.message, "must be from 1 to 3600, got 0");
    let e = parse("model = \"set\"\n[ops]\nadd = 1\n[lock]\nttl_s = 3\n").unwrap_err();
    assert_eq!(e.message, "[lock] applies to the model mutex only");
    let e = parse("model = \"mutex\"\n[ops]\nacquire = 1\n").unwrap_err();
    assert_eq!(
        e.message,
        "model mutex has no function \"acquire\"; it takes add, read"
    );
    let w = parse("model = \"mutex\"\n[ops]\nadd = 1\n[lock]\nmax_sleep_ms = 0\n").unwrap();
    assert_eq!(w.lock.map(|l| (l.ttl_s, l.max_sleep_ms)), Some((2, 0)));
    let e =
        parse("model = \"mutex\"\n[ops]\nadd = 1\n[lock]\nacquire_timeout_s = 0\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("lock.acquire_timeout_s"));
}

/// At the time limit a lock workload's main phase does not stop mid-hold:
/// every acquire is followed by its release before the final reads, so
/// no acquire is left waiting behind a holder that stopped.
#[test]
fn a_lock_workload_releases_every_hold_before_its_main_phase_ends() {
    let w = shipped("lock-set");
    for tick in [7, 10, 13] {
        let mut g = w.generator(
            1,
            GenOptions {
                rate: None,
                time_limit_ns: Some(1_000),
            },
        );
        let ops = simulate(&mut g, 3, tick, 10_000);
        let main: Vec<&str> = ops
            .iter()
            .map(|o| o.f.as_str())
            .take_while(|f| *f != "read")
            .collect();
        let count = |f: &str| main.iter().filter(|g| **g == f).count();
        assert!(count("acquire") > 3, "tick {tick}: {main:?}");
        assert_eq!(count("acquire"), count("release"), "tick {tick}: {main:?}");
        assert_eq!(main.last(), Some(&"release"), "tick {tick}");
        // Then each worker reads the set once.
        assert_eq!(ops.len() - main.len(), 3, "tick {tick}");
    }
}
