//! A minimal Kafka client connection, for a follower talking to its partition leader over
//! the leader's ordinary Kafka port (as Kafka brokers do): one request at a time, typed
//! request in, typed response out, with a deadline on every exchange.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};
use protocol::guard::decode_guarded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are refused (a follower asks for at most a few MiB).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why an exchange with the leader failed; the connection is dropped after any of these.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach broker {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o with broker {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("broker {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("broker {addr} sent a response that does not decode: {detail}")]
    Protocol { addr: String, detail: String },
}

/// One connection to a broker.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: String,
    next_correlation_id: i32,
}

impl Connection {
    /// Connects to `addr` (host:port) within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: String,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            addr: addr.to_string(),
            stream,
            client_id,
            next_correlation_id: 1,
        })
    }

    /// Sends `request` at `version` and waits (at most `timeout`) for its response.
    pub async fn send<R>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.exchange(request, version)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { addr, timeout }),
        }
    }

    async fn exchange<R>(&mut self, request: &R, version: i16) -> Result<R::Response, ClientError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let protocol_error = |detail: String| ClientError::Protocol {
            addr: self.addr.clone(),
            detail,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_string(
                self.client_id.clone(),
            )));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| protocol_error(format!("cannot encode the request header: {e}")))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| protocol_error(format!("cannot encode the request: {e}")))?;
        let len = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        let io = |source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        let size = self.stream.read_i32().await.map_err(io)?;
        if size < 4 || size as usize > MAX_RESPONSE_BYTES {
            return Err(protocol_error(format!(
                "response size {size} is out of range"
            )));
        }
        let mut body = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut body).await.map_err(io)?;
        let body = body.freeze();
        // Guarded like requests: a response is network input too, and kafka-protocol sizes
        // allocations from the lengths it reads.
        let api = ApiKey::try_from(R::KEY).map_err(|_| protocol_error("unknown api key".into()))?;
        let (header, left) =
            decode_guarded::<ResponseHeader>(&body, api.response_header_version(version))
                .map_err(|e| protocol_error(format!("bad response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(protocol_error(format!(
                "correlation id {} does not match the request's {correlation_id}",
                header.correlation_id
            )));
        }
        let (response, left) =
            decode_guarded::<R::Response>(&body.slice(body.len() - left..), version)
                .map_err(|e| protocol_error(format!("bad response body: {e}")))?;
        if left > 0 {
            tracing::debug!(addr = %self.addr, left, "response had trailing bytes");
        }
        Ok(response)
    }
}
