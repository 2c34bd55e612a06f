//! Db files: templates, variables, and the errors a user sees.

use super::*;
use std::path::PathBuf;

const GOOD: &str = r#"
name = "kv"
port = 2379
member = "{node}=http://{ip}:{peer_port}"
install = "command -v kvd"
daemon = "kvd --name {node} --data {dir}/data --peers {initial_cluster} --listen {ip}:{port}"
health = "kvctl --endpoints {endpoints} health"
primaries = "kvctl leader | awk '{print $1}'"
logs = ["{dir}/extra.log"]
client = "{here}/client.sh {node} {ip} {token}"

[vars]
peer_port = "2380"
token = "t-{name}"
"#;

fn parse(text: &str) -> Result<FileDbSpec, FileDbError> {
    FileDbSpec::parse(text, Path::new("/tmp/x/kv.toml"))
}

fn members() -> Vec<(String, String, String)> {
    (1..=3)
        .map(|i| (format!("n{i}"), format!("10.0.0.{i}"), format!("/w/n{i}")))
        .collect()
}

#[test]
fn templates_expand_with_builtin_and_user_variables() {
    let spec = parse(GOOD).expect("good file");
    assert_eq!(spec.name, "kv");
    let vars = spec.vars_for(&members()).expect("vars");
    let v = &vars[1];
    assert_eq!(v.get("dir"), Some("/w/n2/kv"));
    assert_eq!(v.get("log"), Some("/w/n2/kv/kv.log"));
    assert_eq!(v.get("nodes"), Some("n1,n2,n3"));
    assert_eq!(
        v.get("endpoints"),
        Some("10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379")
    );
    assert_eq!(v.get("token"), Some("t-kv"));
    let daemon = spec
        .daemon
        .as_ref()
        .expect("daemon")
        .expand(v)
        .expect("expand");
    assert_eq!(
        daemon,
        "kvd --name n2 --data /w/n2/kv/data --peers \
         n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380 \
         --listen 10.0.0.2:2379"
    );
    // `{print $1}` is not a variable: literal text.
    let p = spec
        .primaries
        .as_ref()
        .expect("primaries")
        .expand(v)
        .expect("expand");
    assert_eq!(p, "kvctl leader | awk '{print $1}'");
    let c = spec
        .client
        .as_ref()
        .expect("client")
        .expand(v)
        .expect("expand");
    assert!(c.ends_with("/client.sh n2 10.0.0.2 t-kv"), "{c}");
}

#[test]
fn braces_escape_and_shell_groups_stay_literal() {
    let t = Template::parse("t", "echo {{node}} {node} { true; } ${{HOME}} {}");
    assert_eq!(t.vars(), vec!["node"]);
    let mut v = Vars::default();
    v.set("node", "n1");
    assert_eq!(
        t.expand(&v).expect("expand"),
        "echo {node} n1 { true; } ${HOME} {}"
    );
    let unknown = Template::parse("start", "x {nope}");
    assert_eq!(
        unknown.expand(&v),
        Err("start: unknown variable {nope}".to_string())
    );
}

#[test]
fn an_unknown_variable_is_named_with_its_line_and_column() {
    let text = "daemon = \"kvd\"\nhealth = \"kvctl --host {ip} --tok {tokn}\"\n";
    let e = parse(text).expect_err("unknown variable");
    assert_eq!((e.line, e.column), (Some(2), Some(35)), "{e}");
    assert!(e.message.contains("health: unknown variable {tokn}"), "{e}");
    assert!(
        e.message.contains("{initial_cluster}"),
        "lists what is known: {e}"
    );
    assert!(e.to_string().starts_with("/tmp/x/kv.toml:2:35: "), "{e}");

    // `${HOME}` looks like a variable: the message says how to escape.
    let e = parse("daemon = \"kvd\"\nhealth = \"test -d ${HOME}\"\n").expect_err("HOME");
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("{HOME}") && e.message.contains("literal braces"),
        "{e}"
    );

    // [vars] may use only built-in variables.
    let e = parse("daemon = \"kvd\"\nhealth = \"true\"\n[vars]\na = \"1\"\nb = \"{a}\"\n")
        .expect_err("var in var");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("vars.b: unknown variable {a}"), "{e}");

    // member and dir have their own, smaller sets.
    let e = parse("daemon = \"kvd\"\nhealth = \"true\"\nmember = \"{node}={dir}\"\n")
        .expect_err("member");
    assert_eq!((e.line, e.column), (Some(3), Some(18)), "{e}");
}

#[test]
fn toml_mistakes_give_file_line_column_and_what_was_expected() {
    // Syntax.
    let e = parse("daemon = \"kvd\"\nhealth = true true\n").expect_err("syntax");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.column.is_some(), "{e}");
    // A wrong type.
    let e = parse("daemon = \"kvd\"\nhealth = 3\n").expect_err("type");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("string"), "{e}");
    // A misspelt field: toml lists the expected ones.
    let e = parse("daemon = \"kvd\"\nhealth = \"true\"\nhelth = \"x\"\n").expect_err("field");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("unknown field `helth`"), "{e}");
    assert!(e.message.contains("health"), "{e}");
    // A bad port.
    let e = parse("port = 70000\ndaemon = \"kvd\"\nhealth = \"true\"\n").expect_err("port");
    assert_eq!((e.line, e.column), (Some(1), Some(8)), "{e}");
    assert!(e.message.contains("1 to 65535"), "{e}");
}

#[test]
fn the_lifecycle_must_be_complete_and_unambiguous() {
    let e = parse("health = \"true\"\nstart = \"x &\"\n").expect_err("no kill");
    assert!(e.message.contains("missing kill, running"), "{e}");
    assert_eq!(e.line, None);
    let e = parse("daemon = \"kvd\"\n").expect_err("no health");
    assert!(e.message.contains("missing health"), "{e}");
    let e = parse("daemon = \"kvd\"\nhealth = \"true\"\nkill = \"pkill kvd\"\n").expect_err("both");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(
        e.message.contains("kill: not used with `daemon` (line 1)"),
        "{e}"
    );
    let e = parse("daemon = \"kvd\"\nhealth = \"\"\n").expect_err("empty");
    assert!(e.message.contains("expected a command"), "{e}");
    let e =
        parse("daemon = \"kvd\"\nhealth = \"true\"\n[vars]\nnode = \"x\"\n").expect_err("shadow");
    assert!(e.message.contains("built-in variable"), "{e}");
    // Without daemon: start, kill and running are enough.
    let s = parse("health = \"true\"\nstart = \"a &\"\nkill = \"b\"\nrunning = \"c\"\n")
        .expect("explicit lifecycle");
    assert!(s.daemon.is_none() && s.stop.is_none());
    assert_eq!(s.name, "kv", "the name defaults to the file's stem");
}

#[test]
fn client_flags_are_checked_against_the_files_variables() {
    let spec = parse(GOOD).expect("good file");
    assert!(spec.client_template("prog {node} {token}").is_ok());
    let e = spec.client_template("prog {nod}").expect_err("unknown");
    assert!(e.contains("unknown variable {nod}"), "{e}");
    assert_eq!(db_file_path("file:dbs/x"), Some(PathBuf::from("dbs/x")));
    assert_eq!(db_file_path("a/b.toml"), Some(PathBuf::from("a/b.toml")));
    assert_eq!(db_file_path("etcd"), None);
}

#[test]
fn the_example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/etcd.toml");
    let spec = FileDbSpec::load(&path).expect("the example loads");
    assert_eq!(spec.name, "etcd");
    assert!(spec.client.is_some());
    let vars = spec.vars_for(&members()).expect("vars");
    let d = spec
        .daemon
        .as_ref()
        .expect("daemon")
        .expand(&vars[0])
        .expect("expand");
    assert!(
        d.contains("--initial-cluster n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380"),
        "{d}"
    );
}

#[test]
fn the_example_names_its_packages_and_installs_nothing_from_a_node() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/etcd-files/etcd.toml");
    let spec = FileDbSpec::load(&path).expect("the example loads");
    assert_eq!(spec.packages, vec!["etcd-server", "etcd-client"]);
    // Nodes of the local cluster have no DNS: apt-get inside one can only
    // time out, so the example leaves installing to the controller.
    let text = std::fs::read_to_string(&path).expect("example");
    assert!(!text.contains("apt-get install"), "{text}");
}

#[test]
fn packages_must_be_debian_package_names() {
    let good = GOOD.replace(
        "install = ",
        "packages = [\"etcd-server\", \"g++\"]\ninstall = ",
    );
    assert_eq!(
        parse(&good).expect("good").packages,
        vec!["etcd-server", "g++"]
    );
    let bad = GOOD.replace("install = ", "packages = [\"etcd; rm -rf /\"]\ninstall = ");
    let e = parse(&bad).expect_err("refused").to_string();
    assert!(
        e.contains("kv.toml:5:") && e.contains("\"etcd; rm -rf /\" is not a Debian package name"),
        "{e}"
    );
}
