//! The container files, linted as far as no Docker engine allows: the
//! compose file parses, names the stack, publishes on loopback only, and
//! every `lienthong` command and variable it and the Dockerfile use is one
//! the real binary accepts.

use std::collections::BTreeSet;

use serde_norway::Value;

use crate::support::BIN;

const COMPOSE: &str = include_str!("../../../docker/compose.yaml");
const DOCKERFILE: &str = include_str!("../../../docker/Dockerfile");
const PROMETHEUS: &str = include_str!("../../../docker/prometheus/prometheus.yml");
const ALERTS: &str = include_str!("../../../docker/prometheus/alerts.yml");

/// Runs the binary with `args`: its exit code (2 is a usage error).
fn exit_code(args: &[&str]) -> Option<i32> {
    crate::support::output_within(
        std::process::Command::new(BIN)
            .args(args)
            .env("LIENTHONG_METRICS_LISTEN", "off"),
        std::time::Duration::from_secs(60),
    )
    .status
    .code()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_compose_file_runs_the_stack_on_loopback_with_commands_the_binary_accepts() {
    let mut compose: Value = serde_norway::from_str(COMPOSE).unwrap();
    // `<<: *anchor` as Compose reads it.
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "adapter-banking",
            "adapter-education",
            "adapter-health",
            "adapter-social-insurance",
            "adapter-telecom",
            "certs",
            "gateway",
            "gateway-2",
            "gateway-2-data",
            "postgres",
            "prometheus",
            "rabbitmq"
        ])
    );
    for (name, service) in services {
        if name.as_str().unwrap().starts_with("adapter-") {
            assert!(
                service.get("ports").is_none(),
                "{name:?}: adapters are not published"
            );
        }
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:"), "{name:?} publishes {port}");
        }
    }
    // The certs job and the gateway's health check are real commands.
    let certs = strings(&services["certs"]["command"]);
    assert_eq!(certs[0], "certs");
    let probe = strings(&services["gateway"]["healthcheck"]["test"]);
    assert_eq!(&probe[..3], ["CMD", "lienthong", "health"]);
    // The container's data directory swapped for one of this test's: the
    // commands really run, and must not write outside it.
    let scratch_dir = tempfile::tempdir().unwrap();
    let scratch = scratch_dir.path().to_str().unwrap().to_owned();
    for args in [&certs[..], &probe[2..]] {
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if a.starts_with("/var/lib/") {
                    scratch.as_str()
                } else {
                    a.as_str()
                }
            })
            .collect();
        // Wrong flags exit 2; these may fail for want of a data directory
        // or a gateway (1), never for their spelling.
        assert_ne!(exit_code(&args), Some(2), "{args:?}");
    }
    // Each adapter mounts only its bundle from the certs job's volume: the
    // bundle exists after `certs`, and holds no private key but the
    // adapter's own (and the gateway's public one, to check events with).
    for (name, service) in services {
        if !name.as_str().unwrap().starts_with("adapter-") {
            continue;
        }
        let mounts = service["volumes"].as_sequence().unwrap();
        let pki = mounts
            .iter()
            .find(|m| m["source"].as_str() == Some("gateway-data"))
            .unwrap_or_else(|| panic!("{name:?} mounts no PKI"));
        assert_eq!(pki["read_only"].as_bool(), Some(true), "{name:?}");
        let subpath = pki["volume"]["subpath"].as_str().unwrap();
        let bundle = scratch_dir.path().join(subpath);
        let mut files: Vec<String> = walk(&bundle);
        files.sort();
        let sector = subpath.rsplit('/').next().unwrap();
        assert_eq!(
            files,
            [
                format!("adapters/{sector}.key"),
                format!("adapters/{sector}.pem"),
                "ca.pem".to_owned(),
                "gateway-signing.pub".to_owned()
            ],
            "{name:?}"
        );
    }
    let help = crate::support::output_within(
        std::process::Command::new(BIN).args(["serve", "--help"]),
        std::time::Duration::from_secs(60),
    );
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let help: String = help.split_whitespace().collect();
    // Both replicas serve the one store under names of their own; every
    // variable they set is one `serve` reads.
    let mut nodes = BTreeSet::new();
    let mut stores = BTreeSet::new();
    for replica in ["gateway", "gateway-2"] {
        let serve = strings(&services[replica]["command"]);
        assert_eq!(serve[0], "serve", "{replica}");
        let environment = services[replica]["environment"].as_mapping().unwrap();
        for (var, value) in environment {
            let var = var.as_str().unwrap();
            assert!(
                help.contains(&format!("[env:{var}")),
                "{replica}: {var} is not read by serve"
            );
            match var {
                "LIENTHONG_NODE_NAME" => nodes.insert(value.as_str().unwrap()),
                "LIENTHONG_STORE" => stores.insert(value.as_str().unwrap()),
                _ => false,
            };
        }
    }
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!(stores.len(), 1, "{stores:?}");
    assert!(stores.first().unwrap().contains("@postgres:5432/"));
    // The second replica's data directory is the first one's policy, PKI
    // and signing key, as the README says to copy: the parts `serve`
    // reads from a data directory.
    let copy = strings(&services["gateway-2-data"]["command"]);
    let first = "/var/lib/lienthong-first/";
    let parts: Vec<&str> = copy.iter().filter_map(|a| a.strip_prefix(first)).collect();
    assert_eq!(parts, ["policy.toml", "pki", "keys"]);
    let dir = lienthong_gateway::cmd::DataDir::new(first);
    assert_eq!(dir.policy(), std::path::Path::new(first).join(parts[0]));
    assert_eq!(dir.pki().root, std::path::Path::new(first).join(parts[1]));
    assert_eq!(
        dir.signing_key().parent(),
        Some(std::path::Path::new(first).join(parts[2]).as_path())
    );
}

/// Prometheus scrapes every gateway replica and adapter on the port its
/// metrics listen on, and the alerting rules name only metrics they export
/// (the rules' own behaviour is `promtool test rules`, in scripts/test.sh).
#[test]
fn prometheus_scrapes_every_replica_and_alerts_on_metrics_that_exist() {
    use lienthong_gateway::telemetry as t;
    let mut compose: Value = serde_norway::from_str(COMPOSE).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let config: Value = serde_norway::from_str(PROMETHEUS).unwrap();
    let targets: BTreeSet<String> = config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|job| job["static_configs"].as_sequence().unwrap())
        .flat_map(|c| strings(&c["targets"]))
        .collect();
    // Every gateway replica and every adapter, at its metrics port.
    let exporting = |s: &Value| {
        s["command"]
            .as_sequence()
            .is_some_and(|c| c[0].as_str() == Some("serve"))
            || s["entrypoint"]
                .as_sequence()
                .is_some_and(|e| e[0].as_str() == Some("lienthong-adapter"))
    };
    let replicas: BTreeSet<String> = services
        .iter()
        .filter(|(_, s)| exporting(s))
        .map(|(name, s)| {
            let listen = s["environment"]["LIENTHONG_METRICS_LISTEN"]
                .as_str()
                .unwrap();
            let port = listen.rsplit(':').next().unwrap();
            format!("{}:{port}", name.as_str().unwrap())
        })
        .collect();
    assert_eq!(targets, replicas);
    assert_eq!(replicas.len(), 7, "{replicas:?}");
    let exported = [
        t::REQUESTS,
        t::REQUEST_DURATION,
        t::AUDIT_COMMIT,
        t::AUDIT_RECORDS,
        t::OUTBOX_WAITING,
        t::OUTBOX_OLDEST,
        t::OUTBOX_LAST_SEQ,
        t::RELAY_LEADING,
        t::PROJECTION_SEQ,
        t::SHED,
        t::SECTOR_CALLS,
        t::SECTOR_AVAILABLE,
        lienthong_adapters::telemetry::APPLIED_SEQ,
    ];
    let mut named = BTreeSet::new();
    for word in ALERTS.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(name) = word.strip_prefix("lienthong_") {
            named.insert(format!("lienthong_{name}"));
        }
    }
    assert!(named.len() >= 6, "{named:?}");
    for name in &named {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.contains(&base),
            "the rules name {name}, which the gateway does not export"
        );
    }
}

#[test]
fn the_dockerfile_checks_health_with_the_real_probe() {
    let check = DOCKERFILE
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .expect("a HEALTHCHECK with its CMD on the next line");
    let args: Vec<String> = serde_json::from_str(check.trim().trim_start_matches("CMD ")).unwrap();
    assert_eq!(&args[..2], ["lienthong", "health"]);
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    assert_ne!(exit_code(&args), Some(2), "{args:?}");
    assert!(DOCKERFILE.contains("USER 10001:10001"), "not root");
    assert!(DOCKERFILE.contains("EXPOSE 50051 9464"));
}

/// The files under `dir`, relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let sub = path.file_name().unwrap().to_string_lossy().into_owned();
            out.extend(walk(&path).into_iter().map(|f| format!("{sub}/{f}")));
        } else {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

/// The compose file's broker accounts, loaded into the tests' own RabbitMQ
/// node: the gateway's account publishes to `lienthong.events`; an
/// adapter's account binds and reads its own queue, and may neither publish
/// an event nor read another sector's queue.
#[tokio::test]
async fn the_brokers_accounts_let_only_the_gateway_publish_and_each_adapter_read_its_own() {
    use lapin::options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, ExchangeKind};

    let broker = crate::amqp::OwnBroker::get();
    let definitions = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docker/rabbitmq/definitions.json"
    );
    broker.rabbitmqctl(&["import_definitions", definitions]);
    let port = broker
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let as_user = |user: &str| format!("amqp://{user}:{user}-dev@127.0.0.1:{port}/%2f");
    let durable = || ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };

    // The gateway declares the exchange and publishes, confirmed.
    let gateway = crate::amqp::connect_to(&as_user("lienthong-gateway")).await;
    let channel = gateway.create_channel().await.unwrap();
    channel
        .exchange_declare(
            "lienthong.events".into(),
            ExchangeKind::Topic,
            durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            "lienthong.events".into(),
            "citizen.died".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());

    // An adapter binds and reads its own queue...
    let telecom = crate::amqp::connect_to(&as_user("lienthong-telecom")).await;
    let channel = telecom.create_channel().await.unwrap();
    let own = "lienthong.events.telecom";
    channel
        .queue_declare(
            own.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            own.into(),
            "lienthong.events".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_consume(
            own.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // ...but may not publish an event (a forged death, say)...
    let forging = telecom.create_channel().await.unwrap();
    forging
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let forged = match forging
        .basic_publish(
            "lienthong.events".into(),
            "citizen.died".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
    {
        Ok(confirm) => confirm.await.map(|c| c.is_ack()).unwrap_or(false),
        Err(_) => false,
    };
    assert!(!forged, "an adapter's account published to the exchange");
    // ...nor read another sector's queue.
    let prying = telecom.create_channel().await.unwrap();
    let pried = prying
        .basic_consume(
            "lienthong.events.health".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(pried.is_err(), "an adapter read another sector's queue");
    let _ = telecom.close(200, "done".into()).await;
    let _ = gateway.close(200, "done".into()).await;
}
