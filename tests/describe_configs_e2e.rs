//! DescribeConfigs of broker resources over a real socket reports the values the node runs
//! with: on a three-node cluster configured like configs/broker-cluster-node*.json
//! (`default_replication_factor` 3, `min_insync_replicas` 2) every node reports 3 and 2 as
//! STATIC_BROKER_CONFIG, and CreateTopics with the broker's default replication factor
//! really places three replicas; a node on the built-in defaults reports 1 and 1 as
//! DEFAULT_CONFIG.

mod common;

use common::cluster::*;
use common::*;
use kafka_protocol::messages::*;

const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn describe_broker(id: i32, keys: Option<&[&str]>) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s(&id.to_string()))
                .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect())),
        ])
}

/// (value, source) of `name` in a DescribeConfigs result.
fn entry(result: &describe_configs_response::DescribeConfigsResult, name: &str) -> (String, i8) {
    let c = result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is reported"));
    (
        c.value.as_deref().unwrap_or("<null>").to_string(),
        c.config_source,
    )
}

#[tokio::test]
async fn every_cluster_node_reports_its_configured_replication_defaults() {
    let cluster =
        Cluster::start_with(r#", "default_replication_factor": 3, "min_insync_replicas": 2"#).await;
    for id in 1..=3 {
        let mut c = Client::connect(cluster.addr(id)).await;
        let resp = c.call(&describe_broker(id, None), 4).await;
        let result = &resp.results[0];
        assert_eq!(result.error_code, 0, "{result:?}");
        let expect = [
            ("default.replication.factor", "3", STATIC_BROKER_CONFIG),
            ("min.insync.replicas", "2", STATIC_BROKER_CONFIG),
            (
                "offsets.topic.replication.factor",
                "3",
                STATIC_BROKER_CONFIG,
            ),
            ("num.partitions", "1", DEFAULT_CONFIG),
        ];
        for (name, value, source) in expect {
            assert_eq!(
                entry(result, name),
                (value.to_string(), source),
                "broker {id}: {name}"
            );
        }
        assert_eq!(entry(result, "broker.id").0, id.to_string());
        let dr = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == "default.replication.factor")
            .unwrap();
        assert_eq!(dr.synonyms.len(), 1);
        assert_eq!(dr.synonyms[0].value.as_deref(), Some("3"));
        assert!(dr.documentation.is_some());

        // The configuration_keys filter.
        let resp = c
            .call(&describe_broker(id, Some(&["min.insync.replicas"])), 4)
            .await;
        let names: Vec<&str> = resp.results[0]
            .configs
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["min.insync.replicas"]);
    }

    // What DescribeConfigs says is what the broker does: a topic left to the broker's
    // default replication factor gets three replicas and min.insync.replicas 2.
    let mut c = Client::connect(cluster.addr(cluster.controller)).await;
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn("defaults"))
            .with_num_partitions(1)
            .with_replication_factor(-1)])
        .with_timeout_ms(5000);
    let created = c.call(&req, 7).await;
    let topic = &created.topics[0];
    assert_eq!(topic.error_code, 0, "{created:?}");
    assert_eq!(topic.replication_factor, 3);
    let min_isr = topic
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name.as_str() == "min.insync.replicas")
        .unwrap();
    assert_eq!(min_isr.value.as_deref(), Some("2"));
    assert_eq!(min_isr.config_source, STATIC_BROKER_CONFIG);

    cluster.stop().await;
}

#[tokio::test]
async fn a_node_on_the_built_in_defaults_reports_them_as_default_config() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let resp = c.call(&describe_broker(1, None), 4).await;
    let result = &resp.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    for name in [
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
    ] {
        assert_eq!(
            entry(result, name),
            ("1".to_string(), DEFAULT_CONFIG),
            "{name}"
        );
    }
    assert_eq!(entry(result, "replica.lag.time.max.ms").0, "30000");
    b.stop().await;
}
