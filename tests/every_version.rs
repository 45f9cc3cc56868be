//! Every API at every version the broker advertises gets a response that decodes at that
//! version (kafka-protocol refuses to encode a field the version lacks, so this catches
//! handlers that set one).

mod common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;
use kafka_protocol::records::Compression;
use protocol::versions::{PRODUCE_MIN_DECODABLE, SUPPORTED};

async fn call_all<R: Request + Clone>(c: &mut Client, req: &R, what: &str) {
    call_from(c, req, what, 0).await
}

/// Calls at every advertised version from `from` up (the request sets fields older
/// versions lack).
async fn call_from<R: Request + Clone>(c: &mut Client, req: &R, what: &str, from: i16) {
    let key = ApiKey::try_from(R::KEY).unwrap();
    let range = SUPPORTED.iter().find(|r| r.key == key).unwrap();
    let min = if key == ApiKey::Produce {
        PRODUCE_MIN_DECODABLE
    } else {
        range.min
    };
    for v in min.max(from)..=range.max {
        eprintln!("{what}: v{v}");
        let _response: R::Response = c.call(req, v).await;
    }
}

#[tokio::test]
async fn every_api_answers_at_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "v", 2).await;
    produce(
        &mut c,
        "v",
        0,
        batch(&[record("k", "v", 5)], Compression::None),
        1,
    )
    .await;

    call_all(&mut c, &ApiVersionsRequest::default(), "api versions").await;
    let md = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(tn("v"))),
    ]));
    call_all(&mut c, &md, "metadata").await;
    let md_missing = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(tn("missing-x"))),
    ]));
    call_from(
        &mut c,
        &md_missing.clone().with_allow_auto_topic_creation(false),
        "metadata unknown",
        4,
    )
    .await;
    call_all(
        &mut c,
        &produce_request("v", 0, batch(&[record("k", "v", 6)], Compression::None), 1),
        "produce",
    )
    .await;
    let mut bad = batch(&[record("k", "v", 6)], Compression::None).to_vec();
    bad.extend_from_slice(&batch(&[record("k", "v", 6)], Compression::None));
    call_all(
        &mut c,
        &produce_request("v", 0, bad.into(), 1),
        "produce two batches",
    )
    .await;
    call_all(&mut c, &fetch_request("v", 0, 0, 0, 0), "fetch").await;
    call_all(
        &mut c,
        &fetch_request("v", 0, 99, 0, 0),
        "fetch out of range",
    )
    .await;
    for ts in [-1i64, -2, 0, 5] {
        let lo = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(tn("v"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts),
                ])]);
        call_all(&mut c, &lo, "list offsets").await;
    }
    let ofle = OffsetForLeaderEpochRequest::default().with_topics(vec![
        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(tn("v"))
            .with_partitions(vec![
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(0),
            ]),
    ]);
    call_all(&mut c, &ofle, "offset for leader epoch").await;
    let dc = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("v"))
            .with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(None),
    ]);
    call_all(&mut c, &dc, "describe configs").await;
    call_from(
        &mut c,
        &dc.clone().with_include_synonyms(true),
        "describe configs synonyms",
        1,
    )
    .await;
    let iac = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("v"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("100000"))),
            ]),
    ]);
    call_all(&mut c, &iac, "incremental alter configs").await;
    call_all(
        &mut c,
        &DescribeClusterRequest::default(),
        "describe cluster",
    )
    .await;
    let delete_records = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(tn("v"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(1)
                    .with_offset(0),
            ])]);
    call_all(&mut c, &delete_records, "delete records").await;
    let legacy = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("v"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("200000")))]),
    ]);
    call_all(&mut c, &legacy, "alter configs").await;
    assert_eq!(c.call(&legacy, 2).await.responses[0].error_code, 0);
    // AlterConfigs replaces every override: a call without retention.ms removes it.
    let replace = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("v"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("segment.bytes"))
                .with_value(Some(s("1048576")))]),
    ]);
    assert_eq!(c.call(&replace, 1).await.responses[0].error_code, 0);
    let overrides = b.broker.metadata.image().topics["v"].configs.clone();
    assert_eq!(overrides.keys().collect::<Vec<_>>(), vec!["segment.bytes"]);
    for v in 2..=7i16 {
        let name = format!("ct{v}");
        let ct = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(tn(&name))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        let r = c.call(&ct, v).await;
        assert_eq!(r.topics[0].error_code, 0, "create topics v{v}");
        let cp = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(tn(&name))
                .with_count(2),
        ]);
        let r = c.call(&cp, (v - 2).min(3)).await;
        assert_eq!(r.results[0].error_code, 0, "create partitions");
    }
    for v in 1..=5i16 {
        let dt = DeleteTopicsRequest::default().with_topic_names(vec![tn(&format!("ct{}", v + 1))]);
        let r = c.call(&dt, v).await;
        assert_eq!(r.responses[0].error_code, 0, "delete topics v{v}");
    }
    b.stop().await;
}
