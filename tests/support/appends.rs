//! Concurrent appenders, as in 6.824's Concurrent tests: each client thread appends
//! unique tokens (`c<C>.<J>;`) to its own keys and to one key all clients share,
//! one request at a time, until told to stop. [`check_appends`] then reads every
//! key and asserts that each acknowledged append is there exactly once, in the
//! order its client made them, and that nothing else is.

use super::line_client::Client;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The key every appender also writes to.
pub const SHARED_KEY: &str = "shared";

/// Acknowledged appends: per key, per client, the tokens in the order acknowledged.
pub type Acked = BTreeMap<String, BTreeMap<usize, Vec<String>>>;

/// Running appender threads.
pub struct Appenders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<(String, String)>>>,
}

impl Appenders {
    /// Starts one appender per client in `clients`; client `c` cycles over the keys
    /// `a<c>.0 .. a<c>.<own_keys - 1>` and [`SHARED_KEY`].
    pub fn start(clients: Vec<Client>, own_keys: usize) -> Appenders {
        let keys = (0..clients.len())
            .map(|ci| {
                (0..own_keys)
                    .map(|m| format!("a{ci}.{m}"))
                    .chain([SHARED_KEY.to_string()])
                    .collect()
            })
            .collect();
        Appenders::with_keys(clients, keys)
    }

    /// Starts one appender per client; client `c` cycles over `keys[c]`.
    pub fn with_keys(clients: Vec<Client>, keys: Vec<Vec<String>>) -> Appenders {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = clients
            .into_iter()
            .zip(keys)
            .enumerate()
            .map(|(ci, (mut c, keys))| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut j = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = &keys[j % keys.len()];
                        let tok = format!("c{ci}.{j};");
                        let r = c.req(&format!("APPEND {key} {tok}"));
                        assert!(
                            r == format!("APPEND {key} found")
                                || r == format!("APPEND {key} not_found"),
                            "client {ci}: {r:?}"
                        );
                        acked.push((key.clone(), tok));
                        j += 1;
                    }
                    acked
                })
            })
            .collect();
        Appenders { stop, threads }
    }

    /// Stops the appenders once their current request is answered; returns what
    /// was acknowledged.
    pub fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Acked::new();
        for (ci, t) in self.threads.into_iter().enumerate() {
            for (key, tok) in t.join().expect("appender thread") {
                all.entry(key).or_default().entry(ci).or_default().push(tok);
            }
        }
        all
    }
}

/// Total acknowledged appends.
pub fn count(acked: &Acked) -> usize {
    acked.values().flat_map(|m| m.values()).map(Vec::len).sum()
}

/// Reads every key of `acked` through `c` and asserts that its value is exactly the
/// acknowledged appends: each once, each client's in its order, nothing else.
pub fn check_appends(c: &mut Client, acked: &Acked) {
    for (key, by_client) in acked {
        let r = c.req(&format!("GET {key}"));
        let value = r
            .strip_prefix(&format!("GET {key} "))
            .unwrap_or_else(|| panic!("GET {key}: {r:?}"));
        let tokens: Vec<String> = value
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|s| format!("{s};"))
            .collect();
        let want: usize = by_client.values().map(Vec::len).sum();
        for (ci, mine) in by_client {
            let got: Vec<&String> = tokens
                .iter()
                .filter(|t| t.starts_with(&format!("c{ci}.")))
                .collect();
            let mine: Vec<&String> = mine.iter().collect();
            assert_eq!(
                got, mine,
                "key {key}: client {ci}'s appends are not each there once in order"
            );
        }
        assert_eq!(
            tokens.len(),
            want,
            "key {key} holds {} appends, {want} were acknowledged: {value}",
            tokens.len()
        );
    }
}
