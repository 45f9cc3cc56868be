//! InitProducerId (v0-5): gives idempotent producers their producer id.
//!
//! - `transactional_id` null: a new producer id with epoch 0 on every call, as Apache
//!   Kafka's `TransactionCoordinator.handleInitProducerId` does for idempotent producers (a
//!   producer id and epoch sent in the request, v3+, are checked for consistency and then
//!   ignored; the Java producer bumps its epoch client-side instead).
//! - `transactional_id` set: transactions are not supported, so the answer is
//!   TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53). Every client treats it as fatal at once
//!   (Java: `TransactionalIdAuthorizationException` from `initTransactions()`; librdkafka and
//!   franz-go: a non-retriable error), which is what a producer that cannot get transactions
//!   should see. The alternatives are worse: COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR /
//!   COORDINATOR_LOAD_IN_PROGRESS make Java retry until `max.block.ms` and fail with a
//!   timeout that hides the cause, and other codes become Java's generic "Unexpected error
//!   in InitProducerIdResponse". Produce refuses transactional requests with the same code.
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
    _version: i16,
) -> InitProducerIdResponse {
    if let Some(id) = &request.transactional_id {
        if id.0.is_empty() {
            // Kafka: an empty transactional id is an invalid request, not a transaction.
            return refused(ResponseError::InvalidRequest);
        }
        tracing::info!(
            transactional_id = %id.0.as_str(),
            "refused InitProducerId for a transactional producer: transactions are not supported"
        );
        return refused(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if (request.producer_id.0 == -1) != (request.producer_epoch == -1) {
        return refused(ResponseError::InvalidRequest);
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
