//! Test support: a broker started in-process on an ephemeral port, and a minimal client
//! that speaks raw Kafka frames through the kafka-protocol crate.
#![allow(dead_code)]

pub mod cluster;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use broker::broker::Broker;
use broker::config::Config;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A broker running in this process.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub fn config_for(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"{{"data_dir": "{}", "server": {{"host": "127.0.0.1", "port": 9092}} {extra} }}"#,
        dir.display()
    );
    Config::parse(&text, "test").expect("test config is valid")
}

impl TestBroker {
    pub async fn start(dir: &Path) -> TestBroker {
        TestBroker::start_with(dir, "").await
    }

    /// Starts a broker; `extra` is appended to the top-level JSON object (", \"k\": v").
    pub async fn start_with(dir: &Path, extra: &str) -> TestBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = config_for(dir, extra);
        config.server.port = addr.port();
        config.server.advertised_host = "127.0.0.1".into();
        let broker = Broker::open(config).await.expect("broker opens");
        broker.spawn_background_tasks();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(broker::server::run(listener, broker.clone(), rx));
        TestBroker {
            addr,
            broker,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.broker.shutdown().await;
    }

    /// Stops serving and stops the Raft node without closing the partition logs: what a
    /// crash leaves behind, for recovery tests in one process.
    pub async fn crash(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.broker.stop_tasks();
        self.broker.metadata.shutdown().await;
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A raw Kafka client connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_correlation: 1,
        }
    }

    /// Encodes a request frame (length prefix included).
    pub fn frame<R: Request>(&mut self, body: &R, version: i16) -> (i32, Bytes) {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let mut out = BytesMut::new();
        out.put_i32(0);
        let key = ApiKey::try_from(R::KEY).unwrap();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("it")))
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version)
            .unwrap_or_else(|e| panic!("cannot encode {:?} v{version}: {e}", key));
        let size = (out.len() - 4) as i32;
        out[0..4].copy_from_slice(&size.to_be_bytes());
        (correlation_id, out.freeze())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame; returns its correlation id and the body after the header.
    pub async fn read_frame(&mut self, header_version: i16) -> Option<(i32, Bytes)> {
        let size = self.stream.read_i32().await.ok()?;
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        let mut bytes = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut bytes, header_version).ok()?;
        Some((header.correlation_id, bytes))
    }

    /// Sends a request and decodes its response.
    pub async fn call<R: Request>(&mut self, body: &R, version: i16) -> R::Response {
        let (cid, frame) = self.frame(body, version);
        self.send_raw(&frame).await;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(version)
        };
        let (got, mut body) = self.read_frame(hv).await.expect("a response");
        assert_eq!(got, cid, "responses come in request order");
        R::Response::decode(&mut body, version).unwrap()
    }

    /// True when the broker closed the connection.
    pub async fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub fn tn(text: &str) -> TopicName {
    TopicName(s(text))
}

/// A record with a key, value and one header.
pub fn record(key: &str, value: &str, timestamp: i64) -> Record {
    let mut headers = indexmap::IndexMap::new();
    headers.insert(s("h"), Some(Bytes::from(format!("hv-{key}"))));
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers,
    }
}

/// Encodes records as one v2 batch (offsets relative from 0).
pub fn batch(records: &[Record], compression: Compression) -> Bytes {
    let mut records = records.to_vec();
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
        // kafka-protocol starts a new batch when offset - sequence changes; keep it
        // constant so the records form one batch whose base sequence is -1 (no producer id).
        r.sequence = i as i32 - 1;
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn decode_records(bytes: &Bytes) -> Vec<Record> {
    let mut b = bytes.clone();
    let mut out = Vec::new();
    while b.remaining() > 0 {
        let set = RecordBatchDecoder::decode(&mut b).unwrap();
        out.extend(set.records);
    }
    out
}

/// A CreateTopics request for one topic with these configs.
pub fn create_topic_request(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
}

pub async fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    client.call(&req, 7).await
}

pub async fn produce(
    client: &mut Client,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceResponse {
    let req = produce_request(topic, partition, records, acks);
    client.call(&req, 9).await
}

pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

/// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest), as a consumer asks.
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp),
            ])])
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1024 * 1024)])])
}

pub async fn fetch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> fetch_response::PartitionData {
    let resp = client
        .call(&fetch_request(topic, partition, offset, 0, 0), 12)
        .await;
    resp.responses[0].partitions[0].clone()
}

/// Encodes records as one v2 batch from an idempotent producer: `producer_id`, `epoch`,
/// and sequences `base_sequence, base_sequence + 1, ...` (offsets relative from 0).
pub fn idempotent_batch(
    records: &[Record],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    compression: Compression,
) -> Bytes {
    let mut records = records.to_vec();
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = i as i64;
        r.producer_id = producer_id;
        r.producer_epoch = epoch;
        // offset - sequence stays constant, so kafka-protocol keeps one batch.
        r.sequence = base_sequence.wrapping_add(i as i32);
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Sends a non-transactional InitProducerId at `version`.
pub async fn init_producer_id(client: &mut Client, version: i16) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    client.call(&req, version).await
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The config fields (to append to a test broker's JSON) that make it node `node` of a
/// Raft cluster over `raft_ports`, with fast timings (25 ms ticks).
pub fn cluster_extra(node: u64, raft_ports: &[u16]) -> String {
    let members: Vec<String> = raft_ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect();
    format!(
        r#", "cluster": {{"enabled": true, "node_id": {node}, "raft_address": "127.0.0.1:{}",
             "initial_members": [{}], "rtt_ms": 25, "election_rtt": 10, "heartbeat_rtt": 1}}"#,
        raft_ports[node as usize - 1],
        members.join(", ")
    )
}
