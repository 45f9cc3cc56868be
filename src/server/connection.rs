//! One client connection: read length-prefixed frames, decode, dispatch, and write the
//! responses back in request order.
//!
//! Requests on one connection are handled one at a time, in order, as Apache Kafka does
//! (it mutes a connection while a request is in flight); clients pipeline several requests
//! and they queue in the read buffer. Responses that are ready are coalesced into one
//! write. A malformed frame, an unknown api key or an unsupported version closes this
//! connection only; every other connection keeps working.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use protocol::codec::{self, Decoded};
use protocol::frame::take_frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use crate::broker::Broker;
use crate::handlers;

pub async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = broker.config.server.max_request_bytes;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        // Handle every whole frame already buffered, then write what they produced.
        loop {
            let frame = match take_frame(&mut input, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection");
                    let _ = socket.write_all(&output).await;
                    return;
                }
            };
            match codec::decode_request(&frame) {
                Ok(Decoded::Request(request)) => {
                    let key = request.api_key;
                    let version = request.version;
                    let correlation_id = request.header.correlation_id;
                    let span = tracing::debug_span!(
                        "request",
                        api = ?key,
                        version,
                        correlation_id,
                        client_id = request.header.client_id.as_deref().unwrap_or(""),
                    );
                    let response = handlers::dispatch(&broker, peer, *request)
                        .instrument(span)
                        .await;
                    if let Some(response) = response {
                        if let Err(e) = codec::encode_response(
                            &mut output,
                            correlation_id,
                            key,
                            version,
                            &response,
                        ) {
                            tracing::error!(%peer, error = %e, "closing connection");
                            return;
                        }
                    }
                }
                Ok(Decoded::ApiVersionsFallback {
                    correlation_id,
                    version,
                }) => {
                    tracing::debug!(%peer, version, "ApiVersions at an unknown version: answering v0");
                    if let Err(e) = codec::api_versions_fallback(&mut output, correlation_id) {
                        tracing::error!(%peer, error = %e, "closing connection");
                        return;
                    }
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection");
                    let _ = socket.write_all(&output).await;
                    return;
                }
            }
            if output.len() >= 1 << 20 {
                if socket.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            }
        }
        if !output.is_empty() {
            if socket.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if input.capacity() - input.len() < 4096 {
            input.reserve(64 * 1024);
        }
        tokio::select! {
            read = socket.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shutdown.changed() => return,
        }
    }
}
