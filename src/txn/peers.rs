//! Pooled connections from this broker to other brokers' Kafka ports, for the requests the
//! transaction machinery sends them (WriteTxnMarkers, AddPartitionsToTxn `verify_only`).
//! A connection is taken from the pool for one exchange and returned only after a good
//! one, so concurrent callers never share a connection and a broken one is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};

use crate::replication::client::{ClientError, Connection};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per broker.
const IDLE_PER_BROKER: usize = 4;

/// Idle connections to other brokers, by broker id, with the address each was made to (a
/// restarted broker may listen elsewhere).
pub struct Peers {
    client_id: String,
    idle: Mutex<HashMap<i32, Vec<(String, Connection)>>>,
}

impl Peers {
    pub fn new(client_id: String) -> Peers {
        Peers {
            client_id,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, broker: i32, addr: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.get_mut(&broker)?;
        conns.retain(|(a, _)| a == addr);
        conns.pop().map(|(_, c)| c)
    }

    fn give_back(&self, broker: i32, addr: &str, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(broker).or_default();
        if conns.len() < IDLE_PER_BROKER {
            conns.push((addr.to_string(), conn));
        }
    }

    /// Sends `request` at `version` to broker `broker` listening at `addr` (host:port), on
    /// an idle connection or a new one, and waits at most `timeout` for the answer.
    pub async fn exchange<R>(
        &self,
        broker: i32,
        addr: &str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let mut conn = match self.take(broker, addr) {
            Some(c) => c,
            None => Connection::connect(addr, self.client_id.clone(), CONNECT_TIMEOUT).await?,
        };
        let response = conn.send(request, version, timeout).await?;
        self.give_back(broker, addr, conn);
        Ok(response)
    }
}
