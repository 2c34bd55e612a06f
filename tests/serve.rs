//! `faultline serve` over fixture runs (made by `RunDir::create` and
//! `faultline analyze`): the list and its filters, a run's page, files,
//! the .tar.gz, traversal attempts, a taken port; and `faultline compare`
//! over the same runs.
#![cfg(all(feature = "cli", feature = "controller"))]

mod web_support;

use std::io::Read;
use std::process::Command;
use web_support::{bin, fixture, get, run_id, Server};

fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{hay}"))
}

#[test]
fn serve_lists_filters_shows_and_downloads_runs_and_refuses_traversal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("results");
    let fx = fixture(&root);
    // A secret outside the results directory, and links that lead to it.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("run")).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), "TOP SECRET").expect("write");
    std::fs::write(outside.join("run/test.json"), "{\"db\":\"evil\"}").expect("write");
    std::os::unix::fs::symlink(&outside, fx.append.join("nodes/escape")).expect("link");
    std::os::unix::fs::symlink(&outside, root.join("evil-test")).expect("link");
    let srv = Server::start(&root);
    let a = &srv.addr;

    // The list: every run, newest first, verdicts colored.
    let r = get(a, "/");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(
        html.contains("4 of 4 runs"),
        "the linked folder outside must not count:\n{html}"
    );
    let bad = pos(&html, &run_id(&fx.register_bad));
    let set = pos(&html, &run_id(&fx.set));
    let append = pos(&html, &run_id(&fx.append));
    let ok = pos(&html, &run_id(&fx.register_ok));
    assert!(bad < set && set < append && append < ok, "not newest first");
    assert!(html.contains("<span class=\"verdict invalid\">invalid</span>"));
    assert!(html.contains("<span class=\"verdict valid\">valid</span>"));
    assert!(
        html.contains("linearizable (invalid)"),
        "failing checker shown"
    );
    assert!(!html.contains("evil"), "{html}");
    // Durations and op counts come from the history.
    assert!(html.contains("<td class=\"num\">1.5 s</td>"), "{html}");

    // Filters, as plain query parameters.
    let html = get(a, "/?verdict=invalid").text();
    assert!(html.contains("3 of 4 runs"), "{html}");
    assert!(!html.contains(&run_id(&fx.register_ok)));
    let html = get(a, "/?name=POSTGRES&verdict=").text();
    assert!(html.contains("1 of 4 runs"), "{html}");
    assert!(html.contains(&run_id(&fx.append)));
    let html = get(a, "/?name=etcd&verdict=valid").text();
    assert!(
        html.contains("1 of 4 runs") && html.contains(&run_id(&fx.register_ok)),
        "{html}"
    );
    let html = get(a, "/?name=nothing-like-this").text();
    assert!(html.contains("No runs match."));

    // JSON.
    let list: serde_json::Value = serde_json::from_slice(&get(a, "/runs.json").body).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(4));
    assert_eq!(list[0]["verdict"], "invalid");
    assert_eq!(list[0]["ops"], 2);

    // A run's page: checkers, anomalies, files, download link.
    let page = format!("/runs/{}/", run_id(&fx.append));
    let r = get(a, &page);
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("G2-item"), "{html}");
    assert!(
        html.contains("<iframe class=\"report\" id=\"report\" title=\"report\" src=\"/runs/"),
        "report.html is not framed:\n{html}"
    );
    for f in [
        "test.json",
        "history.jsonl",
        "results.json",
        "faultline.log",
        "nodes/n1/db.log",
    ] {
        assert!(
            html.contains(&format!(">{f}</a>")),
            "{f} not listed:\n{html}"
        );
    }
    assert!(
        !html.contains("secret"),
        "a link outside is listed:\n{html}"
    );
    assert!(html.contains("download.tar.gz"));
    // Without the trailing slash: a redirect; through `latest`: the run.
    let r = get(a, page.trim_end_matches('/'));
    assert_eq!(r.status, 308);
    let r = get(a, "/runs/etcd-register-partition/latest/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("nonlinearizable"));

    // A file, viewed and downloaded.
    let r = get(a, &format!("{page}files/history.jsonl"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), web_support::WRITE_SKEW);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = get(a, &format!("{page}files/nodes/n1/db.log?download=1"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"db.log\"")
    );

    // The whole run as .tar.gz.
    let r = get(a, &format!("{page}download.tar.gz"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    let mut entries = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&r.body[..]));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut text = String::new();
        if e.header().entry_type().is_file() {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).expect("read entry");
            text = String::from_utf8_lossy(&bytes).into_owned();
        } else if e.header().entry_type().is_symlink() {
            text = "<symlink>".into();
        }
        entries.insert(path, text);
    }
    let prefix = run_id(&fx.append).replace('/', "-");
    assert_eq!(
        entries
            .get(&format!("{prefix}/history.jsonl"))
            .map(String::as_str),
        Some(web_support::WRITE_SKEW)
    );
    for f in [
        "results.json",
        "report.html",
        "timeline.html",
        "anomalies.html",
    ] {
        assert!(
            entries.contains_key(&format!("{prefix}/{f}")),
            "{f} not in the archive"
        );
    }
    assert_eq!(
        entries
            .get(&format!("{prefix}/nodes/n1/db.log"))
            .map(String::as_str),
        Some("node log line\n")
    );
    // The link outside is stored as a link; the secret is not in the archive.
    assert_eq!(
        entries
            .get(&format!("{prefix}/nodes/escape"))
            .map(String::as_str),
        Some("<symlink>")
    );
    assert!(!entries.values().any(|t| t.contains("TOP SECRET")));

    // Traversal, however spelled: 400 or 404, never the file.
    let files = format!("{page}files");
    for (path, want) in [
        ("/runs/../../etc/passwd".to_string(), 404),
        ("/runs/%2e%2e/%2e%2e/".to_string(), 400),
        ("/runs/%2E%2E/etc/".to_string(), 400),
        (format!("{files}/%2e%2e/%2e%2e/%2e%2e/etc/passwd"), 400),
        (format!("{files}/..%2f..%2f..%2fetc%2fpasswd"), 400),
        (format!("{files}/%2fetc%2fpasswd"), 400),
        (format!("{files}/nodes/..%5c..%5cx"), 400),
        (format!("{files}/nodes/escape/secret.txt"), 404),
        ("/runs/evil-test/run/".to_string(), 404),
        ("/runs/evil-test/run/files/test.json".to_string(), 404),
        ("/runs/etcd-set-kill/no-such-run/".to_string(), 404),
        (format!("{files}/no-such-file"), 404),
        (format!("{files}/nodes"), 404),
    ] {
        let r = get(a, &path);
        assert_eq!(r.status, want, "{path}: {}", r.text());
        assert!(
            !r.text().contains("TOP SECRET") && !r.text().contains("root:"),
            "{path} leaked"
        );
    }
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = Command::new(bin())
        .args(["serve", "--port", &port.to_string(), "--results"])
        .arg(tmp.path())
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port}: the port is already in use"
        )),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["serve", "--results"])
        .arg(tmp.path().join("missing"))
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn compare_tables_the_newest_run_of_each_combination() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("results");
    let fx = fixture(&root);
    let out_dir = tmp.path().join("cmp");
    let out = Command::new(bin())
        .args(["compare", "--results"])
        .arg(&root)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("3 combinations, 0 valid, 3 invalid"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out_dir.join("compare.md")).expect("compare.md");
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| db"))
        .collect();
    assert_eq!(rows.len(), 3, "{md}");
    // Sorted by db, workload, nemesis; the newest register run (invalid)
    // stands for its combination; links lead to each run from the table's folder.
    let link = |dir: &std::path::Path| format!("../results/{}/", run_id(dir));
    assert!(rows[0].starts_with("| etcd | register | partition | **invalid** |  |  | nonlinearizable | linearizable (invalid) | 2 |"), "{}", rows[0]);
    assert!(rows[0].contains(&link(&fx.register_bad)), "{}", rows[0]);
    assert!(
        rows[1].starts_with("| etcd | set | kill | **invalid** |  |  | lost | set (invalid) |"),
        "{}",
        rows[1]
    );
    assert!(rows[1].contains(&link(&fx.set)));
    assert!(
        rows[2].starts_with(
            "| postgres | list-append | none | **invalid** |  |  | G2-item | txn (invalid) |"
        ),
        "{}",
        rows[2]
    );
    assert!(rows[2].contains(&link(&fx.append)));
    // Each link resolves to a file of the run.
    for row in &rows {
        let target = row
            .rsplit("](")
            .next()
            .and_then(|s| s.split(')').next())
            .expect("link");
        assert!(out_dir.join(target).is_file(), "{target} does not exist");
    }
    let html = std::fs::read_to_string(out_dir.join("compare.html")).expect("compare.html");
    assert_eq!(html.matches("<tr class=\"combo\"").count(), 3);
    assert!(html.contains("(newest of 2)"));

    // A grid given on every axis lists the combinations never run.
    let out = Command::new(bin())
        .args([
            "compare",
            "--db",
            "etcd,redis",
            "--workload",
            "register",
            "--nemesis",
            "partition",
            "--link-base",
            "http://h:1",
            "--results",
        ])
        .arg(&root)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run compare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 combinations, 0 valid, 1 invalid, 1 not run"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out_dir.join("compare.md")).expect("compare.md");
    assert!(
        md.contains("| redis | register | partition | not run |"),
        "{md}"
    );
    assert!(
        md.contains(&format!("(http://h:1/runs/{}/)", run_id(&fx.register_bad))),
        "{md}"
    );

    // The same table from the server.
    let srv = Server::start(&root);
    let r = get(&srv.addr, "/compare?db=etcd&nemesis=kill");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert_eq!(html.matches("<tr class=\"combo\"").count(), 1, "{html}");
    assert!(
        html.contains(&format!("href=\"/runs/{}/\"", run_id(&fx.set))),
        "{html}"
    );
}

#[test]
fn compare_run_goes_through_faultline_run_and_reports_what_could_not_run() {
    // A db no run accepts: `faultline run`'s own validation refuses it before
    // any cluster is touched; the refusal is recorded and the table says so.
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("results");
    let out_dir = tmp.path().join("cmp");
    let out = Command::new(bin())
        .args([
            "compare",
            "--run",
            "--db",
            "no-such-db",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--time-limit",
            "1",
            "--results",
        ])
        .arg(&root)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[1/1] faultline run --db no-such-db --workload register --nemesis none"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: unknown db \"no-such-db\""),
        "{stderr}"
    );
    let md = std::fs::read_to_string(out_dir.join("compare.md")).expect("compare.md");
    assert!(
        md.contains("| no-such-db | register | none | **refused** |  | unknown db \"no-such-db\""),
        "{md}"
    );
    // The refusal counts as tried: a second --run runs nothing, and the
    // matrix shows it with its reason as a note.
    let out = Command::new(bin())
        .args([
            "compare",
            "--run",
            "--matrix",
            "--db",
            "no-such-db",
            "--workload",
            "register",
            "--nemesis",
            "none",
            "--results",
        ])
        .arg(&root)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run compare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("0 combinations to run"), "{stderr}");
    let md = std::fs::read_to_string(out_dir.join("compare.md")).expect("compare.md");
    assert!(md.contains("| none | **refused** (1) |"), "{md}");
    assert!(md.contains("\n1. unknown db \"no-such-db\""), "{md}");
    // --run needs dbs and nemeses.
    let out = Command::new(bin())
        .args(["compare", "--run", "--db", "etcd", "--results"])
        .arg(&root)
        .output()
        .expect("run compare");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--run needs --db and --nemesis"));
}
