//! A TCP proxy per directed link between replicas, so a test can cut a replica off
//! from its peers (a real partition: connections are closed and refused) and heal it.

use std::sync::Arc;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections made to `addr` to a target while not cut.
pub struct LinkProxy {
    /// Where the proxy listens.
    pub addr: String,
    cut: Arc<watch::Sender<bool>>,
}

impl LinkProxy {
    /// Starts a proxy on 127.0.0.1 (a fresh port) to `target`.
    pub async fn start(target: String) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let cut = Arc::new(watch::channel(false).0);
        let cut_rx = cut.subscribe();
        tokio::spawn(accept_loop(listener, target, cut_rx));
        LinkProxy { addr, cut }
    }

    /// Closes every forwarded connection and refuses new ones (`true`), or forwards
    /// again (`false`).
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

async fn accept_loop(listener: TcpListener, target: String, cut: watch::Receiver<bool>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(inbound);
            continue;
        }
        let target = target.clone();
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(&target).await else {
                return;
            };
            let (mut a, mut b) = (inbound, outbound);
            let _ = a.set_nodelay(true);
            let _ = b.set_nodelay(true);
            tokio::select! {
                _ = copy_bidirectional(&mut a, &mut b) => {}
                _ = cut.wait_for(|&c| c) => {}
            }
        });
    }
}
