//! Request frames for the integration tests, the fuzz seed corpus and the benchmarks.
//!
//! Frames are bodies without the 4-byte length prefix, as `protocol::frame::take_frame`
//! hands them to `protocol::codec::decode_request`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use bytes::{BufMut, Bytes, BytesMut};
use protocol::codec::{decode_request, DecodeError, Decoded};
use protocol::kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use protocol::kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use protocol::kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic,
};
use protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use protocol::kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use protocol::kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use protocol::kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use protocol::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use protocol::kafka_protocol::messages::*;
use protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use protocol::versions::{PRODUCE_MIN_DECODABLE, SUPPORTED};

pub fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

pub fn topic(v: &'static str) -> TopicName {
    TopicName(s(v))
}

/// The directory of captured client frames.
pub fn frames_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/frames")
}

/// A captured client frame from `tests/frames/`.
pub fn captured(name: &str) -> Bytes {
    let path = frames_dir().join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Header and body of one request, encoded the way a client sends them.
pub fn frame_of(key: ApiKey, version: i16, correlation_id: i32, body: &RequestKind) -> Bytes {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("seed-gen")))
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version)
        .unwrap_or_else(|e| panic!("encoding {key:?} v{version}: {e}"));
    out.freeze()
}

/// Prepends the 4-byte size, as on the wire.
pub fn with_length_prefix(frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + frame.len());
    out.put_i32(frame.len() as i32);
    out.put_slice(frame);
    out.freeze()
}

/// A v2 record batch of `count` uncompressed records with `value_len`-byte values.
pub fn record_batch(count: usize, value_len: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut headers = protocol::kafka_protocol::indexmap::IndexMap::new();
            headers.insert(s("trace"), Some(Bytes::from_static(b"abc")));
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers,
            }
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

/// Produce to one partition with one record batch carrying `payload` value bytes in total
/// (split into records of at most 1 KiB).
pub fn produce(payload: usize) -> ProduceRequest {
    let per_record = payload.clamp(1, 1024);
    let count = payload.div_ceil(per_record).max(1);
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("orders"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(record_batch(count, per_record)))])])
}

/// A consumer's Fetch of three partitions of two topics.
pub fn fetch(version: i16) -> FetchRequest {
    let partition = |index: i32, offset: i64| {
        let mut p = FetchPartition::default()
            .with_partition(index)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1_048_576);
        if version >= 5 {
            p = p.with_log_start_offset(0);
        }
        if version >= 9 {
            p = p.with_current_leader_epoch(3);
        }
        if version >= 12 {
            p = p.with_last_fetched_epoch(2);
        }
        p
    };
    let mut request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_isolation_level(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![partition(0, 42), partition(1, 7)]),
            FetchTopic::default()
                .with_topic(topic("payments"))
                .with_partitions(vec![partition(0, 1_000_000)]),
        ]);
    if version >= 7 {
        request = request
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic(topic("old"))
                .with_partitions(vec![0, 1])]);
    }
    if version >= 11 {
        request = request.with_rack_id(s("rack-a"));
    }
    request
}

/// Metadata for `topics` named topics (`None`: all topics).
pub fn metadata(version: i16, topics: Option<usize>) -> MetadataRequest {
    let topics = topics.map(|n| {
        (0..n)
            .map(|i| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(format!("topic-{i}")))))
            })
            .collect()
    });
    let mut request = MetadataRequest::default().with_topics(topics);
    if version >= 4 {
        request = request.with_allow_auto_topic_creation(false);
    }
    if version >= 8 {
        request = request.with_include_topic_authorized_operations(true);
    }
    request
}

/// A meaningful request of a supported API at `version`, or `None` for an API this file
/// has no sample for yet (add one when an API joins `SUPPORTED`).
pub fn sample(key: ApiKey, version: i16) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(produce(64)),
        ApiKey::Fetch => RequestKind::Fetch(fetch(version)),
        ApiKey::Metadata => RequestKind::Metadata(metadata(version, Some(2))),
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if version >= 3 {
                r = r
                    .with_client_software_name(s("seed-gen"))
                    .with_client_software_version(s("1.0.0"));
            }
            RequestKind::ApiVersions(r)
        }
        ApiKey::ListOffsets => {
            let mut p = ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1);
            if version >= 4 {
                p = p.with_current_leader_epoch(3);
            }
            let mut r = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![p])]);
            if version >= 2 {
                r = r.with_isolation_level(1);
            }
            RequestKind::ListOffsets(r)
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic("orders"))
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_configs(vec![CreatableTopicConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("60000")))]),
                    CreatableTopic::default()
                        .with_name(topic("placed"))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(vec![CreatableReplicaAssignment::default()
                            .with_partition_index(0)
                            .with_broker_ids(vec![BrokerId(1)])]),
                ]),
        ),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![topic("orders"), topic("payments")]),
        ),
        ApiKey::OffsetForLeaderEpoch => {
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(3)
                        .with_leader_epoch(2)]),
            ]);
            if version >= 3 {
                r = r.with_replica_id(BrokerId(-1));
            }
            RequestKind::OffsetForLeaderEpoch(r)
        }
        ApiKey::DescribeConfigs => {
            let mut r = DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configuration_keys(Some(vec![s("retention.ms")])),
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1"))
                        .with_configuration_keys(None),
                ]);
            if version >= 3 {
                r = r.with_include_documentation(true);
            }
            RequestKind::DescribeConfigs(r)
        }
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic("orders"))
                        .with_count(6)
                        .with_assignments(None),
                    CreatePartitionsTopic::default()
                        .with_name(topic("placed"))
                        .with_count(2)
                        .with_assignments(Some(vec![CreatePartitionsAssignment::default()
                            .with_broker_ids(vec![BrokerId(1)])])),
                ]),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![
                        AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("1000"))),
                        AlterableConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_config_operation(1)
                            .with_value(None),
                    ]),
            ]),
        ),
        ApiKey::DescribeCluster => {
            let mut r =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if version >= 1 {
                r = r.with_endpoint_type(1);
            }
            RequestKind::DescribeCluster(r)
        }
        ApiKey::OffsetCommit => {
            let mut p = OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(42)
                .with_committed_metadata(Some(s("meta")));
            if version >= 6 {
                p = p.with_committed_leader_epoch(3);
            }
            let mut r = OffsetCommitRequest::default()
                .with_group_id(GroupId(s("group-1")))
                .with_generation_id_or_member_epoch(5)
                .with_member_id(s("member-1"))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![p])]);
            if version <= 4 {
                r = r.with_retention_time_ms(-1);
            }
            if version >= 7 {
                r = r.with_group_instance_id(Some(s("instance-1")));
            }
            RequestKind::OffsetCommit(r)
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if version <= 7 {
                r = r
                    .with_group_id(GroupId(s("group-1")))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1])]));
            } else {
                let mut g = OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("group-1")))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 1])]));
                if version >= 9 {
                    g = g.with_member_id(Some(s("member-1"))).with_member_epoch(5);
                }
                r = r.with_groups(vec![g]);
            }
            if version >= 7 {
                r = r.with_require_stable(true);
            }
            RequestKind::OffsetFetch(r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version <= 3 {
                r = r.with_key(s("group-1"));
            } else {
                r = r.with_coordinator_keys(vec![s("group-1"), s("group-2")]);
            }
            if version >= 1 {
                r = r.with_key_type(0);
            }
            RequestKind::FindCoordinator(r)
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default()
                .with_group_id(GroupId(s("group-1")))
                .with_session_timeout_ms(45_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(b"\0\x03\0\0\0\x01\0\x06orders"))]);
            if version >= 1 {
                r = r.with_rebalance_timeout_ms(300_000);
            }
            if version >= 5 {
                r = r.with_group_instance_id(Some(s("instance-1")));
            }
            if version >= 8 {
                r = r.with_reason(Some(s("rebalance")));
            }
            RequestKind::JoinGroup(r)
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default()
                .with_group_id(GroupId(s("group-1")))
                .with_generation_id(5)
                .with_member_id(s("member-1"));
            if version >= 3 {
                r = r.with_group_instance_id(Some(s("instance-1")));
            }
            RequestKind::Heartbeat(r)
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default().with_group_id(GroupId(s("group-1")));
            if version <= 2 {
                r = r.with_member_id(s("member-1"));
            } else {
                let mut m = MemberIdentity::default()
                    .with_member_id(s("member-1"))
                    .with_group_instance_id(Some(s("instance-1")));
                if version >= 5 {
                    m = m.with_reason(Some(s("shutdown")));
                }
                r = r.with_members(vec![m]);
            }
            RequestKind::LeaveGroup(r)
        }
        ApiKey::SyncGroup => {
            let mut r = SyncGroupRequest::default()
                .with_group_id(GroupId(s("group-1")))
                .with_generation_id(5)
                .with_member_id(s("member-1"))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s("member-1"))
                    .with_assignment(Bytes::from_static(b"\0\x03\0\0\0\x01\0\x06orders"))]);
            if version >= 3 {
                r = r.with_group_instance_id(Some(s("instance-1")));
            }
            if version >= 5 {
                r = r
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            RequestKind::SyncGroup(r)
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("group-1")), GroupId(s("group-2"))]);
            if version >= 3 {
                r = r.with_include_authorized_operations(true);
            }
            RequestKind::DescribeGroups(r)
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsRequest::default();
            if version >= 4 {
                r = r.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if version >= 5 {
                r = r.with_types_filter(vec![s("classic")]);
            }
            RequestKind::ListGroups(r)
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s("group-1")), GroupId(s("group-2"))]),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("group-1")))
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
        ),
        _ => return None,
    })
}

/// Every decodable supported (api, version), with a sample frame for it.
pub fn sample_frames() -> Vec<(ApiKey, i16, Bytes)> {
    let mut out = Vec::new();
    for range in SUPPORTED {
        let low = if range.key == ApiKey::Produce {
            range.min.max(PRODUCE_MIN_DECODABLE)
        } else {
            range.min
        };
        for version in low..=range.max {
            let Some(body) = sample(range.key, version) else {
                eprintln!(
                    "no sample request for {:?}: add one to tests/common",
                    range.key
                );
                break;
            };
            let correlation_id = out.len() as i32 + 1;
            out.push((
                range.key,
                version,
                frame_of(range.key, version, correlation_id, &body),
            ));
        }
    }
    out
}

/// Every captured client frame in `tests/frames/`, sorted by name.
pub fn captured_frames() -> Vec<(String, Bytes)> {
    let mut names: Vec<String> = std::fs::read_dir(frames_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let f = captured(&n);
            (n, f)
        })
        .collect()
}

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that remembers, per thread, the largest single allocation asked for.
/// Install it with `#[global_allocator] static A: common::Watch = common::Watch;` and
/// measure with [`largest_allocation`].
pub struct Watch;

fn note(size: usize) {
    // `try_with`: nothing to note while the thread's locals are being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from this allocator (which is `System`'s) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the largest single allocation it asked for (on
/// this thread). Meaningful only in a test binary that installs [`Watch`].
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(|l| l.get()))
}

/// No decode of a frame of a few hundred bytes may ask for more than this at once.
pub const ALLOCATION_BOUND: usize = 4 << 20;

/// Every client-shaped frame the tests know: captured ones and one per supported version.
pub fn all_frames() -> Vec<(String, Bytes)> {
    let mut frames = captured_frames();
    for (key, version, frame) in sample_frames() {
        frames.push((format!("{key:?} v{version}"), frame));
    }
    frames
}

/// `decode_request`, failing the test if it asked for more than [`ALLOCATION_BOUND`] in one
/// allocation (needs [`Watch`] installed). An allocation the system refuses aborts the
/// test binary instead; to see which frame did it, run with `TRACE_DECODES=1` and
/// `--nocapture`: every frame is printed before it is decoded.
pub fn decode_bounded(frame: &Bytes, what: &str) -> Result<Decoded, DecodeError> {
    if std::env::var_os("TRACE_DECODES").is_some() {
        eprintln!("{what} {:02x?}", &frame[..]);
    }
    let (result, largest) = largest_allocation(|| decode_request(frame));
    assert!(
        largest <= ALLOCATION_BOUND,
        "{what}: a {}-byte frame made the decoder ask for {largest} bytes at once",
        frame.len()
    );
    result
}
