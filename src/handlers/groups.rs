//! The consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, TxnOffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete.
//! Wire types in and out; the work is in `crate::group`. Fields a version lacks are never
//! set (kafka-protocol refuses to encode them).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

use super::{str_bytes, Context};
use crate::broker::{now_ms, Broker};
use crate::group::coordinator::{CommitResults, TxnOffsetCommit};
use crate::group::offsets::Written;
use crate::group::state::{CommittedOffset, JoinOutcome, JoinRequest};

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    if request.key_type == 0 {
        if let Err(e) = broker.ensure_offsets_topic().await {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets");
        }
    } else if request.key_type == 1 {
        if let Err(e) = broker.ensure_transaction_state_topic().await {
            tracing::warn!(error = %e.message, "cannot create __transaction_state");
        }
    }
    let lookups: Vec<(String, Result<crate::metadata::BrokerInfo, ResponseError>)> = keys
        .into_iter()
        .map(|key| {
            let found = match request.key_type {
                0 => broker.groups.coordinator_for(&key),
                // The leader of the id's `__transaction_state` partition.
                1 if key.is_empty() => Err(ResponseError::InvalidRequest),
                1 => broker.txn.coordinator_for(&key),
                _ => Err(ResponseError::InvalidRequest),
            };
            (key, found)
        })
        .collect();
    if version >= 4 {
        let coordinators = lookups
            .into_iter()
            .map(|(key, found)| {
                let c = find_coordinator_response::Coordinator::default().with_key(str_bytes(key));
                match found {
                    Ok(b) => c
                        .with_node_id(BrokerId(b.id))
                        .with_host(str_bytes(b.host))
                        .with_port(b.port as i32),
                    Err(e) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code())
                        .with_error_message(Some(str_bytes(e.to_string()))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (_, found) = lookups
        .into_iter()
        .next()
        .unwrap_or((String::new(), Err(ResponseError::InvalidRequest)));
    match found {
        Ok(b) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(b.id))
            .with_host(str_bytes(b.host))
            .with_port(b.port as i32),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_error_message((version >= 1).then(|| str_bytes(e.to_string())))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

pub async fn join(
    broker: &Arc<Broker>,
    ctx: &Context,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let rebalance_timeout = if version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let req = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_timeout.max(0) as u64),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    // Kafka creates `__consumer_offsets` on the first JoinGroup too.
    let out = if broker.ensure_offsets_topic().await.is_err() {
        JoinOutcome::error(ResponseError::CoordinatorNotAvailable, &req.member_id)
    } else {
        broker.groups.join(request.group_id.0.as_str(), req).await
    };
    let mut response = JoinGroupResponse::default()
        .with_error_code(code(out.error))
        .with_generation_id(out.generation)
        .with_protocol_name(out.protocol_name.map(str_bytes))
        .with_leader(str_bytes(out.leader))
        .with_member_id(str_bytes(out.member_id))
        .with_members(
            out.members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    join_group_response::JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        );
    if version >= 7 {
        response = response.with_protocol_type(out.protocol_type.map(str_bytes));
    }
    if version < 7 && response.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        response.protocol_name = Some(str_bytes(""));
    }
    response
}

pub async fn sync(
    broker: &Arc<Broker>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let out = broker
        .groups
        .sync(
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
            request.generation_id,
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
        )
        .await;
    let mut response = SyncGroupResponse::default()
        .with_error_code(code(out.error))
        .with_assignment(out.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(out.protocol_type.map(str_bytes))
            .with_protocol_name(out.protocol_name.map(str_bytes));
    }
    response
}

pub fn heartbeat(
    broker: &Arc<Broker>,
    request: HeartbeatRequest,
    _version: i16,
) -> HeartbeatResponse {
    let result = broker.groups.heartbeat(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(result.err()))
}

pub fn leave(broker: &Arc<Broker>, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    match broker.groups.leave(request.group_id.0.as_str(), &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), r)| {
                    leave_group_response::MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(code(r.err()))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default()
            .with_error_code(code(results.into_iter().next().and_then(|r| r.err()))),
    }
}

/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits to be replicated.
const OFFSETS_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The offsets of an OffsetCommit / TxnOffsetCommit request, stamped with `now`.
fn requested_offsets<'a>(
    topics: impl Iterator<Item = (&'a str, Vec<(i32, i64, i32, Option<&'a str>)>)>,
    now: i64,
) -> Vec<(String, i32, CommittedOffset)> {
    topics
        .flat_map(|(topic, partitions)| {
            partitions
                .into_iter()
                .map(move |(p, offset, leader_epoch, metadata)| {
                    (
                        topic.to_string(),
                        p,
                        CommittedOffset {
                            offset,
                            leader_epoch,
                            metadata: metadata.unwrap_or("").to_string(),
                            commit_timestamp: now,
                        },
                    )
                })
        })
        .collect()
}

/// The error of `topic`/`partition` in a commit's outcome.
fn commit_error(
    result: &Result<CommitResults, ResponseError>,
    topic: &str,
    partition: i32,
) -> Option<ResponseError> {
    match result {
        Err(e) => Some(*e),
        Ok(results) => results
            .iter()
            .find(|(t, p, _)| t.as_str() == topic && *p == partition)
            .and_then(|(_, _, e)| *e),
    }
}

/// Waits until a commit's write is replicated (Kafka answers commits written with
/// acks=all).
async fn replicated(
    result: Result<(CommitResults, Option<Written>), ResponseError>,
) -> Result<CommitResults, ResponseError> {
    match result {
        Ok((results, Some(written))) => written
            .committed(OFFSETS_COMMIT_TIMEOUT)
            .await
            .map(|()| results),
        Ok((results, None)) => Ok(results),
        Err(e) => Err(e),
    }
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let offsets = requested_offsets(
        request.topics.iter().map(|t| {
            (
                t.name.0.as_str(),
                t.partitions
                    .iter()
                    .map(|p| {
                        let epoch = if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        };
                        let metadata = p.committed_metadata.as_deref();
                        (p.partition_index, p.committed_offset, epoch, metadata)
                    })
                    .collect(),
            )
        }),
        now_ms(),
    );
    let result = broker.groups.commit(
        request.group_id.0.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id_or_member_epoch,
        offsets,
    );
    // Answered once the commit is replicated to the in-sync replicas of its partition.
    let result = replicated(result).await;
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = commit_error(&result, t.name.0.as_str(), p.partition_index);
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// TxnOffsetCommit: offsets committed as part of producer's transaction, visible once the
/// transaction commits. Errors as Kafka answers them: a failed wait for replication is
/// COORDINATOR_NOT_AVAILABLE (the client finds the coordinator again and retries), and
/// v0-1 clients get COORDINATOR_NOT_AVAILABLE for COORDINATOR_LOAD_IN_PROGRESS, which
/// producers before Kafka 2.0 do not know.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let offsets = requested_offsets(
        request.topics.iter().map(|t| {
            (
                t.name.0.as_str(),
                t.partitions
                    .iter()
                    .map(|p| {
                        let epoch = if version >= 2 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        };
                        let metadata = p.committed_metadata.as_deref();
                        (p.partition_index, p.committed_offset, epoch, metadata)
                    })
                    .collect(),
            )
        }),
        now_ms(),
    );
    let (member_id, instance_id, generation) = if version >= 3 {
        (
            request.member_id.to_string(),
            request.group_instance_id.as_ref().map(|s| s.to_string()),
            request.generation_id,
        )
    } else {
        (String::new(), None, -1)
    };
    let result = broker.groups.txn_offset_commit(TxnOffsetCommit {
        group_id: request.group_id.0.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        member_id,
        instance_id,
        generation,
        offsets,
    });
    let result = replicated(result).await.map_err(|e| match e {
        ResponseError::RequestTimedOut | ResponseError::NotEnoughReplicasAfterAppend => {
            ResponseError::CoordinatorNotAvailable
        }
        ResponseError::CoordinatorLoadInProgress if version < 2 => {
            ResponseError::CoordinatorNotAvailable
        }
        e => e,
    });
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let error = commit_error(&result, t.name.0.as_str(), p.partition_index);
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// What OffsetFetch answers for one partition: offset, leader epoch, metadata, error.
fn fetched(o: Result<Option<CommittedOffset>, ResponseError>) -> (i64, i32, String, i16) {
    match o {
        Ok(Some(o)) => (o.offset, o.leader_epoch, o.metadata, 0),
        Ok(None) => (-1, -1, String::new(), 0),
        Err(e) => (-1, -1, String::new(), e.code()),
    }
}

pub fn offset_fetch(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // require_stable (v7+): UNSTABLE_OFFSET_COMMIT for partitions of open transactions.
    let require_stable = version >= 7 && request.require_stable;
    let fetch =
        |group: &str, wanted: Wanted| broker.groups.fetch_offsets(group, wanted, require_stable);
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let r = offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone());
                match fetch(g.group_id.0.as_str(), wanted) {
                    Err(e) => r.with_error_code(e.code()),
                    Ok(topics) => r.with_topics(
                        topics
                            .into_iter()
                            .map(|(t, parts)| {
                                let partitions = parts
                                    .into_iter()
                                    .map(|(p, o)| {
                                        let (offset, epoch, metadata, error) = fetched(o);
                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(metadata)))
                                            .with_error_code(error)
                                    })
                                    .collect();
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(t)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match fetch(request.group_id.0.as_str(), wanted) {
        Err(e) => {
            let mut r = OffsetFetchResponse::default();
            if version >= 2 {
                r = r.with_error_code(e.code());
            }
            r
        }
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    let partitions = parts
                        .into_iter()
                        .map(|(p, o)| {
                            let (offset, epoch, metadata, error) = fetched(o);
                            let mut r =
                                offset_fetch_response::OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_metadata(Some(str_bytes(metadata)))
                                    .with_error_code(error);
                            if version >= 5 {
                                r = r.with_committed_leader_epoch(epoch);
                            }
                            r
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(partitions)
                })
                .collect(),
        ),
    }
}

pub fn list_groups(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    // Every group here is a classic group.
    let classic_wanted =
        types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    let groups = if classic_wanted {
        broker.groups.list(&states)
    } else {
        Vec::new()
    };
    ListGroupsResponse::default().with_groups(
        groups
            .into_iter()
            .map(|(id, protocol_type, state)| {
                let mut g = list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(id)))
                    .with_protocol_type(str_bytes(protocol_type));
                if version >= 4 {
                    g = g.with_group_state(str_bytes(state.name()));
                }
                if version >= 5 {
                    g = g.with_group_type(str_bytes("classic"));
                }
                g
            })
            .collect(),
    )
}

pub fn describe_groups(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let mut d =
                describe_groups_response::DescribedGroup::default().with_group_id(id.clone());
            if version >= 3 {
                d = d.with_authorized_operations(if request.include_authorized_operations {
                    // READ, DESCRIBE, DELETE: no authorization here.
                    (1 << 3) | (1 << 6) | (1 << 8)
                } else {
                    i32::MIN
                });
            }
            match broker.groups.describe(id.0.as_str()) {
                Err(e) => d.with_error_code(e.code()),
                Ok(g) => d
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|(id, instance, client_id, host, metadata, assignment)| {
                                let mut m =
                                    describe_groups_response::DescribedGroupMember::default()
                                        .with_member_id(str_bytes(id))
                                        .with_client_id(str_bytes(client_id))
                                        .with_client_host(str_bytes(host))
                                        .with_member_metadata(metadata)
                                        .with_member_assignment(assignment);
                                if version >= 4 {
                                    m = m.with_group_instance_id(instance.map(str_bytes));
                                }
                                m
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(
    broker: &Arc<Broker>,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        request
            .groups_names
            .iter()
            .map(|id| {
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(code(broker.groups.delete(id.0.as_str()).err()))
            })
            .collect(),
    )
}

pub fn offset_delete(
    broker: &Arc<Broker>,
    request: OffsetDeleteRequest,
    _version: i16,
) -> OffsetDeleteResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    match broker
        .groups
        .delete_offsets(request.group_id.0.as_str(), topics)
    {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => OffsetDeleteResponse::default().with_topics(
            results
                .into_iter()
                .map(|(t, parts)| {
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(str_bytes(t)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, e)| {
                                    offset_delete_response::OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code(e))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// An empty assignment is fine for the protocol but must be real bytes, never absent.
#[allow(dead_code)]
fn empty() -> Bytes {
    Bytes::new()
}
