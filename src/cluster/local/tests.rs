use super::*;

#[test]
fn names_and_validation() {
    assert!(is_ours("fl-n1", "fl", "n"));
    assert!(is_ours("fl-n12", "fl", "n"));
    assert!(!is_ours("fl-n", "fl", "n"));
    assert!(!is_ours("flx-n1", "fl", "n"));
    assert!(!is_ours("fl-n1x", "fl", "n"));
    assert!(!is_ours("fl-v1", "fl", "n"));
    let mut spec = LocalSpec {
        state_dir: "/nonexistent".into(),
        ..LocalSpec::default()
    };
    assert!(validate(&spec).is_ok());
    spec.prefix = "Bad-Prefix".into();
    assert!(validate(&spec).is_err());
    spec.prefix = "fl".into();
    spec.nodes = 0;
    assert!(validate(&spec).is_err());
    spec.nodes = 3;
    spec.subnet = "10.77.0.0/29".parse().unwrap();
    let e = validate(&spec).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn plan_names_fit_interface_limits() {
    let spec = LocalSpec {
        nodes: 200,
        prefix: "abcdefgh".into(),
        state_dir: "/nonexistent".into(),
        ..LocalSpec::default()
    };
    let st = plan(&spec).unwrap();
    assert_eq!(st.bridge_ip, Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(st.nodes[0].ip, Ipv4Addr::new(10, 77, 0, 11));
    for n in &st.nodes {
        assert!(n.veth.len() <= 15 && n.netns.len() <= 15, "{}", n.veth);
    }
    assert!(st.bridge.len() <= 15);
}

#[test]
fn missing_programs_name_their_package() {
    assert!(find_program("faultline-no-such-program").is_none());
    assert!(find_program("sh").is_some());
    let e = ClusterError::Missing {
        program: SSHD.into(),
        package: "openssh-server".into(),
    };
    assert!(
        e.to_string().contains("apt-get install -y openssh-server"),
        "{e}"
    );
    for (program, package) in PREREQUISITES {
        assert!(!program.is_empty() && !package.is_empty());
    }
}

#[test]
fn zombie_detection_reads_state_after_name() {
    // Our own process is alive and not a zombie.
    assert!(!is_zombie(std::process::id()));
    assert!(is_zombie(u32::MAX - 1));
}

#[test]
fn a_subnet_clash_with_a_left_over_cluster_names_the_command_that_removes_it() {
    let clashes = vec![
        "10.78.211.0/24 dev flss-br proto kernel scope link src 10.78.211.1".to_string(),
        "local 10.78.211.1 dev flss-br table local proto kernel scope host".to_string(),
    ];
    let netns = "flss-n2 (id: 1)\nflss-n1 (id: 0)\nother (id: 5)\n";
    let fix = clash_fix_with(&clashes, netns);
    assert!(
        fix.contains("`faultline cluster down --name-prefix flss`"),
        "{fix}"
    );
    // A bridge of that name without the cluster's namespaces is someone
    // else's: nothing of ours to remove.
    assert_eq!(
        clash_fix_with(&clashes, "other (id: 5)\n"),
        "pick another with --subnet"
    );
    // A route through an ordinary interface.
    let eth = vec!["10.0.0.0/8 via 192.0.2.9 dev eth0".to_string()];
    assert_eq!(clash_fix_with(&eth, netns), "pick another with --subnet");
}
