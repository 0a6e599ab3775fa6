//! The host a local cluster's processes are known by (`diskv cluster
//! --advertise-host`): the name or address in every `host:port` the processes,
//! the launcher's Clerks and the user's clients dial, and that the shardmaster
//! records for each group. Where the processes bind is another matter (`--listen
//! HOST:PORT` on each child, see [`crate::start_children`]).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// A host name or IP address other processes can dial, and a certificate can
/// name: an IPv4 or IPv6 address, or a DNS name of dot-separated labels of
/// letters, digits and `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertiseHost(String);

/// Why a string is not an [`AdvertiseHost`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a host name or IP address (a DNS name of letters, digits, '-' and '.', \
     or an IPv4 or IPv6 address, without a port)"
)]
pub struct BadHost(pub String);

/// The host of a local cluster unless the user names another.
pub const LOOPBACK: &str = "127.0.0.1";

impl AdvertiseHost {
    /// The default, 127.0.0.1.
    pub fn loopback() -> AdvertiseHost {
        AdvertiseHost(LOOPBACK.to_string())
    }

    /// The host as it stands before `:port` in an address (an IPv6 address in
    /// brackets).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `host:port`.
    pub fn address(&self, port: u16) -> String {
        format!("{}:{port}", self.0)
    }
}

impl fmt::Display for AdvertiseHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AdvertiseHost {
    type Err = BadHost;

    /// Accepts `db1.example.com`, `localhost`, `10.0.0.5`, `::1` or `[::1]`;
    /// an IPv6 address is kept in brackets.
    fn from_str(s: &str) -> Result<AdvertiseHost, BadHost> {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(v6) = bare.parse::<Ipv6Addr>() {
            return Ok(AdvertiseHost(format!("[{v6}]")));
        }
        if bare == s && s.parse::<IpAddr>().is_ok() {
            return Ok(AdvertiseHost(s.to_string()));
        }
        let dns = bare == s
            && !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if dns {
            Ok(AdvertiseHost(s.to_string()))
        } else {
            Err(BadHost(s.to_string()))
        }
    }
}

/// The host part of a recorded `host:port` address.
pub fn host_of(addr: &str) -> Option<&str> {
    addr.rsplit_once(':').map(|(host, _)| host)
}

/// A recorded host as a certificate names it (an IPv6 address without its
/// brackets).
pub fn cert_name(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The port of a recorded `host:port` address.
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_accepted_and_written_as_dialled() {
        let host = |s: &str| s.parse::<AdvertiseHost>().map(|h| h.address(7001));
        assert_eq!(host("localhost").unwrap(), "localhost:7001");
        assert_eq!(host("db-1.example.com").unwrap(), "db-1.example.com:7001");
        assert_eq!(host("10.0.0.5").unwrap(), "10.0.0.5:7001");
        assert_eq!(host("::1").unwrap(), "[::1]:7001");
        assert_eq!(host("[fe80::1]").unwrap(), "[fe80::1]:7001");
        for bad in [
            "",
            "a b",
            "host:7001",
            "a,b",
            "a..b",
            "[host]",
            "http://x",
            "é.com",
        ] {
            assert_eq!(host(bad), Err(BadHost(bad.to_string())), "{bad:?}");
        }
    }

    #[test]
    fn recorded_addresses_split_into_host_and_port() {
        assert_eq!(host_of("127.0.0.1:41001"), Some("127.0.0.1"));
        assert_eq!(host_of("[::1]:41001"), Some("[::1]"));
        assert_eq!(port_of("[::1]:41001"), Some(41001));
        assert_eq!(port_of("localhost"), None);
        assert_eq!(cert_name("[::1]"), "::1");
        assert_eq!(cert_name("localhost"), "localhost");
    }
}
