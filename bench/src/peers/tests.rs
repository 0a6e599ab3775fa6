//! Each peer, launched for real, answers the benchmark's operations as the
//! [`Store`] contract says; dropping a launcher stops its servers.

use super::etcd::{EtcdCluster, EtcdSecurity};
use super::redis::RedisServer;
use crate::store::Store;

/// Reads, inserts, updates and scans through one client of `store`.
async fn check_operations(store: &dyn Store) {
    let mut client = store.connect().await.expect("connect");
    assert_eq!(client.read("user5").await.expect("read missing"), None);
    for i in 1..=5 {
        let key = format!("user{i}");
        client.insert(&key, &format!("v{i}")).await.expect("insert");
    }
    client.update("user3", "v3b").await.expect("update");
    assert_eq!(
        client.read("user3").await.expect("read").as_deref(),
        Some("v3b")
    );
    assert_eq!(
        client.read("user5").await.expect("read").as_deref(),
        Some("v5")
    );

    let all = client.scan("user2", "user4", 10).await.expect("scan");
    let want = [("user2", "v2"), ("user3", "v3b"), ("user4", "v4")];
    let got: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, want, "inclusive range, sorted by key");

    let limited = client.scan("user1", "user5", 2).await.expect("scan");
    let keys: Vec<&str> = limited.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["user1", "user2"], "the limit keeps the first keys");

    let empty = client.scan("user6", "user9", 10).await.expect("scan");
    assert!(empty.is_empty(), "no keys in range: {empty:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_etcd_cluster_serves_the_benchmark_operations() {
    let cluster = EtcdCluster::launch(3, EtcdSecurity::Plain)
        .await
        .expect("launch etcd");
    let store = cluster.store();
    assert_eq!(store.name(), "etcd 3");
    check_operations(&store).await;
    // A second client sees the first one's writes (linearizable reads).
    let mut other = store.connect().await.expect("connect");
    assert_eq!(
        other.read("user1").await.expect("read").as_deref(),
        Some("v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_mutual_tls_serves_its_clients_and_refuses_plaintext() {
    let cluster = EtcdCluster::launch(3, EtcdSecurity::Tls)
        .await
        .expect("launch etcd with TLS");
    let store = cluster.store();
    assert_eq!(store.name(), "etcd 3 TLS");
    check_operations(&store).await;
    // The same endpoints without a client certificate: refused.
    let endpoints: Vec<String> = store.endpoints().to_vec();
    let plain = async {
        let mut client = etcd_client::Client::connect(&endpoints, None).await?;
        client.get("user1", None).await
    };
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), plain).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a client without TLS read from etcd started with mutual TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_redis_server_serves_the_benchmark_operations() {
    let server = RedisServer::launch().await.expect("launch redis");
    check_operations(&server.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_launcher_stops_its_servers() {
    let server = RedisServer::launch().await.expect("launch redis");
    let store = server.store();
    store.connect().await.expect("connect while running");
    drop(server);
    assert!(
        store.connect().await.is_err(),
        "the server still accepts connections after its launcher was dropped"
    );
}
