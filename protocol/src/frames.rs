//! plg's lean framing: `Execute` without HTTP/2, for a worker that offers a frames socket
//! (`DescribeResponse.frames_socket`). Each connection carries one call at a time.
//!
//! A call: `u32` length of the rest (little-endian), `u64` call id, `u64` timeout in
//! microseconds (0: none), then an `ExecuteRequest` in protobuf. A reply: `u32` length,
//! `u64` call id, a status byte (0: an `ExecuteResponse` in protobuf follows; 1: the deadline
//! passed; 2: an error message in UTF-8 follows). Cancellation is the `Cancel` RPC.
//!
//! A hello: on every connection it accepts, the plugin first writes one frame, `u32` length
//! then a `DescribeResponse` in protobuf. plg-worker serves frames at
//! [`WORKER_FRAMES_SOCKET`] beside its gRPC socket, so a host that started `plg-worker`
//! reads `Describe` from the first connection's hello and needs no gRPC at start.

use std::{
    io::{self, Read},
    time::Duration,
};

use prost::Message;

use crate::{pb, MAX_MESSAGE_BYTES};

/// The file name of plg-worker's frames socket, in the directory of the gRPC socket its
/// handshake names.
pub const WORKER_FRAMES_SOCKET: &str = "frames.sock";

/// Appends the hello frame (a `DescribeResponse`) to `buf`.
pub fn encode_hello(describe: &pb::DescribeResponse, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(describe.encoded_len() as u32).to_le_bytes());
    describe.encode(buf).expect("a Vec grows as needed");
}

/// Decodes a hello frame's body (after its length).
pub fn decode_hello(body: &[u8]) -> Result<pb::DescribeResponse, FrameError> {
    pb::DescribeResponse::decode(body).map_err(|e| FrameError(format!("hello: {e}")))
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The call returned.
    Response(pb::ExecuteResponse),
    /// Its deadline passed.
    DeadlineExceeded,
    /// The worker could not run it.
    Error(String),
}

/// A frame that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct FrameError(pub String);

/// Appends a call frame to `buf`.
pub fn encode_call(
    id: u64,
    timeout: Option<Duration>,
    request: &pb::ExecuteRequest,
    buf: &mut Vec<u8>,
) {
    let micros = timeout.map_or(0, |t| (t.as_micros() as u64).max(1));
    let len = 16 + request.encoded_len();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&micros.to_le_bytes());
    request.encode(buf).expect("a Vec grows as needed");
}

/// Decodes a call frame's body (after its length).
pub fn decode_call(body: &[u8]) -> Result<(u64, Option<Duration>, pb::ExecuteRequest), FrameError> {
    if body.len() < 16 {
        return Err(FrameError("a call frame is shorter than its header".into()));
    }
    let id = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let micros = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let request = pb::ExecuteRequest::decode(&body[16..]).map_err(|e| FrameError(e.to_string()))?;
    let timeout = (micros > 0).then(|| Duration::from_micros(micros));
    Ok((id, timeout, request))
}

/// Appends a reply frame to `buf`.
pub fn encode_reply(id: u64, reply: &Reply, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&id.to_le_bytes());
    match reply {
        Reply::Response(r) => {
            buf.push(0);
            r.encode(buf).expect("a Vec grows as needed");
        }
        Reply::DeadlineExceeded => buf.push(1),
        Reply::Error(message) => {
            buf.push(2);
            buf.extend_from_slice(message.as_bytes());
        }
    }
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes a reply frame's body (after its length).
pub fn decode_reply(body: &[u8]) -> Result<(u64, Reply), FrameError> {
    if body.len() < 9 {
        return Err(FrameError(
            "a reply frame is shorter than its header".into(),
        ));
    }
    let id = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let reply = match body[8] {
        0 => Reply::Response(
            pb::ExecuteResponse::decode(&body[9..]).map_err(|e| FrameError(e.to_string()))?,
        ),
        1 => Reply::DeadlineExceeded,
        2 => Reply::Error(String::from_utf8_lossy(&body[9..]).into_owned()),
        other => return Err(FrameError(format!("unknown reply status {other}"))),
    };
    Ok((id, reply))
}

/// The length a frame's first four bytes announce, checked against the message limit.
pub fn frame_len(header: [u8; 4]) -> io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the {MAX_MESSAGE_BYTES}-byte limit"),
        ));
    }
    Ok(len)
}

/// Reads one whole frame's body into `buf` (blocking). `Ok(false)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = frame_len(header)?;
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_replies_round_trip() {
        let request = pb::ExecuteRequest {
            values: Some(pb::ValueMap::default()),
            label: "l".into(),
        };
        let mut buf = Vec::new();
        encode_call(7, Some(Duration::from_millis(5)), &request, &mut buf);
        let mut body = Vec::new();
        assert!(read_frame(&mut &buf[..], &mut body).unwrap());
        assert_eq!(
            decode_call(&body).unwrap(),
            (7, Some(Duration::from_millis(5)), request)
        );
        for reply in [
            Reply::Response(pb::ExecuteResponse { outcome: None }),
            Reply::DeadlineExceeded,
            Reply::Error("no".into()),
        ] {
            let mut buf = Vec::new();
            encode_reply(9, &reply, &mut buf);
            assert!(read_frame(&mut &buf[..], &mut body).unwrap());
            assert_eq!(decode_reply(&body).unwrap(), (9, reply));
        }
        assert!(decode_reply(&[0; 3]).is_err());
        let hello = pb::DescribeResponse {
            name: "n".into(),
            version: "1.0.0".into(),
            protocol_version: 1,
            frames_socket: String::new(),
        };
        let mut buf = Vec::new();
        encode_hello(&hello, &mut buf);
        assert!(read_frame(&mut &buf[..], &mut body).unwrap());
        assert_eq!(decode_hello(&body).unwrap(), hello);
        assert!(decode_hello(&[0xff; 3]).is_err());
        assert!(frame_len(u32::MAX.to_le_bytes()).is_err());
    }
}
