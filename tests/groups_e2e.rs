//! Consumer group APIs end to end over raw frames, at every advertised version: one member
//! joins, syncs, heartbeats, commits, fetches its offsets and leaves; the group is listed,
//! described and deleted; offsets survive a restart.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

fn group_config() -> &'static str {
    r#", "group_initial_rebalance_delay": "0s""#
}

async fn join(c: &mut Client, group: &str, member: &str, v: i16) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(if v >= 1 { 10_000 } else { -1 })
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x01t"))]);
    c.call(&req, v).await
}

#[tokio::test]
async fn one_member_lifecycle_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_with(dir.path(), group_config()).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;

    for v in 0..=4i16 {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req = req.with_coordinator_keys(vec![s("g")]);
        } else {
            req = req.with_key(s("g"));
        }
        let resp = c.call(&req, v).await;
        if v >= 4 {
            assert_eq!(resp.coordinators[0].error_code, 0);
            assert_eq!(resp.coordinators[0].node_id, BrokerId(1));
        } else {
            assert_eq!(resp.error_code, 0, "v{v}");
            assert_eq!(resp.port, b.addr.port() as i32);
        }
    }

    for v in 0..=9i16 {
        let group = format!("g{v}");
        let mut resp = join(&mut c, &group, "", v).await;
        if v >= 4 {
            assert_eq!(
                resp.error_code,
                ResponseError::MemberIdRequired.code(),
                "v{v}"
            );
            resp = join(&mut c, &group, &resp.member_id.to_string(), v).await;
        }
        assert_eq!(resp.error_code, 0, "join v{v}");
        assert_eq!(resp.generation_id, 1);
        assert_eq!(resp.leader, resp.member_id);
        assert_eq!(resp.members.len(), 1);
        let member = resp.member_id.clone();

        let sv = v.min(5);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(member.clone())
                    .with_assignment(Bytes::from_static(b"assignment")),
            ]);
        if sv >= 5 {
            sync = sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        let resp = c.call(&sync, sv).await;
        assert_eq!(resp.error_code, 0, "sync v{sv}");
        assert_eq!(resp.assignment, Bytes::from_static(b"assignment"));

        let hv = v.min(4);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(member.clone());
        assert_eq!(c.call(&hb, hv).await.error_code, 0, "heartbeat v{hv}");
        assert_eq!(
            c.call(&hb.clone().with_generation_id(0), hv)
                .await
                .error_code,
            ResponseError::IllegalGeneration.code()
        );

        let cv = v.clamp(2, 9);
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(member.clone())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(tn("t"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42)
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ]);
        let resp = c.call(&commit, cv).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0, "commit v{cv}");

        let fv = v.clamp(1, 9);
        let resp = if fv >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(tn("t"))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ]);
            let r = c.call(&req, fv).await;
            let parts = &r.groups[0].topics[0].partitions;
            (
                parts[0].committed_offset,
                parts[1].committed_offset,
                parts[1].metadata.clone(),
            )
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![0, 1]),
                ]));
            let r = c.call(&req, fv).await;
            let parts = &r.topics[0].partitions;
            (
                parts[0].committed_offset,
                parts[1].committed_offset,
                parts[1].metadata.clone(),
            )
        };
        assert_eq!(resp, (-1, 42, Some(s("meta"))), "offset fetch v{fv}");

        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(member.clone())
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(member.clone())
        };
        let resp = c.call(&leave, lv).await;
        assert_eq!(resp.error_code, 0, "leave v{lv}");
    }

    for v in 0..=5i16 {
        let resp = c.call(&ListGroupsRequest::default(), v).await;
        assert_eq!(resp.groups.len(), 10, "list v{v}");
        let resp = c
            .call(
                &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g3"))]),
                v,
            )
            .await;
        assert_eq!(resp.groups[0].error_code, 0);
        assert_eq!(resp.groups[0].group_state.as_str(), "Empty");
    }
    let del = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g9")))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(1),
                ]),
        ]);
    assert_eq!(c.call(&del, 0).await.error_code, 0);
    for v in 0..=2i16 {
        let resp = c
            .call(
                &DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(s(&format!("g{v}")))]),
                v,
            )
            .await;
        assert_eq!(resp.results[0].error_code, 0, "delete groups v{v}");
    }
    b.stop().await;

    // Offsets and groups survive a restart; deleted ones stay deleted.
    let b = TestBroker::start_with(dir.path(), group_config()).await;
    let mut c = b.client().await;
    let resp = c.call(&ListGroupsRequest::default(), 4).await;
    let mut names: Vec<String> = resp
        .groups
        .iter()
        .map(|g| g.group_id.0.to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["g3", "g4", "g5", "g6", "g7", "g8", "g9"]);
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g5")))
        .with_topics(None);
    let r = c.call(&req, 7).await;
    assert_eq!(r.topics[0].partitions[0].committed_offset, 42);
    let r = c
        .call(&req.clone().with_group_id(GroupId(s("g9"))), 7)
        .await;
    assert!(r.topics.is_empty(), "OffsetDelete removed g9's offset");
    b.stop().await;
}
