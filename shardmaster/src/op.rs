//! The operations of the shardmaster, their replies, and the checks that need no state.

use crate::config::{Config, Gid, NO_GROUP};
use crate::error::ShardmasterError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Longest accepted host name or address in a server address (DNS's limit).
const MAX_HOST_LEN: usize = 253;

/// One operation, as decided through Paxos and applied by
/// [`ConfigStore::apply`](crate::ConfigStore::apply).
///
/// Ops arrive from the network: nothing about them is trusted, and applying any op to
/// any state returns a result or an error, never a panic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Add replica group `gid`, served by `servers` (`host:port`, in replica order),
    /// and rebalance.
    Join {
        /// The new group's id (not 0).
        gid: Gid,
        /// Its replicas' addresses.
        servers: Vec<String>,
    },
    /// Remove group `gid` and hand its shards to the remaining groups.
    Leave {
        /// The leaving group's id.
        gid: Gid,
    },
    /// Give `shard` to `gid`, exactly, without rebalancing.
    Move {
        /// The shard to move.
        shard: usize,
        /// The joined group that gets it.
        gid: Gid,
    },
    /// Read a configuration. Made by [`Op::query`]; the number is read back with
    /// [`ConfigNum::from_wire`].
    Query {
        /// The configuration number as sent and logged: -1 for the latest
        /// ([`ConfigNum::to_wire`]). Below -1 it is refused
        /// ([`ShardmasterError::BadConfigNum`]).
        num: i64,
    },
    /// Record that joined group `gid`'s replicas now listen at `servers` (its
    /// replica set changed: `diskv admin replica ...`); every shard stays where
    /// it is. `servers` are the addresses of the group's seats that are not
    /// removed, in seat order.
    Servers {
        /// The group.
        gid: Gid,
        /// Its replicas' addresses now.
        servers: Vec<String>,
    },
}

/// Which configuration a Query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigNum {
    /// The latest configuration.
    Latest,
    /// Configuration `n`; a number past the latest reads the latest.
    Num(u64),
}

impl ConfigNum {
    /// The number a Query carries on the wire and in the log ([`Op::Query`]): -1
    /// for the latest. A number above `i64::MAX` is sent as `i64::MAX`: both are
    /// past every configuration, so both read the latest.
    pub fn to_wire(self) -> i64 {
        match self {
            ConfigNum::Latest => -1,
            ConfigNum::Num(n) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }

    /// Reads a number from the wire, the log or the command line: -1 is the
    /// latest, 0 and up a configuration number, anything else
    /// [`ShardmasterError::BadConfigNum`].
    pub fn from_wire(num: i64) -> Result<ConfigNum, ShardmasterError> {
        match num {
            -1 => Ok(ConfigNum::Latest),
            n => u64::try_from(n)
                .map(ConfigNum::Num)
                .map_err(|_| ShardmasterError::BadConfigNum { num }),
        }
    }
}

/// The reply to an op that was applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The op made configuration `num`, now the latest.
    Changed {
        /// The new configuration's number.
        num: u64,
    },
    /// The op was already in effect (a repeated Join, a Move to the current owner);
    /// no configuration was made and `num` is still the latest.
    Unchanged {
        /// The latest configuration's number.
        num: u64,
    },
    /// The answer to a Query.
    Config(Config),
}

impl Op {
    /// Checks everything that does not depend on the configurations, so a server can
    /// refuse a bad op before proposing it. [`ConfigStore::apply`](crate::ConfigStore::apply)
    /// runs the same checks, so a replica never depends on the proposer having done so.
    pub fn validate(&self, nshards: usize) -> Result<(), ShardmasterError> {
        match self {
            Op::Join { gid, servers } | Op::Servers { gid, servers } => {
                check_gid(*gid)?;
                check_servers(*gid, servers)
            }
            Op::Leave { gid } => check_gid(*gid),
            Op::Move { shard, gid } => {
                if *shard >= nshards {
                    return Err(ShardmasterError::ShardOutOfRange {
                        shard: *shard,
                        nshards,
                    });
                }
                check_gid(*gid)
            }
            Op::Query { num } => ConfigNum::from_wire(*num).map(drop),
        }
    }

    /// A Query of configuration `which`.
    pub fn query(which: ConfigNum) -> Op {
        Op::Query {
            num: which.to_wire(),
        }
    }

    /// Whether the op can make a new configuration (everything but Query).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Query { .. })
    }
}

/// A group's server list: not empty, every address `host:port`, none twice.
fn check_servers(gid: Gid, servers: &[String]) -> Result<(), ShardmasterError> {
    if servers.is_empty() {
        return Err(ShardmasterError::EmptyServerList { gid });
    }
    let mut seen = BTreeSet::new();
    for addr in servers {
        check_address(addr).map_err(|reason| ShardmasterError::MalformedAddress {
            gid,
            addr: addr.clone(),
            reason,
        })?;
        if !seen.insert(addr.as_str()) {
            return Err(ShardmasterError::DuplicateAddress {
                gid,
                addr: addr.clone(),
            });
        }
    }
    Ok(())
}

fn check_gid(gid: Gid) -> Result<(), ShardmasterError> {
    if gid == NO_GROUP {
        Err(ShardmasterError::ReservedGid)
    } else {
        Ok(())
    }
}

/// Accepts `host:port` where host is an IPv4 address, a bracketed IPv6 address or a
/// host name of letters, digits, `.`, `-` and `_`, and port is a number in 1..=65535.
/// Returns the reason on failure.
pub fn check_address(addr: &str) -> Result<(), String> {
    if let Ok(sock) = addr.parse::<SocketAddr>() {
        return match sock.port() {
            0 => Err("port 0 is not a port a server can be reached on".into()),
            _ => Ok(()),
        };
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("no :port".into());
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.len() > MAX_HOST_LEN {
        return Err(format!("host longer than {MAX_HOST_LEN} characters"));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "host contains {bad:?} (IPv6 addresses go in brackets: [::1]:7000)"
        ));
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port a server can be reached on".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("port {port} is above 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(gid: Gid, servers: &[&str]) -> Op {
        Op::Join {
            gid,
            servers: servers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn good_addresses_are_accepted() {
        for a in [
            "127.0.0.1:7000",
            "localhost:1",
            "db-1.example.com:65535",
            "node_3:8080",
            "[::1]:7000",
            "[fe80::1]:80",
        ] {
            assert_eq!(check_address(a), Ok(()), "{a}");
        }
    }

    #[test]
    fn bad_addresses_are_refused_with_a_reason() {
        for (a, why) in [
            ("localhost", "no :port"),
            (":7000", "empty host"),
            ("host:", "not a number"),
            ("host:abc", "not a number"),
            ("host:+80", "not a number"),
            ("host:-1", "not a number"),
            ("host:0", "port 0"),
            ("127.0.0.1:0", "port 0"),
            ("host:65536", "above 65535"),
            ("host:99999999999999999999", "above 65535"),
            ("a b:80", "contains ' '"),
            ("::1:80", "brackets"),
            ("", "no :port"),
            ("x/y:1", "contains '/'"),
        ] {
            let err = check_address(a).unwrap_err();
            assert!(err.contains(why), "{a}: {err}");
        }
        let long = format!("{}:80", "h".repeat(MAX_HOST_LEN + 1));
        assert!(check_address(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn join_validation() {
        assert_eq!(join(1, &["a:1", "b:2"]).validate(10), Ok(()));
        assert_eq!(
            join(0, &["a:1"]).validate(10),
            Err(ShardmasterError::ReservedGid)
        );
        assert_eq!(
            join(4, &[]).validate(10),
            Err(ShardmasterError::EmptyServerList { gid: 4 })
        );
        assert_eq!(
            join(4, &["a:1", "b:2", "a:1"]).validate(10),
            Err(ShardmasterError::DuplicateAddress {
                gid: 4,
                addr: "a:1".into()
            })
        );
        let err = join(4, &["a:1", "b"]).validate(10).unwrap_err();
        assert!(
            matches!(&err, ShardmasterError::MalformedAddress { gid: 4, addr, .. } if addr == "b"),
            "{err:?}"
        );
    }

    #[test]
    fn leave_move_and_query_validation() {
        assert_eq!(Op::Leave { gid: 3 }.validate(10), Ok(()));
        assert_eq!(
            Op::Leave { gid: 0 }.validate(10),
            Err(ShardmasterError::ReservedGid)
        );
        assert_eq!(Op::Move { shard: 9, gid: 1 }.validate(10), Ok(()));
        assert_eq!(
            Op::Move { shard: 10, gid: 1 }.validate(10),
            Err(ShardmasterError::ShardOutOfRange {
                shard: 10,
                nshards: 10
            })
        );
        assert_eq!(
            Op::Move {
                shard: usize::MAX,
                gid: 1
            }
            .validate(10),
            Err(ShardmasterError::ShardOutOfRange {
                shard: usize::MAX,
                nshards: 10
            })
        );
        assert_eq!(
            Op::Move { shard: 0, gid: 0 }.validate(10),
            Err(ShardmasterError::ReservedGid)
        );
        for num in [-1, 0, 5, i64::MAX] {
            assert_eq!(Op::Query { num }.validate(10), Ok(()));
        }
        for num in [-2, i64::MIN] {
            assert_eq!(
                Op::Query { num }.validate(10),
                Err(ShardmasterError::BadConfigNum { num })
            );
        }
    }

    /// -1 on the wire is the latest; numbers from 0 up are themselves; the rest
    /// are refused with the error a Clerk or `diskv admin query` reports.
    #[test]
    fn config_numbers_on_the_wire() {
        assert_eq!(ConfigNum::Latest.to_wire(), -1);
        assert_eq!(ConfigNum::Num(0).to_wire(), 0);
        assert_eq!(ConfigNum::Num(7).to_wire(), 7);
        assert_eq!(ConfigNum::Num(u64::MAX).to_wire(), i64::MAX);
        for which in [ConfigNum::Latest, ConfigNum::Num(0), ConfigNum::Num(7)] {
            assert_eq!(ConfigNum::from_wire(which.to_wire()), Ok(which));
        }
        for num in [-2, i64::MIN] {
            assert_eq!(
                ConfigNum::from_wire(num),
                Err(ShardmasterError::BadConfigNum { num })
            );
        }
        // The bytes a Query of the latest configuration has always had: variant
        // 3, then -1 as a zigzag varint.
        assert_eq!(
            postcard::to_stdvec(&Op::query(ConfigNum::Latest)).unwrap(),
            [3, 1]
        );
        assert_eq!(Op::query(ConfigNum::Latest), Op::Query { num: -1 });
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let msgs = [
            ShardmasterError::ReservedGid.to_string(),
            ShardmasterError::UnknownGroup { gid: 7 }.to_string(),
            ShardmasterError::MoveToUnknownGroup { shard: 2, gid: 7 }.to_string(),
            ShardmasterError::ShardOutOfRange {
                shard: 12,
                nshards: 10,
            }
            .to_string(),
            ShardmasterError::BadShardCount { nshards: 0 }.to_string(),
        ];
        assert!(msgs[0].contains("1 or more"));
        assert!(msgs[1].contains("query"));
        assert!(msgs[2].contains("Join it first"));
        assert!(msgs[3].contains("from 0 to 9"), "{}", msgs[3]);
        assert!(msgs[4].contains("--shards"));
    }

    #[test]
    fn ops_and_results_round_trip_through_postcard() {
        let ops = [
            join(3, &["a:1"]),
            Op::Leave { gid: 3 },
            Op::Move { shard: 2, gid: 9 },
            Op::query(ConfigNum::Latest),
            Op::query(ConfigNum::Num(4)),
        ];
        for op in ops {
            let bytes = postcard::to_stdvec(&op).unwrap();
            assert_eq!(postcard::from_bytes::<Op>(&bytes).unwrap(), op);
        }
        let err = ShardmasterError::GidInUse {
            gid: 1,
            servers: vec!["a:1".into()],
        };
        let bytes = postcard::to_stdvec(&Err::<OpResult, _>(err.clone())).unwrap();
        assert_eq!(
            postcard::from_bytes::<Result<OpResult, ShardmasterError>>(&bytes).unwrap(),
            Err(err)
        );
    }
}
