//! Three brokers in one process, each a Raft voter on an ephemeral port: they agree on
//! brokers and controller, a topic created through a follower spreads over the brokers,
//! produce goes to each partition's leader (others answer NOT_LEADER_OR_FOLLOWER), a
//! replication factor 3 topic has every broker in its ISR, and the cluster survives losing
//! its controller. (Replication under failures: tests/replication_e2e.rs.)

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

async fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(&MetadataRequest::default().with_topics(None), 12)
        .await
}

async fn wait_for<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_brokers_agree_spread_topics_and_survive_the_controller() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let raft_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // The three start together: each waits for a quorum to register itself.
    let extras: Vec<String> = (1..=3).map(|n| cluster_extra(n, &raft_ports)).collect();
    let (b1, b2, b3) = tokio::join!(
        TestBroker::start_with(dirs[0].path(), &extras[0]),
        TestBroker::start_with(dirs[1].path(), &extras[1]),
        TestBroker::start_with(dirs[2].path(), &extras[2]),
    );
    let mut brokers = vec![Some(b1), Some(b2), Some(b3)];
    let addrs: Vec<_> = brokers.iter().map(|b| b.as_ref().unwrap().addr).collect();

    // Every node lists three brokers and the same controller.
    let agreed = wait_for(|| {
        let addrs = addrs.clone();
        async move {
            let mut controllers = std::collections::HashSet::new();
            for a in &addrs {
                let md = metadata(&mut Client::connect(*a).await).await;
                if md.brokers.len() != 3 || md.controller_id.0 < 0 {
                    return false;
                }
                controllers.insert(md.controller_id.0);
            }
            controllers.len() == 1
        }
    })
    .await;
    assert!(agreed, "nodes agree on three brokers and one controller");
    let controller = metadata(&mut Client::connect(addrs[0]).await)
        .await
        .controller_id
        .0;
    let follower = (1..=3).find(|n| *n != controller).unwrap();

    // A topic created through a follower is visible everywhere, spread over the brokers.
    let mut c = Client::connect(addrs[follower as usize - 1]).await;
    assert_eq!(
        create_topic(&mut c, "spread", 6).await.topics[0].error_code,
        0
    );
    let visible = wait_for(|| {
        let addrs = addrs.clone();
        async move {
            for a in &addrs {
                let md = metadata(&mut Client::connect(*a).await).await;
                if !md
                    .topics
                    .iter()
                    .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("spread"))
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    assert!(visible);
    let md = metadata(&mut c).await;
    let topic = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "spread")
        .unwrap();
    let leaders: std::collections::HashSet<i32> =
        topic.partitions.iter().map(|p| p.leader_id.0).collect();
    assert_eq!(leaders.len(), 3, "partitions on every broker: {leaders:?}");

    // Produce to each partition's leader; any other broker says NOT_LEADER_OR_FOLLOWER.
    for p in &topic.partitions {
        let leader = p.leader_id.0;
        let other = (1..=3).find(|n| *n != leader).unwrap();
        let mut to_leader = Client::connect(addrs[leader as usize - 1]).await;
        let ok = produce(
            &mut to_leader,
            "spread",
            p.partition_index,
            batch(&[record("k", "v", 1)], Compression::None),
            -1,
        )
        .await;
        assert_eq!(ok.responses[0].partition_responses[0].error_code, 0);
        let mut to_other = Client::connect(addrs[other as usize - 1]).await;
        let no = produce(
            &mut to_other,
            "spread",
            p.partition_index,
            batch(&[record("k", "v", 1)], Compression::None),
            -1,
        )
        .await;
        assert_eq!(
            no.responses[0].partition_responses[0].error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
        assert_eq!(
            fetch(&mut to_leader, "spread", p.partition_index, 0)
                .await
                .high_watermark,
            1
        );
    }

    // Replication factor 3 puts a replica on every broker, all in sync; 4 is refused.
    let create = |rf| {
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(tn(&format!("rf{rf}")))
                .with_num_partitions(1)
                .with_replication_factor(rf),
        ])
    };
    assert_eq!(c.call(&create(3), 7).await.topics[0].error_code, 0);
    assert_eq!(
        c.call(&create(4), 7).await.topics[0].error_code,
        ResponseError::InvalidReplicationFactor.code()
    );
    let md = metadata(&mut c).await;
    let rf3 = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("rf3"))
        .unwrap();
    assert_eq!(rf3.partitions[0].replica_nodes.len(), 3);
    assert_eq!(rf3.partitions[0].isr_nodes.len(), 3);

    // DescribeQuorum names the leader and every voter.
    let dq = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(tn("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let mut to_controller = Client::connect(addrs[controller as usize - 1]).await;
    let q = to_controller.call(&dq, 2).await;
    let part = &q.topics[0].partitions[0];
    assert_eq!(part.leader_id.0, controller);
    assert_eq!(part.current_voters.len(), 3);
    assert!(part.high_watermark > 0);

    // Stop the controller: a new one is elected and topic creation works again.
    brokers[controller as usize - 1]
        .take()
        .unwrap()
        .crash()
        .await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != controller as usize - 1).collect();
    let reelected = wait_for(|| {
        let addrs = addrs.clone();
        let survivors = survivors.clone();
        async move {
            let mut ids = std::collections::HashSet::new();
            for i in &survivors {
                ids.insert(
                    metadata(&mut Client::connect(addrs[*i]).await)
                        .await
                        .controller_id
                        .0,
                );
            }
            ids.len() == 1 && !ids.contains(&-1) && !ids.contains(&controller)
        }
    })
    .await;
    assert!(reelected, "a new controller is elected");
    let mut c = Client::connect(addrs[survivors[0]]).await;
    assert_eq!(
        create_topic(&mut c, "after", 2).await.topics[0].error_code,
        0
    );
    // The stopped broker is fenced: its partitions have no leader until it returns.
    let fenced = wait_for(|| {
        let a = addrs[survivors[0]];
        async move {
            let md = metadata(&mut Client::connect(a).await).await;
            md.brokers.len() == 2
                && md.topics.iter().any(|t| {
                    t.name.as_ref().map(|n| n.0.as_str()) == Some("spread")
                        && t.partitions
                            .iter()
                            .any(|p| p.error_code == ResponseError::LeaderNotAvailable.code())
                })
        }
    })
    .await;
    assert!(
        fenced,
        "the silent broker is fenced and its partitions leaderless"
    );
    for b in brokers.into_iter().flatten() {
        b.stop().await;
    }
}
