//! diskv as a [`Store`]: one [`diskv::Clerk`] per benchmark client.
//!
//! A Clerk retries an operation until some group executes it, so it never fails on
//! its own; the driver's per-operation deadline turns a stuck operation into a
//! counted timeout. A scan asks every shard in turn (the Clerk has no limit) and
//! keeps the first `limit` records.

use super::store::{OpFuture, Store, StoreClient, StoreError};

/// A diskv cluster, reached through its shardmasters.
pub struct DiskvStore {
    masters: Vec<String>,
    label: String,
}

impl DiskvStore {
    /// The cluster whose shardmasters listen at `masters`, labelled `label` in reports.
    pub fn new(masters: Vec<String>, label: impl Into<String>) -> DiskvStore {
        DiskvStore {
            masters,
            label: label.into(),
        }
    }
}

impl Store for DiskvStore {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn connect(&self) -> OpFuture<'_, Box<dyn StoreClient>> {
        Box::pin(async move {
            let clerk = diskv::Clerk::new(self.masters.clone()).await;
            Ok(Box::new(DiskvClient { clerk }) as Box<dyn StoreClient>)
        })
    }
}

/// One benchmark client's Clerk.
struct DiskvClient {
    clerk: diskv::Clerk,
}

fn store_error(e: diskv::KvError) -> StoreError {
    match e {
        diskv::KvError::Timeout => StoreError::Timeout,
        diskv::KvError::Unavailable(what) => StoreError::Connection(what),
        other => StoreError::Store(other.to_string()),
    }
}

impl StoreClient for DiskvClient {
    fn read<'a>(&'a mut self, key: &'a str) -> OpFuture<'a, Option<String>> {
        Box::pin(async move { self.clerk.get(key).await.map_err(store_error) })
    }

    fn update<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()> {
        Box::pin(async move {
            self.clerk
                .put(key, value)
                .await
                .map(drop)
                .map_err(store_error)
        })
    }

    fn scan<'a>(
        &'a mut self,
        start: &'a str,
        end: &'a str,
        limit: usize,
    ) -> OpFuture<'a, Vec<(String, String)>> {
        Box::pin(async move {
            let mut pairs = self.clerk.scan(start, end).await.map_err(store_error)?;
            pairs.truncate(limit);
            Ok(pairs)
        })
    }
}
