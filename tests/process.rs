//! The real binary as a process: config errors, SIGTERM, kill -9 and restart, dump-log.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use kafka_protocol::records::Compression;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("broker.json");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn bad_configs_name_the_file_and_field_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases = [
        (r#"{"retention_time": "168x"}"#, "retention_time"),
        (r#"{"server": {"port": "70000"}}"#, "server.port"),
        (r#"{"segment_size": "big"}"#, "segment_size"),
        (r#"{"no_such_field": 1}"#, "no_such_field"),
        (r#"{"server": {"port": 9092,}"#, "broker.json"),
    ];
    for (body, field) in cases {
        let full = body.replacen('{', &format!(r#"{{"data_dir": "{}", "#, data.display()), 1);
        let path = write_config(dir.path(), &full);
        let out = Command::new(BIN)
            .arg(format!("-config={}", path.display()))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{body} must be refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().next().unwrap_or_default();
        assert!(line.contains("broker.json"), "names the file: {line}");
        assert!(line.contains(field), "names the field {field}: {line}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!data.exists(), "no directory created for {body}");
    }
}

struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &std::path::Path) -> Proc {
    Proc(
        Command::new(BIN)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn connect(port: u16) -> Client {
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            drop(s);
            return Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("broker did not start on port {port}");
}

/// kill -9 while the cleaner holds a committed rewrite of a compacted topic (a test hook
/// delays the swap): after the restart every key's latest value is there, at its offset,
/// (the open finishes the committed swap; the unit tests of `cleaner::swap` check each step).
#[tokio::test]
async fn kill_dash_nine_during_a_cleaner_swap_loses_no_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{"data_dir": "{}", "server": {{"port": "{port}"}}, "cleaner": {{"backoff": "100ms"}}}}"#,
            data.display()
        ),
    );
    let mut broker = Proc(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env("BROKER_TEST_CLEANER_SWAP_DELAY_MS", "60000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut c = connect(port).await;
    let req = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(tn("kv"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    [("cleanup.policy", "compact"), ("segment.bytes", "2048")]
                        .iter()
                        .map(|(k, v)| {
                            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                                .with_name(s(k))
                                .with_value(Some(s(v)))
                        })
                        .collect(),
                ),
        ])
        .with_timeout_ms(5000);
    assert_eq!(c.call(&req, 5).await.topics[0].error_code, 0);
    let mut latest = std::collections::BTreeMap::new();
    for i in 0..300i64 {
        let key = format!("k{}", i % 15);
        let value = format!("v{i}");
        let r = produce(
            &mut c,
            "kv",
            0,
            batch(&[record(&key, &value, i)], Compression::None),
            -1,
        )
        .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0);
        latest.insert(key, (p.base_offset, value));
    }
    let marker = data.join("kv-0").join("cleaning").join("swap");
    let mut waited = 0;
    while !marker.exists() {
        assert!(waited < 300, "the cleaner commits a rewrite");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    drop(broker);

    let _broker = start(&config);
    let mut c = connect(port).await;
    let mut found = std::collections::BTreeMap::new();
    let mut offset = 0;
    loop {
        let d = fetch(&mut c, "kv", 0, offset).await;
        assert_eq!(d.error_code, 0);
        let recs = decode_records(d.records.as_ref().unwrap());
        if recs.is_empty() {
            break;
        }
        for r in &recs {
            let k = String::from_utf8(r.key.as_ref().unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap();
            found.insert(k, (r.offset, v));
        }
        offset = recs.last().unwrap().offset + 1;
    }
    assert_eq!(found, latest, "every key's latest value survives");
}

#[tokio::test]
async fn kill_dash_nine_loses_no_acknowledged_record_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            r#"{{"data_dir": "{}", "server": {{"port": "{port}", "log_file": "{}"}}}}"#,
            dir.path().join("data").display(),
            dir.path().join("logs/broker.log").display()
        ),
    );
    let mut broker = start(&config);
    let mut c = connect(port).await;
    create_topic(&mut c, "durable", 1).await;
    for i in 0..100 {
        let r = produce(
            &mut c,
            "durable",
            0,
            batch(&[record(&format!("k{i}"), "v", i)], Compression::Lz4),
            -1,
        )
        .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    // kill -9: no chance to flush anything.
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    drop(broker);
    let mut broker = start(&config);
    let mut c = connect(port).await;
    let d = fetch(&mut c, "durable", 0, 0).await;
    assert_eq!(d.high_watermark, 100, "every acknowledged record is back");
    let mut offset = 0;
    while offset < 100 {
        let d = fetch(&mut c, "durable", 0, offset).await;
        let recs = decode_records(d.records.as_ref().unwrap());
        for r in &recs {
            if r.offset >= offset {
                assert_eq!(r.key.as_deref(), Some(format!("k{}", r.offset).as_bytes()));
            }
        }
        offset = recs.last().unwrap().offset + 1;
    }
    // SIGTERM: a clean exit with status 0.
    let pid = broker.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = broker.0.wait().unwrap();
    assert!(status.success(), "clean shutdown on SIGTERM: {status:?}");
    let log = std::fs::read_to_string(dir.path().join("logs/broker.log")).unwrap();
    assert!(
        log.contains("broker stopped"),
        "logs flushed to server.log_file"
    );
    drop(broker);

    // dump-log validates what is on disk.
    let out = Command::new(BIN)
        .arg("dump-log")
        .arg(dir.path().join("data/durable-0"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
}
