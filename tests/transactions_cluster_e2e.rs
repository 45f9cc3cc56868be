//! The transaction coordinator across three in-process brokers: `__transaction_state` has
//! three replicas; when the coordinator of a transactional id dies, the broker that leads
//! the id's partition next has loaded the id (its open transaction, partitions and epoch)
//! from its replica and finishes the transaction and serves the id's producer.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;

const REPLICATED_TXN: &str =
    r#", "transaction_state_replication_factor": 3, "transaction_state_partitions": 3"#;

fn retriable(code: i16) -> bool {
    [
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::CoordinatorNotAvailable.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::ConcurrentTransactions.code(),
    ]
    .contains(&code)
}

/// FindCoordinator (v4, transaction) asked to `addr`: the coordinator's id and address.
async fn find(addr: SocketAddr, id: &str) -> Option<Result<(i32, SocketAddr), i16>> {
    let mut c = try_connect(addr).await?;
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![s(id)]);
    let resp = try_call(&mut c, &req, 4).await?;
    let found = resp.coordinators.first()?;
    if found.error_code != 0 {
        return Some(Err(found.error_code));
    }
    let at = format!("{}:{}", found.host.as_str(), found.port)
        .parse()
        .ok()?;
    Some(Ok((found.node_id.0, at)))
}

/// Repeats `call` against the id's current coordinator (found through `ask`) until it
/// answers something other than a retriable coordinator error.
async fn coordinated<T, F, Fut>(ask: &[SocketAddr], id: &str, mut call: F) -> (i32, T)
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Option<Result<T, i16>>>,
{
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = String::new();
    while Instant::now() < deadline {
        for &a in ask {
            match find(a, id).await {
                Some(Ok((node, at))) => match call(at).await {
                    Some(Ok(v)) => return (node, v),
                    Some(Err(code)) if !retriable(code) => panic!("error {code} from {node}"),
                    other => last = format!("{node}: {:?}", other.map(|r| r.err())),
                },
                other => last = format!("find: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never coordinated: {last}");
}

async fn init(at: SocketAddr, id: &str) -> Option<Result<(i64, i16), i16>> {
    let mut c = try_connect(at).await?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = try_call(&mut c, &req, 4).await?;
    Some(if r.error_code == 0 {
        Ok((r.producer_id.0, r.producer_epoch))
    } else {
        Err(r.error_code)
    })
}

async fn describe(
    at: SocketAddr,
    id: &str,
) -> Option<Result<describe_transactions_response::TransactionState, i16>> {
    let mut c = try_connect(at).await?;
    let req =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]);
    let mut r = try_call(&mut c, &req, 0).await?;
    let d = r.transaction_states.remove(0);
    Some(if d.error_code == 0 {
        Ok(d)
    } else {
        Err(d.error_code)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_transaction_survives_the_loss_of_its_coordinator() {
    let mut cluster = Cluster::start_with(REPLICATED_TXN).await;
    let ctl = cluster.controller;
    let all: Vec<SocketAddr> = (1..=3).map(|id| cluster.addr(id)).collect();
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn("data"))
            .with_num_partitions(1)
            .with_replication_factor(3)])
        .with_timeout_ms(5000);
    let created = Client::connect(cluster.addr(ctl)).await.call(&req, 7).await;
    assert_eq!(created.topics[0].error_code, 0);

    // An id coordinated outside the controller (the first FindCoordinator creates the topic).
    let mut chosen = None;
    for n in 0..20 {
        let id = format!("tx{n}");
        let (node, ()) = coordinated(&all, &id, |_| async { Some(Ok(())) }).await;
        if node != ctl {
            chosen = Some((id, node));
            break;
        }
    }
    let (id, old) = chosen.expect("an id coordinated outside the controller");
    let (old_node, (pid, epoch)) = coordinated(&all, &id, |at| init(at, &id)).await;
    assert_eq!(old_node, old);
    let idr = id.clone();
    let (_, ()) = coordinated(&all, &id, move |at| {
        let id = idr.clone();
        async move {
            let mut c = try_connect(at).await?;
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(tn("data"))
                        .with_partitions(vec![0]),
                ]);
            let r = try_call(&mut c, &req, 3).await?;
            let code =
                r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
            Some(if code == 0 { Ok(()) } else { Err(code) })
        }
    })
    .await;

    // The coordinator dies; the next leader of the id's partition loaded the transaction.
    let _abandoned = cluster.crash(old).await;
    let survivors: Vec<SocketAddr> = (1..=3)
        .filter(|n| *n != old)
        .map(|n| cluster.addr(n))
        .collect();
    let (new, d) = coordinated(&survivors, &id, |at| describe(at, &id)).await;
    assert_ne!(new, old);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!((d.producer_id.0, d.producer_epoch), (pid, epoch));
    assert_eq!(d.topics[0].topic.as_str(), "data");

    // A new producer of the id fences the old one: the open transaction is aborted first.
    let (_, (pid2, epoch2)) = coordinated(&survivors, &id, |at| init(at, &id)).await;
    assert_eq!((pid2, epoch2), (pid, epoch + 2));
    let (_, d) = coordinated(&survivors, &id, |at| describe(at, &id)).await;
    assert_eq!(d.transaction_state.as_str(), "Empty");
    cluster.stop().await;
}
