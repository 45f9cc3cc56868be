//! DescribeCluster: the brokers, the cluster id and the controller (this broker on a
//! single node; the Raft leader once the cluster exists).

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;

pub fn describe(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let image = broker.metadata.image();
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(b.port as i32)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(image.cluster_id.clone()))
        .with_controller_id(BrokerId(
            broker.metadata.controller_id().unwrap_or(broker.node_id),
        ))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            super::metadata::CLUSTER_OPERATIONS
        } else {
            i32::MIN
        })
}
