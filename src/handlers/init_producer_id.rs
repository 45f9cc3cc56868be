//! InitProducerId (v0-5): gives producers their producer id and epoch.
//!
//! - `transactional_id` null: a new producer id with epoch 0 on every call, as Apache
//!   Kafka's `TransactionCoordinator.handleInitProducerId` does for idempotent producers (a
//!   producer id and epoch sent in the request, v3+, are checked for consistency and then
//!   ignored; the Java producer bumps its epoch client-side instead).
//! - `transactional_id` set: the transaction coordinator ([`crate::txn`]) answers: the
//!   id's producer id with its epoch bumped (fencing older producers of the id), a new
//!   producer id when the epochs ran out, CONCURRENT_TRANSACTIONS while it aborts the id's
//!   open transaction first, INVALID_TRANSACTION_TIMEOUT for a `transaction_timeout_ms`
//!   above `transaction_max_timeout` (or not positive), NOT_COORDINATOR /
//!   COORDINATOR_LOAD_IN_PROGRESS as Kafka. `__transaction_state` is created on the first
//!   call if FindCoordinator did not create it. PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
//!   below v4 (KIP-588).
//! - Producer id and epoch: both -1 or both set, else INVALID_REQUEST (as Kafka's
//!   `KafkaApis.handleInitProducerIdRequest`); an empty transactional id is INVALID_REQUEST
//!   too (Kafka's `TransactionCoordinator`).
//! - No id can be allocated (the metadata store failed): COORDINATOR_LOAD_IN_PROGRESS, the
//!   retriable error Kafka answers when its producer id manager has no block.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::broker::Broker;

fn refused(error: ResponseError) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub async fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return refused(ResponseError::InvalidRequest);
    }
    if let Some(id) = &request.transactional_id {
        if id.0.is_empty() {
            // Kafka: an empty transactional id is an invalid request, not a transaction.
            return refused(ResponseError::InvalidRequest);
        }
        if let Err(e) = broker.ensure_transaction_state_topic().await {
            tracing::warn!(error = %e.message, "cannot create __transaction_state");
        }
        let expected =
            (request.producer_id.0 >= 0).then_some((request.producer_id.0, request.producer_epoch));
        return match broker
            .txn
            .init_producer_id(id, request.transaction_timeout_ms, expected)
            .await
        {
            Ok((producer_id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Err(ResponseError::ProducerFenced) if version < 4 => {
                refused(ResponseError::InvalidProducerEpoch)
            }
            Err(e) => refused(e),
        };
    }
    match broker.producer_ids.next_id(&broker.metadata).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "InitProducerId failed");
            refused(ResponseError::CoordinatorLoadInProgress)
        }
    }
}
