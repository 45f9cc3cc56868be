//! Every supported (api, version) decodes from a client-shaped frame, and the fuzz seed
//! corpus is generated from those frames plus the captured client frames.
//!
//! Regenerate the corpus (writes `fuzz/corpus/decode_request/` and
//! `fuzz/corpus/decode_frame_stream/`):
//!
//! ```text
//! cargo test -p protocol --test seed_corpus -- --ignored write_fuzz_seed_corpus
//! ```

mod common;

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use protocol::codec::{decode_request, Decoded};
use protocol::kafka_protocol::messages::RequestHeader;
use protocol::kafka_protocol::protocol::Encodable;

use common::*;

#[test]
fn every_supported_version_decodes_and_re_encodes_to_the_same_bytes() {
    let frames = sample_frames();
    assert!(frames.len() > 60, "{} frames", frames.len());
    for (key, version, frame) in frames {
        let decoded = decode_request(&frame).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
        let Decoded::Request(request) = decoded else {
            panic!("{key:?} v{version}: {decoded:?}");
        };
        assert_eq!(request.api_key, key);
        assert_eq!(request.version, version);
        // Nothing is lost: header and body encode back to the frame.
        let mut again = BytesMut::new();
        let header: &RequestHeader = &request.header;
        header
            .encode(&mut again, key.request_header_version(version))
            .unwrap();
        request.body.encode(&mut again, version).unwrap();
        assert_eq!(&again[..], &frame[..], "{key:?} v{version}");
    }
}

#[test]
fn every_captured_client_frame_decodes() {
    let frames = captured_frames();
    assert!(frames.len() >= 10);
    for (name, frame) in frames {
        match decode_request(&frame) {
            Ok(Decoded::Request(r)) => assert_eq!(r.header.request_api_key, r.api_key as i16),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// Writes (or overwrites) the generated seeds; other files in `dir` (inputs the fuzzer
/// found and someone chose to keep) are left alone.
fn write_dir(dir: &Path, files: &[(String, Bytes)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

#[test]
#[ignore = "writes the fuzz seed corpus; run explicitly"]
fn write_fuzz_seed_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut requests: Vec<(String, Bytes)> = sample_frames()
        .into_iter()
        .map(|(key, version, frame)| (format!("gen-{key:?}-v{version}"), frame))
        .collect();
    for (name, frame) in captured_frames() {
        requests.push((format!("client-{}", name.trim_end_matches(".bin")), frame));
    }
    write_dir(&root.join("decode_request"), &requests);

    // decode_frame_stream: byte 0 = number of chunk sizes, then the sizes, then a stream of
    // length-prefixed frames.
    let mut streams = Vec::new();
    let chunkings: [&[u8]; 4] = [&[], &[0], &[2, 9, 255], &[3, 0, 63, 200, 17, 4, 31, 8]];
    for (i, group) in requests.chunks(8).enumerate() {
        let sizes = chunkings[i % chunkings.len()];
        let mut stream = BytesMut::new();
        stream.put_u8(sizes.len() as u8);
        stream.put_slice(sizes);
        for (_, frame) in group {
            stream.put_slice(&with_length_prefix(frame));
        }
        streams.push((format!("stream-{i:02}"), stream.freeze()));
    }
    write_dir(&root.join("decode_frame_stream"), &streams);
}
