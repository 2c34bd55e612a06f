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
