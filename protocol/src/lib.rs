//! plg's plugin protocol: the gRPC service `plg.v1.Plugin` a plugin process serves, the
//! hashicorp/go-plugin handshake that announces it, and the conversions between the wire's
//! values and plg-api's [`Value`](plg_api::Value).
//!
//! `PROTOCOL.md` at the repository's root describes the protocol for plugin authors in any
//! language; `proto/plg/v1/plugin.proto` is its service definition.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod frames;
mod handshake;
mod values;

pub use handshake::{Handshake, HandshakeError, COOKIE_KEY, COOKIE_VALUE, CORE_VERSION};
pub use values::{from_wire, to_wire, WireError, MAX_DEPTH};

/// The generated messages, client and server of `plg.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("plg.v1");
}

/// `proto/plg/v1/plugin.proto`, the service definition, as text: what `plg new --lang python`
/// writes next to a new plugin.
pub const PROTO: &str = include_str!("../proto/plg/v1/plugin.proto");

/// The plg protocol version this crate speaks: the handshake's application version, and
/// what `Describe` reports.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest message either side sends or accepts, in bytes: 16 MiB. A context larger than
/// this is refused with gRPC status `RESOURCE_EXHAUSTED`.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Parses gRPC's `grpc-timeout` header value (`"250m"`, `"3S"`: up to 8 digits and a unit
/// of `H`, `M`, `S`, `m`, `u` or `n`).
pub fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_parse_and_junk_does_not() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for junk in ["", "m", "123456789S", "1x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(junk), None, "{junk:?}");
        }
    }
}
