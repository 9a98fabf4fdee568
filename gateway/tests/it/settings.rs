//! `lienthong check` and `lienthong config`, run as an operator would:
//! what is wrong with a data directory, and what `serve` would run with.

use std::time::Duration;

use crate::support::{BIN, output_within, run, text};

#[test]
fn check_says_what_is_wrong_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(run(&["certs", "--data-dir", data]).status.success());
    let out = run(&["check", "--data-dir", data]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("ok       policy.toml: 9 agencies"), "{said}");
    assert!(
        said.contains("ok       pki/agencies/viettel.pem: valid for"),
        "{said}"
    );
    assert!(!said.contains("problem"), "{said}");

    // A missing agency certificate is named.
    std::fs::remove_file(dir.path().join("pki/agencies/viettel.pem")).unwrap();
    let out = run(&["check", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stdout)
            .contains("problem  pki/agencies/viettel.pem: missing (lienthong certs issues it)"),
        "{}",
        text(&out.stdout)
    );
    // Another agency's certificate in its place: the name does not match.
    std::fs::copy(
        dir.path().join("pki/agencies/vss.pem"),
        dir.path().join("pki/agencies/viettel.pem"),
    )
    .unwrap();
    let out = run(&["check", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stdout).contains("its subject CN is Some(\"vss\"), not \"viettel\""),
        "{}",
        text(&out.stdout)
    );
    // A policy that does not validate names its line.
    let policy = dir.path().join("policy.toml");
    let original = std::fs::read_to_string(&policy).unwrap();
    let at = 1 + original
        .lines()
        .position(|l| l == "daily_quota = 200000")
        .unwrap();
    let broken = original.replacen("daily_quota = 200000", "daily_quota = 0", 1);
    std::fs::write(&policy, broken).unwrap();
    let out = run(&["check", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(64));
    let said = text(&out.stdout);
    assert!(
        said.contains("problem  policy")
            && said.contains(&format!("line {at}: agency \"clinic-bach-mai\"")),
        "{said}"
    );
}

#[test]
fn config_prints_each_value_with_its_source_and_hides_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    std::fs::write(
        dir.path().join("lienthong.toml"),
        "max_in_flight = 7\ndeadline_ms = 5000\namqp_url = \"amqp://ops:s3cret@broker:5672/%2f\"\n",
    )
    .unwrap();
    let out = output_within(
        std::process::Command::new(BIN)
            .args([
                "config",
                "--data-dir",
                data,
                "--max-streams-per-connection",
                "9",
            ])
            .env("LIENTHONG_DEADLINE_MS", "1234")
            .env(
                "LIENTHONG_STORE",
                "postgres://gw:pg-s3cret@db:5432/lienthong",
            ),
        Duration::from_secs(60),
    );
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    let line = |key: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{key} missing: {said}"))
    };
    // default < file < environment < flag
    assert_eq!(line("listen"), "listen = \"127.0.0.1:50051\" # default");
    assert_eq!(line("max_in_flight"), "max_in_flight = 7 # file");
    assert_eq!(line("deadline_ms"), "deadline_ms = 1234 # environment");
    assert_eq!(
        line("max_streams_per_connection"),
        "max_streams_per_connection = 9 # flag"
    );
    assert_eq!(
        line("amqp_url"),
        "amqp_url = \"amqp://ops:***@broker:5672/%2f\" # file"
    );
    assert_eq!(
        line("store"),
        "store = \"postgres://gw:***@db:5432/lienthong\" # environment"
    );
    assert!(!said.contains("s3cret"), "{said}");

    // A value the option does not take names the file and the option.
    std::fs::write(dir.path().join("lienthong.toml"), "max_in_flight = 0\n").unwrap();
    let out = run(&["config", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains("lienthong.toml") && err.contains("--max-in-flight"),
        "{err}"
    );

    // `check` reads the file too; a key it does not know is named with its line.
    std::fs::write(
        dir.path().join("lienthong.toml"),
        "listen = \"127.0.0.1:1\"\nmax_inflight = 7\n",
    )
    .unwrap();
    for command in ["config", "check", "serve"] {
        let out = run(&[command, "--data-dir", data]);
        assert_eq!(out.status.code(), Some(64), "{command}");
        let err = text(&out.stderr);
        assert!(
            err.contains("lienthong.toml")
                && err.contains("line 2")
                && err.contains("max_inflight"),
            "{command}: {err}"
        );
    }
}
