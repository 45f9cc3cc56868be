//! The transaction coordinator end to end over a socket, with raw Kafka requests: finding
//! the coordinator, InitProducerId with a transactional id, AddPartitionsToTxn (client and
//! broker forms), AddOffsetsToTxn, EndTxn, fencing by a second InitProducerId, timeouts,
//! expiration, DescribeTransactions / ListTransactions, and the state across a restart.
//! (The markers in the data partitions are another part's; here only the coordinator's
//! answers and states are checked.)

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

const FAST: &str = r#", "transaction_abort_timed_out_interval": "100ms""#;

async fn find_txn_coordinator(c: &mut Client, id: &str) -> FindCoordinatorResponse {
    let req = FindCoordinatorRequest::default()
        .with_key(s(id))
        .with_key_type(1);
    c.call(&req, 3).await
}

async fn init(c: &mut Client, id: &str, timeout_ms: i32, version: i16) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    c.call(&req, version).await
}

/// InitProducerId until it stops answering CONCURRENT_TRANSACTIONS (an abort in progress).
async fn init_retrying(c: &mut Client, id: &str) -> InitProducerIdResponse {
    for _ in 0..100 {
        let r = init(c, id, 60_000, 4).await;
        if r.error_code != ResponseError::ConcurrentTransactions.code() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("InitProducerId kept answering CONCURRENT_TRANSACTIONS");
}

fn add_request(
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    parts: &[i32],
) -> AddPartitionsToTxnRequest {
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(tn(topic))
            .with_partitions(parts.to_vec())])
}

/// The error codes of a v0-3 AddPartitionsToTxn response, per (topic, partition).
fn add_errors(r: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

async fn end(
    c: &mut Client,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
    version: i16,
) -> EndTxnResponse {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    c.call(&req, version).await
}

async fn describe(c: &mut Client, id: &str) -> describe_transactions_response::TransactionState {
    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let mut r = c.call(&req, 0).await;
    r.transaction_states.remove(0)
}

/// Describes `id` until its state is `state`.
async fn wait_state(
    c: &mut Client,
    id: &str,
    state: &str,
) -> describe_transactions_response::TransactionState {
    for _ in 0..200 {
        let d = describe(c, id).await;
        if d.transaction_state.as_str() == state {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} never reached {state}");
}

#[tokio::test]
async fn init_add_commit_abort_and_their_retries() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let f = find_txn_coordinator(&mut c, "tx-a").await;
    assert_eq!(f.error_code, 0, "{:?}", f.error_message);
    assert_eq!(f.port, b.addr.port() as i32);
    // The batched form (v4) too.
    let f4 = c
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("tx-a"), s("tx-b")]),
            4,
        )
        .await;
    assert!(f4
        .coordinators
        .iter()
        .all(|k| k.error_code == 0 && k.node_id.0 == b.broker.node_id));
    create_topic(&mut c, "orders", 3).await;

    let r = init(&mut c, "tx-a", 60_000, 3).await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(epoch, 0);
    let d = describe(&mut c, "tx-a").await;
    assert_eq!(d.transaction_state.as_str(), "Empty");
    assert_eq!(d.producer_id.0, pid);
    assert_eq!(d.transaction_timeout_ms, 60_000);

    // Ending without a transaction is INVALID_TXN_STATE.
    let e = end(&mut c, "tx-a", pid, epoch, true, 3).await;
    assert_eq!(e.error_code, ResponseError::InvalidTxnState.code());

    let a = c
        .call(&add_request("tx-a", pid, epoch, "orders", &[0, 2]), 3)
        .await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0), "{a:?}");
    let d = describe(&mut c, "tx-a").await;
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.topics.len(), 1);
    assert_eq!(d.topics[0].partitions, vec![0, 2]);
    assert!(d.transaction_start_time_ms > 0);

    // The group's offsets partition joins with AddOffsetsToTxn.
    let o = c
        .call(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx-a")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(s("billing"))),
            3,
        )
        .await;
    assert_eq!(o.error_code, 0);
    let d = describe(&mut c, "tx-a").await;
    assert!(d
        .topics
        .iter()
        .any(|t| t.topic.as_str() == "__consumer_offsets"));

    let e = end(&mut c, "tx-a", pid, epoch, true, 3).await;
    assert_eq!(e.error_code, 0);
    let d = wait_state(&mut c, "tx-a", "CompleteCommit").await;
    assert!(d.topics.is_empty());
    // A retried commit is NONE; an abort of the committed transaction INVALID_TXN_STATE.
    assert_eq!(end(&mut c, "tx-a", pid, epoch, true, 3).await.error_code, 0);
    assert_eq!(
        end(&mut c, "tx-a", pid, epoch, false, 3).await.error_code,
        ResponseError::InvalidTxnState.code()
    );

    // The next transaction, aborted.
    let a = c
        .call(&add_request("tx-a", pid, epoch, "orders", &[1]), 1)
        .await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0));
    assert_eq!(
        end(&mut c, "tx-a", pid, epoch, false, 1).await.error_code,
        0
    );
    wait_state(&mut c, "tx-a", "CompleteAbort").await;

    // Unknown partitions fail the whole request, the others are not attempted.
    let a = c
        .call(&add_request("tx-a", pid, epoch, "orders", &[1, 7]), 3)
        .await;
    assert_eq!(
        add_errors(&a),
        vec![
            (
                "orders".into(),
                1,
                ResponseError::OperationNotAttempted.code()
            ),
            (
                "orders".into(),
                7,
                ResponseError::UnknownTopicOrPartition.code()
            ),
        ]
    );
    assert_eq!(
        describe(&mut c, "tx-a").await.transaction_state.as_str(),
        "CompleteAbort"
    );

    // Wrong producer ids, unknown ids, timeouts above the maximum.
    let a = c
        .call(&add_request("tx-a", pid + 1000, epoch, "orders", &[1]), 3)
        .await;
    assert_eq!(
        add_errors(&a)[0].2,
        ResponseError::InvalidProducerIdMapping.code()
    );
    assert_eq!(
        end(&mut c, "nobody", pid, epoch, true, 3).await.error_code,
        ResponseError::InvalidProducerIdMapping.code()
    );
    assert_eq!(
        describe(&mut c, "nobody").await.error_code,
        ResponseError::TransactionalIdNotFound.code()
    );
    assert_eq!(
        init(&mut c, "tx-a", 16 * 60 * 1000, 3).await.error_code,
        ResponseError::InvalidTransactionTimeout.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    assert_eq!(find_txn_coordinator(&mut c, "zombie").await.error_code, 0);
    create_topic(&mut c, "t", 1).await;
    let first = init(&mut c, "zombie", 60_000, 4).await;
    let (pid, old) = (first.producer_id.0, first.producer_epoch);
    let a = c.call(&add_request("zombie", pid, old, "t", &[0]), 3).await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0));

    // The second producer's first call fences and aborts; its retry gets a new epoch.
    let r = init(&mut c, "zombie", 60_000, 4).await;
    assert_eq!(r.error_code, ResponseError::ConcurrentTransactions.code());
    let second = init_retrying(&mut c, "zombie").await;
    assert_eq!(second.error_code, 0);
    assert_eq!(second.producer_id.0, pid);
    assert_eq!(
        second.producer_epoch,
        old + 2,
        "one bump to fence, one for the new producer"
    );
    let d = describe(&mut c, "zombie").await;
    assert_eq!(d.transaction_state.as_str(), "Empty");

    // The zombie is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
    let a = c.call(&add_request("zombie", pid, old, "t", &[0]), 2).await;
    assert_eq!(add_errors(&a)[0].2, ResponseError::ProducerFenced.code());
    let a = c.call(&add_request("zombie", pid, old, "t", &[0]), 1).await;
    assert_eq!(
        add_errors(&a)[0].2,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        end(&mut c, "zombie", pid, old, true, 3).await.error_code,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        end(&mut c, "zombie", pid, old, true, 1).await.error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    // KIP-360: the zombie naming its old epoch is fenced too (INVALID_PRODUCER_EPOCH below v4).
    let bump = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("zombie"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(old);
    assert_eq!(
        c.call(&bump, 4).await.error_code,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        c.call(&bump, 3).await.error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn broker_form_verifies_and_adds_partitions() {
    use add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    find_txn_coordinator(&mut c, "v").await;
    create_topic(&mut c, "t", 2).await;
    let r = init(&mut c, "v", 60_000, 4).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let txn = |verify_only: bool, parts: Vec<i32>| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s("v")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(tn("t"))
                .with_partitions(parts)])
    };
    let errors = |r: &AddPartitionsToTxnResponse| -> Vec<i16> {
        r.results_by_transaction[0].topic_results[0]
            .results_by_partition
            .iter()
            .map(|p| p.partition_error_code)
            .collect()
    };
    let add = c
        .call(
            &AddPartitionsToTxnRequest::default().with_transactions(vec![txn(false, vec![0])]),
            4,
        )
        .await;
    assert_eq!(errors(&add), vec![0]);
    let verify = c
        .call(
            &AddPartitionsToTxnRequest::default().with_transactions(vec![txn(true, vec![0, 1])]),
            4,
        )
        .await;
    assert_eq!(
        errors(&verify),
        vec![0, ResponseError::TransactionAbortable.code()]
    );
    // The local call part E uses gives the same answer.
    let local =
        b.broker
            .txn
            .verify_partitions("v", pid, epoch, &[("t".into(), 0), ("t".into(), 1)]);
    assert_eq!(
        local,
        vec![Ok(()), Err(ResponseError::TransactionAbortable)]
    );
    assert_eq!(
        b.broker
            .txn
            .verify_partitions("v", pid, epoch + 1, &[("t".into(), 0)]),
        vec![Err(ResponseError::ProducerFenced)]
    );
    b.stop().await;
}

#[tokio::test]
async fn timed_out_transactions_are_aborted_and_idle_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(r#"{FAST}, "transactional_id_expiration": "1500ms""#);
    let b = TestBroker::start_with(dir.path(), &extra).await;
    let mut c = b.client().await;
    find_txn_coordinator(&mut c, "slow").await;
    create_topic(&mut c, "t", 1).await;
    let r = init(&mut c, "slow", 300, 4).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let a = c.call(&add_request("slow", pid, epoch, "t", &[0]), 3).await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0));
    // The coordinator aborts it with a fencing epoch: the producer is fenced.
    let d = wait_state(&mut c, "slow", "CompleteAbort").await;
    assert_eq!(d.producer_epoch, epoch + 1);
    assert_eq!(
        end(&mut c, "slow", pid, epoch, true, 3).await.error_code,
        ResponseError::ProducerFenced.code()
    );
    // Idle past transactional_id_expiration: gone.
    for _ in 0..100 {
        if describe(&mut c, "slow").await.error_code
            == ResponseError::TransactionalIdNotFound.code()
        {
            b.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the idle id was not expired");
}

#[tokio::test]
async fn list_filters_and_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    find_txn_coordinator(&mut c, "l-1").await;
    create_topic(&mut c, "t", 1).await;
    let one = init(&mut c, "l-1", 60_000, 4).await;
    let two = init(&mut c, "l-2", 60_000, 4).await;
    let a = c
        .call(
            &add_request("l-2", two.producer_id.0, two.producer_epoch, "t", &[0]),
            3,
        )
        .await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0));
    let list = |states: Vec<&str>, pids: Vec<i64>, pattern: Option<&str>| {
        ListTransactionsRequest::default()
            .with_state_filters(states.into_iter().map(s).collect())
            .with_producer_id_filters(pids.into_iter().map(ProducerId).collect())
            .with_duration_filter(-1)
            .with_transactional_id_pattern(pattern.map(s))
    };
    let ids = |r: &ListTransactionsResponse| -> Vec<String> {
        r.transaction_states
            .iter()
            .map(|t| t.transactional_id.to_string())
            .collect()
    };
    let all = c.call(&list(vec![], vec![], None), 0).await;
    assert_eq!(ids(&all), vec!["l-1", "l-2"]);
    let ongoing = c
        .call(&list(vec!["Ongoing", "Bogus"], vec![], None), 1)
        .await;
    assert_eq!(ids(&ongoing), vec!["l-2"]);
    assert_eq!(ongoing.unknown_state_filters, vec![s("Bogus")]);
    let by_pid = c
        .call(&list(vec![], vec![one.producer_id.0], None), 0)
        .await;
    assert_eq!(ids(&by_pid), vec!["l-1"]);
    let by_pattern = c.call(&list(vec![], vec![], Some("l-[2-9]")), 2).await;
    assert_eq!(ids(&by_pattern), vec!["l-2"]);
    let bad = c.call(&list(vec![], vec![], Some("(")), 2).await;
    assert_eq!(
        bad.error_code,
        ResponseError::InvalidRegularExpression.code()
    );
    let long = c
        .call(
            &list(vec!["Ongoing"], vec![], None).with_duration_filter(3_600_000),
            1,
        )
        .await;
    assert!(ids(&long).is_empty());
    b.stop().await;

    // After a restart the coordinator loads both ids back from __transaction_state.
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let d = describe(&mut c, "l-2").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.topics[0].partitions, vec![0]);
    assert_eq!(d.producer_epoch, two.producer_epoch);
    let e = end(
        &mut c,
        "l-2",
        two.producer_id.0,
        two.producer_epoch,
        true,
        3,
    )
    .await;
    assert_eq!(e.error_code, 0);
    wait_state(&mut c, "l-2", "CompleteCommit").await;
    // The first id continues with the next epoch.
    let again = init(&mut c, "l-1", 60_000, 4).await;
    assert_eq!(
        (again.producer_id.0, again.producer_epoch),
        (one.producer_id.0, one.producer_epoch + 1)
    );
    b.stop().await;
}

#[tokio::test]
async fn end_txn_v5_bumps_the_epoch_per_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    find_txn_coordinator(&mut c, "v2").await;
    create_topic(&mut c, "t", 1).await;
    let r = init(&mut c, "v2", 60_000, 5).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let a = c.call(&add_request("v2", pid, epoch, "t", &[0]), 3).await;
    assert!(add_errors(&a).iter().all(|(_, _, e)| *e == 0));
    let e = end(&mut c, "v2", pid, epoch, true, 5).await;
    assert_eq!(e.error_code, 0);
    assert_eq!((e.producer_id.0, e.producer_epoch), (pid, epoch + 1));
    wait_state(&mut c, "v2", "CompleteCommit").await;
    // The retry with the old epoch is recognised and answered with the new one.
    let retry = end(&mut c, "v2", pid, epoch, true, 5).await;
    assert_eq!(retry.error_code, 0);
    assert_eq!(retry.producer_epoch, epoch + 1);
    b.stop().await;
}

#[tokio::test]
async fn a_new_coordinator_finishes_a_transaction_found_prepared() {
    use broker::txn::state::{TxnMetadata, TxnState};
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    find_txn_coordinator(&mut c, "p").await;
    create_topic(&mut c, "t", 1).await;
    let r = init(&mut c, "p", 60_000, 4).await;
    // A coordinator that persisted PrepareCommit and stopped before writing the markers
    // leaves this record behind.
    let index = b.broker.txn.partition_for("p");
    let hosted = b
        .broker
        .partitions
        .get(broker::txn::TRANSACTION_STATE_TOPIC, index)
        .unwrap();
    let now = broker::clock::now_ms();
    let prepared = TxnMetadata {
        producer_id: r.producer_id.0,
        prev_producer_id: r.producer_id.0,
        next_producer_id: -1,
        producer_epoch: r.producer_epoch,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::PrepareCommit,
        partitions: [("t".to_string(), 0)].into_iter().collect(),
        start_ms: now,
        update_ms: now,
        tv2: false,
    };
    broker::txn::log::write(&hosted, "p", Some(&prepared), 1, now)
        .unwrap()
        .committed(Duration::from_secs(5))
        .await
        .unwrap();
    b.stop().await;

    let b = TestBroker::start(dir.path()).await;
    let mut c = b.client().await;
    let d = wait_state(&mut c, "p", "CompleteCommit").await;
    assert_eq!(d.producer_epoch, r.producer_epoch);
    assert!(d.topics.is_empty());
    b.stop().await;
}
