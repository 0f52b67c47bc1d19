//! The handshake, as hashicorp/go-plugin defines it: the host sets a magic-cookie environment
//! variable and starts the plugin; the plugin prints one line on stdout,
//! `CORE|APP|NETWORK|ADDRESS|PROTOCOL`, and serves there.

use std::fmt;

/// The environment variable the host sets, so that a plugin started by hand can say it is not
/// meant to be (go-plugin's `MagicCookieKey`).
pub const COOKIE_KEY: &str = "PLG_PLUGIN_MAGIC_COOKIE";
/// Its value (go-plugin's `MagicCookieValue`).
pub const COOKIE_VALUE: &str = "d5e1c0f4b2a7plg";
/// go-plugin's core protocol version: always 1.
pub const CORE_VERSION: u32 = 1;

/// A parsed handshake line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The application protocol version ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)).
    pub app_version: u32,
    /// The Unix socket the plugin serves on.
    pub socket: std::path::PathBuf,
}

/// Why a handshake line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not five `|`-separated fields of the right shape: something else wrote to stdout.
    #[error("the first line on stdout is not a handshake (CORE|APP|unix|SOCKET|grpc): {line}")]
    Garbage {
        /// The line, as read (the caller escapes it before showing it).
        line: String,
    },
    /// A core or application protocol version this host does not speak.
    #[error(
        "the plugin speaks protocol {core}|{app}; this host speaks {}|{}",
        CORE_VERSION,
        crate::PROTOCOL_VERSION
    )]
    Version {
        /// The core version it announced.
        core: u32,
        /// The application version it announced.
        app: u32,
    },
    /// A network or protocol other than `unix` and `grpc` (plg serves neither TCP nor net/rpc).
    #[error("the plugin serves {network}/{protocol}; plg speaks only unix/grpc")]
    Transport {
        /// The network it announced.
        network: String,
        /// The protocol it announced.
        protocol: String,
    },
}

impl Handshake {
    /// Parses a handshake line (without its newline).
    pub fn parse(line: &str) -> Result<Self, HandshakeError> {
        let garbage = || HandshakeError::Garbage {
            line: line.to_owned(),
        };
        let fields: Vec<&str> = line.trim_end_matches('\r').split('|').collect();
        // go-plugin may append fields (its AutoMTLS certificate, empty without it, and
        // later ones): the first five are the handshake.
        let [core, app, network, address, protocol, ..] = fields[..] else {
            return Err(garbage());
        };
        let core: u32 = core.parse().map_err(|_| garbage())?;
        let app: u32 = app.parse().map_err(|_| garbage())?;
        if address.is_empty() {
            return Err(garbage());
        }
        if core != CORE_VERSION || app != crate::PROTOCOL_VERSION {
            return Err(HandshakeError::Version { core, app });
        }
        if network != "unix" || protocol != "grpc" {
            return Err(HandshakeError::Transport {
                network: network.to_owned(),
                protocol: protocol.to_owned(),
            });
        }
        Ok(Handshake {
            app_version: app,
            socket: address.into(),
        })
    }
}

impl fmt::Display for Handshake {
    /// The line a plugin prints, without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{CORE_VERSION}|{}|unix|{}|grpc",
            self.app_version,
            self.socket.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_and_each_bad_line_has_its_error() {
        let h = Handshake {
            app_version: 1,
            socket: "/tmp/x/plugin.sock".into(),
        };
        assert_eq!(h.to_string(), "1|1|unix|/tmp/x/plugin.sock|grpc");
        assert_eq!(Handshake::parse(&h.to_string()), Ok(h));
        assert!(matches!(
            Handshake::parse("hello from a print statement"),
            Err(HandshakeError::Garbage { .. })
        ));
        assert!(matches!(
            Handshake::parse("1|2|unix|/s|grpc"),
            Err(HandshakeError::Version { core: 1, app: 2 })
        ));
        assert!(matches!(
            Handshake::parse("1|1|tcp|127.0.0.1:1234|netrpc"),
            Err(HandshakeError::Transport { .. })
        ));
        assert!(matches!(
            Handshake::parse("1|1|unix||grpc"),
            Err(HandshakeError::Garbage { .. })
        ));
        // go-plugin's line ends with an empty certificate field.
        assert_eq!(
            Handshake::parse("1|1|unix|/tmp/plugin123|grpc|")
                .unwrap()
                .socket,
            std::path::Path::new("/tmp/plugin123")
        );
        assert!(matches!(
            Handshake::parse("1|1|unix|/s"),
            Err(HandshakeError::Garbage { .. })
        ));
    }
}
