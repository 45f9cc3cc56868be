//! Transactional offset commits end to end: TxnOffsetCommit over raw frames at every
//! advertised version, OffsetFetch with and without require_stable while the transaction is
//! open, the transaction's marker (written in-process, as the marker writer does for a
//! `__consumer_offsets` partition led here) committing or aborting the offsets, producer
//! fencing, and pending offsets surviving a restart until their marker.

mod common;

use std::time::Duration;

use broker::group::offsets::partition_for;
use broker::group::OFFSETS_TOPIC;
use broker::log::control::{marker_batch, ControlType};
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

const CONFIG: &str = r#", "offsets_topic_partitions": 3, "group_initial_rebalance_delay": "0s""#;

fn txn_commit_request(group: &str, pid: i64, epoch: i16, offset: i64) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s("m"))),
                ]),
        ])
}

/// The error of partition t/0 in a TxnOffsetCommit response.
async fn txn_commit(c: &mut Client, req: &TxnOffsetCommitRequest, v: i16) -> i16 {
    let resp = c.call(req, v).await;
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0].partitions[0].error_code
}

/// (committed offset, error) of t/0 for `group`, at OffsetFetch v7 (one group) or v8.
async fn fetch(c: &mut Client, group: &str, stable: bool, v: i16) -> (i64, i16) {
    if v >= 8 {
        let req = OffsetFetchRequest::default()
            .with_require_stable(stable)
            .with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(tn("t"))
                            .with_partition_indexes(vec![0]),
                    ])),
            ]);
        let resp = c.call(&req, v).await;
        assert_eq!(resp.groups[0].error_code, 0);
        let p = &resp.groups[0].topics[0].partitions[0];
        return (p.committed_offset, p.error_code);
    }
    let mut req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn("t"))
                .with_partition_indexes(vec![0]),
        ]));
    if v >= 7 {
        req = req.with_require_stable(stable);
    }
    let resp = c.call(&req, v).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    (p.committed_offset, p.error_code)
}

fn offsets_partition(b: &TestBroker, group: &str) -> i32 {
    let n = b.broker.metadata.image().topics[OFFSETS_TOPIC]
        .partitions
        .len() as i32;
    partition_for(group, n)
}

/// Writes producer `pid`'s marker into the `__consumer_offsets` partition of `group`.
fn write_marker(b: &TestBroker, group: &str, pid: i64, epoch: i16, commit: bool) -> i32 {
    let index = offsets_partition(b, group);
    let hosted = b.broker.partitions.get(OFFSETS_TOPIC, index).unwrap();
    let control = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let batch = marker_batch(pid, epoch, 0, control, 0);
    let (headers, _) = broker::log::batch::split_whole_batches(&batch).unwrap();
    hosted
        .append_as_coordinator(&batch, &headers, 0)
        .expect("the marker is written");
    index
}

/// Writes the marker and tells the group coordinator, as the marker writer does after the
/// marker's commit.
fn end_txn(b: &TestBroker, group: &str, pid: i64, epoch: i16, commit: bool) {
    let index = write_marker(b, group, pid, epoch, commit);
    b.broker.groups.complete_txn(index, pid, commit);
}

/// Creates `__consumer_offsets` and waits until its partitions are loaded here.
async fn ready(c: &mut Client) {
    let find = FindCoordinatorRequest::default().with_key(s("warmup"));
    assert_eq!(c.call(&find, 1).await.error_code, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("warmup")))
            .with_topics(None);
        if c.call(&req, 7).await.error_code == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group coordinator is loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn transactional_offsets_wait_for_their_marker() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), CONFIG).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;
    ready(&mut c).await;

    for v in 0..=5i16 {
        let group = format!("g{v}");
        let pid = 100 + i64::from(v);
        let req = txn_commit_request(&group, pid, 0, 10 + i64::from(v));
        assert_eq!(txn_commit(&mut c, &req, v).await, 0, "TxnOffsetCommit v{v}");
        // Open: require_stable answers UNSTABLE_OFFSET_COMMIT, otherwise nothing is
        // committed yet.
        for fv in [7i16, 8] {
            assert_eq!(
                fetch(&mut c, &group, true, fv).await,
                (-1, ResponseError::UnstableOffsetCommit.code()),
                "v{v} fetch v{fv}"
            );
            assert_eq!(fetch(&mut c, &group, false, fv).await, (-1, 0));
        }
        assert_eq!(fetch(&mut c, &group, false, 6).await, (-1, 0));
        end_txn(&b, &group, pid, 0, true);
        for fv in [6i16, 7, 8] {
            assert_eq!(
                fetch(&mut c, &group, true, fv).await,
                (10 + i64::from(v), 0),
                "committed v{v} fetch v{fv}"
            );
        }
    }

    // An abort drops the transaction's offset; the earlier committed one stays.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("ga")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    assert_eq!(
        c.call(&commit, 2).await.topics[0].partitions[0].error_code,
        0
    );
    let req = txn_commit_request("ga", 200, 0, 20);
    assert_eq!(txn_commit(&mut c, &req, 3).await, 0);
    assert_eq!(fetch(&mut c, "ga", false, 8).await, (5, 0));
    end_txn(&b, "ga", 200, 0, false);
    assert_eq!(fetch(&mut c, "ga", true, 8).await, (5, 0));

    // A producer fenced by a newer epoch of the same producer id.
    let req = txn_commit_request("gf", 300, 2, 1);
    assert_eq!(txn_commit(&mut c, &req, 3).await, 0);
    end_txn(&b, "gf", 300, 2, true);
    let stale = txn_commit_request("gf", 300, 1, 2);
    assert_eq!(
        txn_commit(&mut c, &stale, 3).await,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(fetch(&mut c, "gf", true, 8).await, (1, 0));

    // Unknown partitions, and consumer group metadata of a group that does not exist.
    let mut unknown = txn_commit_request("gu", 400, 0, 1);
    unknown.topics[0].name = tn("nope");
    assert_eq!(
        txn_commit(&mut c, &unknown, 3).await,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let member = txn_commit_request("gv", 400, 0, 1)
        .with_member_id(s("someone"))
        .with_generation_id(3);
    assert_eq!(
        txn_commit(&mut c, &member, 3).await,
        ResponseError::IllegalGeneration.code()
    );
    // "gu" exists now (the first commit created it as a simple group): a member it does
    // not have is unknown.
    let member = txn_commit_request("gu", 400, 0, 1)
        .with_member_id(s("someone"))
        .with_generation_id(3);
    assert_eq!(
        txn_commit(&mut c, &member, 3).await,
        ResponseError::UnknownMemberId.code()
    );

    // DeleteGroups works on a group that has only pending offsets; its marker then finds
    // nothing to commit.
    let req = txn_commit_request("gd", 500, 0, 7);
    assert_eq!(txn_commit(&mut c, &req, 3).await, 0);
    let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("gd"))]);
    assert_eq!(c.call(&del, 2).await.results[0].error_code, 0);
    end_txn(&b, "gd", 500, 0, true);
    assert_eq!(fetch(&mut c, "gd", true, 8).await, (-1, 0));

    // A completion that arrives while the partition is (re)loading is applied when the
    // load finishes, also when the load read the log before the marker was appended.
    let req = txn_commit_request("gl", 700, 0, 70);
    assert_eq!(txn_commit(&mut c, &req, 5).await, 0);
    let index = offsets_partition(&b, "gl");
    b.broker.groups.unload_partition(index);
    b.broker.groups.complete_txn(index, 700, true);
    b.broker.groups.load_partition(index);
    assert_eq!(fetch(&mut c, "gl", true, 8).await, (70, 0));
    write_marker(&b, "gl", 700, 0, true); // the marker that completion stood for

    // Left open across a restart: "gp" stays pending, "gq" was committed before.
    let req = txn_commit_request("gp", 600, 0, 60);
    assert_eq!(txn_commit(&mut c, &req, 5).await, 0);
    let req = txn_commit_request("gq", 601, 0, 61);
    assert_eq!(txn_commit(&mut c, &req, 5).await, 0);
    end_txn(&b, "gq", 601, 0, true);
    b.stop().await;

    let b = TestBroker::start_with(dir.path(), CONFIG).await;
    let mut c = b.client().await;
    ready(&mut c).await;
    assert_eq!(
        fetch(&mut c, "gp", true, 8).await,
        (-1, ResponseError::UnstableOffsetCommit.code())
    );
    assert_eq!(fetch(&mut c, "gq", true, 8).await, (61, 0));
    assert_eq!(fetch(&mut c, "ga", true, 8).await, (5, 0));
    assert_eq!(fetch(&mut c, "gf", true, 8).await, (1, 0));
    assert_eq!(fetch(&mut c, "gd", true, 8).await, (-1, 0));
    assert_eq!(fetch(&mut c, "gl", true, 8).await, (70, 0));
    for v in 0..=5i16 {
        let group = format!("g{v}");
        assert_eq!(fetch(&mut c, &group, true, 8).await.0, 10 + i64::from(v));
    }
    end_txn(&b, "gp", 600, 0, true);
    assert_eq!(fetch(&mut c, "gp", true, 8).await, (60, 0));
    b.stop().await;
}
