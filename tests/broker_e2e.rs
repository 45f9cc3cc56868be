//! End-to-end tests: the real broker in-process on an ephemeral port, driven over TCP with
//! raw Kafka frames.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

#[tokio::test]
async fn api_versions_lists_the_table_and_falls_back_for_unknown_versions() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let resp = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));

    // ApiVersions v99: a v0 body with UNSUPPORTED_VERSION, and the connection stays open.
    let (cid, frame) = c.frame(&ApiVersionsRequest::default(), 0);
    let mut forged = frame.to_vec();
    forged[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&forged).await;
    let (got, mut body) = c.read_frame(0).await.unwrap();
    assert_eq!(got, cid);
    let fallback =
        <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap();
    assert_eq!(fallback.error_code, 35);
    assert!(!fallback.api_keys.is_empty());
    let again = c.call(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(again.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn metadata_reports_this_broker_as_controller_and_auto_creates() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let resp = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.controller_id, BrokerId(1));
    assert_eq!(resp.brokers[0].port, b.addr.port() as i32);
    let cluster_id = resp.cluster_id.clone().unwrap();
    assert_eq!(cluster_id.len(), 22);

    // Not allowed by the request: unknown topic.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(tn("auto")))]))
        .with_allow_auto_topic_creation(false);
    let resp = c.call(&req, 12).await;
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // Allowed: created with default_partitions.
    let resp = c
        .call(&req.clone().with_allow_auto_topic_creation(true), 12)
        .await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions.len(), 1);
    assert!(!resp.topics[0].topic_id.is_nil());
    b.stop().await;

    // The cluster id and topic id are stable across restarts.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let resp = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(resp.cluster_id.unwrap(), cluster_id);
    assert_eq!(resp.topics.len(), 1);
    b.stop().await;
}

#[tokio::test]
async fn produce_fetch_round_trip_with_every_codec_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(&mut c, "codecs", 1).await.topics[0].error_code,
        0
    );
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.iter().enumerate() {
        let records: Vec<_> = (0..10)
            .map(|j| record(&format!("k{i}-{j}"), &format!("v{i}-{j}"), 1_000 + j))
            .collect();
        expected.extend(records.iter().map(|r| (r.key.clone(), r.value.clone())));
        let resp = produce(&mut c, "codecs", 0, batch(&records, *codec), -1).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{codec:?}: {:?}", p.error_message);
        assert_eq!(p.base_offset, (i * 10) as i64);
        assert_eq!(p.log_append_time_ms, -1);
    }
    let check = |data: &fetch_response::PartitionData| {
        assert_eq!(data.error_code, 0);
        assert_eq!(data.high_watermark, 50);
        let got: Vec<_> = decode_records(data.records.as_ref().unwrap())
            .into_iter()
            .map(|r| {
                assert_eq!(r.headers.len(), 1);
                (r.key, r.value)
            })
            .collect();
        assert_eq!(got, expected);
    };
    let mut offset = 0;
    let mut all = fetch_response::PartitionData::default();
    let mut bytes = bytes::BytesMut::new();
    while offset < 50 {
        let d = fetch(&mut c, "codecs", 0, offset).await;
        let recs = decode_records(d.records.as_ref().unwrap());
        offset = recs.last().unwrap().offset + 1;
        bytes.extend_from_slice(d.records.as_ref().unwrap());
        all = d;
    }
    all.records = Some(bytes.freeze());
    check(&all);
    b.stop().await;

    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let d = fetch(&mut c, "codecs", 0, 0).await;
    assert_eq!(d.high_watermark, 50);
    assert!(!decode_records(d.records.as_ref().unwrap()).is_empty());
    b.stop().await;
}

#[tokio::test]
async fn fetch_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "mid", 1).await;
    let records: Vec<_> = (0..5).map(|j| record("k", &format!("v{j}"), 1)).collect();
    produce(&mut c, "mid", 0, batch(&records, Compression::None), 1).await;
    let d = fetch(&mut c, "mid", 0, 3).await;
    let recs = decode_records(d.records.as_ref().unwrap());
    assert_eq!(
        recs.first().unwrap().offset,
        0,
        "whole batch, clients skip earlier records"
    );
    // Empty partition at the end: empty records, never null.
    let d = fetch(&mut c, "mid", 0, 5).await;
    assert_eq!(d.records.as_ref().map(|r| r.len()), Some(0));
    // Beyond the end: OFFSET_OUT_OF_RANGE.
    let d = fetch(&mut c, "mid", 0, 6).await;
    assert_eq!(d.error_code, ResponseError::OffsetOutOfRange.code());
    b.stop().await;
}

#[tokio::test]
async fn long_poll_fetch_is_woken_by_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "poll", 1).await;
    let addr = b.addr;
    let waiter = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        c.call(&fetch_request("poll", 0, 0, 30_000, 1), 12).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    produce(
        &mut c,
        "poll",
        0,
        batch(&[record("k", "v", 1)], Compression::None),
        1,
    )
    .await;
    // The fetch waits up to 30 s; an append must end it long before (bounded by the test).
    let resp = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken by the append")
        .unwrap();
    let recs = decode_records(resp.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(recs.len(), 1);
    b.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_acks_zero_gets_no_response() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "pipe", 1).await;
    let mut expected = Vec::new();
    let mut wire = Vec::new();
    for i in 0..5 {
        let acks = if i == 2 { 0 } else { 1 };
        let (cid, frame) = c.frame(
            &produce_request(
                "pipe",
                0,
                batch(&[record("k", "v", 1)], Compression::None),
                acks,
            ),
            9,
        );
        if acks != 0 {
            expected.push(cid);
        }
        wire.extend_from_slice(&frame);
    }
    c.send_raw(&wire).await;
    for cid in expected {
        let (got, _) = c.read_frame(1).await.unwrap();
        assert_eq!(got, cid);
    }
    let d = fetch(&mut c, "pipe", 0, 0).await;
    assert_eq!(d.high_watermark, 5, "the acks=0 write was applied too");
    b.stop().await;
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut good = b.client().await;
    let hostile: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 3, 1, 2, 3],    // shorter than a header
        vec![0x7f, 0xff, 0xff, 0xff], // larger than the limit
        vec![0, 0, 0, 12, 0x30, 0x39, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // unknown api key 12345
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), // garbage
        // Metadata v1 whose topics array claims i32::MAX entries.
        vec![
            0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ],
        // Fetch v4 (api 1) whose client id length claims more than the frame.
        vec![0, 0, 0, 10, 0, 1, 0, 4, 0, 0, 0, 1, 0x7f, 0xff],
    ];
    for bytes in hostile {
        let mut bad = b.client().await;
        bad.send_raw(&bytes).await;
        assert!(bad.is_closed().await, "connection closed after {bytes:?}");
        let resp = good
            .call(&MetadataRequest::default().with_topics(None), 12)
            .await;
        assert_eq!(resp.brokers.len(), 1, "the other connection still works");
    }
    b.stop().await;
}

#[tokio::test]
async fn produce_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn("small"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(s("max.message.bytes"))
                .with_value(Some(s("1000")))]),
    ]);
    assert_eq!(c.call(&req, 7).await.topics[0].error_code, 0);
    let big = record("k", &"x".repeat(5000), 1);
    let resp = produce(&mut c, "small", 0, batch(&[big], Compression::None), 1).await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::MessageTooLarge.code()
    );

    let mut corrupt = batch(&[record("k", "v", 1)], Compression::None).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let resp = produce(&mut c, "small", 0, corrupt.into(), 1).await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::CorruptMessage.code()
    );

    let resp = produce(
        &mut c,
        "nope",
        0,
        batch(&[record("k", "v", 1)], Compression::None),
        1,
    )
    .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let resp = produce(
        &mut c,
        "small",
        7,
        batch(&[record("k", "v", 1)], Compression::None),
        1,
    )
    .await;
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn list_offsets_by_timestamp_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "times", 1).await;
    for (i, ts) in [1000i64, 2000, 3000].iter().enumerate() {
        let recs: Vec<_> = (0..2)
            .map(|j| record(&format!("{i}{j}"), "v", ts + j))
            .collect();
        produce(&mut c, "times", 0, batch(&recs, Compression::None), 1).await;
    }
    let lookup = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(tn("times"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(ts),
                ])])
    };
    let offset_of = |resp: ListOffsetsResponse| {
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    };
    assert_eq!(offset_of(c.call(&lookup(-2), 7).await), 0);
    assert_eq!(offset_of(c.call(&lookup(-1), 7).await), 6);
    assert_eq!(offset_of(c.call(&lookup(2000), 7).await), 2);
    assert_eq!(offset_of(c.call(&lookup(2001), 7).await), 3);
    assert_eq!(offset_of(c.call(&lookup(9999), 7).await), -1);
    let max = c.call(&lookup(-3), 7).await;
    assert_eq!(max.topics[0].partitions[0].timestamp, 3001);
    // Inside a compressed batch: the exact record, as Kafka answers.
    let recs: Vec<_> = (0..5)
        .map(|j| record(&format!("z{j}"), "v", 5000 + 100 * j))
        .collect();
    produce(&mut c, "times", 0, batch(&recs, Compression::Zstd), 1).await;
    assert_eq!(offset_of(c.call(&lookup(5250), 7).await), 9);
    let max = c.call(&lookup(-3), 7).await;
    assert_eq!(
        (
            max.topics[0].partitions[0].offset,
            max.topics[0].partitions[0].timestamp
        ),
        (10, 5400)
    );

    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(tn("times"))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0),
                ]),
        ]);
    let resp = c.call(&req, 4).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 11));
    b.stop().await;
}

#[tokio::test]
async fn topic_admin_create_describe_alter_grow_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "adm", 2).await.topics[0].error_code, 0);
    assert_eq!(
        create_topic(&mut c, "adm", 2).await.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    assert_eq!(
        create_topic(&mut c, "bad name", 2).await.topics[0].error_code,
        ResponseError::InvalidTopicException.code()
    );
    assert_eq!(
        create_topic(&mut c, "zero", 0).await.topics[0].error_code,
        ResponseError::InvalidPartitions.code()
    );

    let bad_config = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn("badcfg"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("soon")))]),
    ]);
    assert_eq!(
        c.call(&bad_config, 7).await.topics[0].error_code,
        ResponseError::InvalidConfig.code()
    );

    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("adm"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("60000"))),
            ]),
    ]);
    assert_eq!(c.call(&alter, 1).await.responses[0].error_code, 0);
    let describe = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("adm"))
                .with_configuration_keys(None),
        ]);
    let resp = c.call(&describe, 4).await;
    let configs = &resp.results[0].configs;
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    let segment = configs
        .iter()
        .find(|c| c.name.as_str() == "segment.bytes")
        .unwrap();
    assert_eq!(segment.config_source, 5, "DEFAULT_CONFIG");
    let broker_cfg = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(None),
    ]);
    let resp = c.call(&broker_cfg, 4).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert!(resp.results[0]
        .configs
        .iter()
        .any(|c| c.name.as_str() == "num.partitions"));

    let grow = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(tn("adm"))
            .with_count(4),
    ]);
    assert_eq!(c.call(&grow, 3).await.results[0].error_code, 0);
    assert_eq!(
        c.call(&grow, 3).await.results[0].error_code,
        ResponseError::InvalidPartitions.code()
    );
    produce(
        &mut c,
        "adm",
        3,
        batch(&[record("k", "v", 1)], Compression::None),
        1,
    )
    .await;
    assert!(dir.path().join("adm-3").exists());

    let cluster = c.call(&DescribeClusterRequest::default(), 1).await;
    assert_eq!(cluster.controller_id, BrokerId(1));
    assert_eq!(cluster.brokers.len(), 1);

    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![tn("adm")])
        .with_timeout_ms(5000);
    assert_eq!(c.call(&delete, 5).await.responses[0].error_code, 0);
    assert!(!dir.path().join("adm-0").exists(), "files removed");
    assert_eq!(
        c.call(&delete, 5).await.responses[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    // Re-created: a new id and an empty log.
    create_topic(&mut c, "adm", 1).await;
    assert_eq!(fetch(&mut c, "adm", 0, 0).await.high_watermark, 0);
    b.stop().await;
}

async fn create_with_configs(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> i16 {
    let req = create_topic_request(name, 1, 1, configs);
    c.call(&req, 7).await.topics[0].error_code
}

#[tokio::test]
async fn log_append_time_topics_stamp_batches_with_broker_time() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        create_with_configs(
            &mut c,
            "lat",
            &[("message.timestamp.type", "LogAppendTime")]
        )
        .await,
        0
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let resp = produce(
        &mut c,
        "lat",
        0,
        batch(&[record("k", "v", 42)], Compression::Gzip),
        1,
    )
    .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    assert!(
        p.log_append_time_ms >= before,
        "the broker's time is returned"
    );
    let raw = fetch(&mut c, "lat", 0, 0).await.records.unwrap();
    // The decoder checks the CRC, so the recomputed CRC is right.
    let recs = decode_records(&raw);
    assert_eq!(
        recs[0].timestamp_type,
        kafka_protocol::records::TimestampType::LogAppend
    );
    // Clients take a LogAppendTime batch's maxTimestamp (bytes 35..43) as every record's time.
    let max_timestamp = i64::from_be_bytes(raw[35..43].try_into().unwrap());
    assert_eq!(max_timestamp, p.log_append_time_ms);
    b.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(
        create_with_configs(
            &mut c,
            "ret",
            &[("segment.bytes", "1024"), ("retention.ms", "1000")]
        )
        .await,
        0
    );
    for i in 0..20 {
        // Timestamps far in the past: every closed segment is expired.
        let r = produce(
            &mut c,
            "ret",
            0,
            batch(
                &[record(&format!("k{i}"), &"x".repeat(300), 1_000)],
                Compression::None,
            ),
            1,
        )
        .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let deleted = b.broker.apply_retention();
    assert!(deleted > 0, "expired segments deleted");
    let d = fetch(&mut c, "ret", 0, 20).await;
    assert!(
        d.log_start_offset > 0,
        "log start moved: {}",
        d.log_start_offset
    );
    let d = fetch(&mut c, "ret", 0, 0).await;
    assert_eq!(d.error_code, ResponseError::OffsetOutOfRange.code());
    b.stop().await;
}
