//! The workload driver: connects the clients, loads the records, warms up, then
//! measures. Written against [`Store`] only, so every store runs the same code.
//!
//! Clients run a closed loop: each issues its next operation when the previous one
//! answers. A slow answer therefore delays the operations that client would have
//! sent meanwhile, and those never show up as slow (coordinated omission): the
//! latencies are service times under the offered concurrency, not response times
//! at a fixed arrival rate.

use super::distribution::Chooser;
use super::error::BenchError;
use super::keys::{key, scan_range, KeySpace};
use super::report::{rate, LoadReport, Recorder, RunReport};
use super::spec::{Limit, RunSpec};
use super::store::{Store, StoreClient, StoreError};
use super::workload::{OpKind, Workload};
use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How long connecting one client may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const DONE: u8 = 2;

/// State shared by the clients of one run.
struct Shared {
    workload: Workload,
    keys: KeySpace,
    phase: AtomicU8,
    /// Measured operations still to issue (operation-count runs only).
    remaining: AtomicI64,
    count_ops: bool,
    /// Operations finished (any phase), for progress.
    finished: AtomicU64,
    /// Operations failed (any phase), for progress.
    failed: AtomicU64,
    value_size: usize,
    max_scan_len: u64,
    op_timeout: Duration,
}

/// Runs `spec` against `store`: connect, load (if asked), warm up, measure.
/// Failed operations are counted in the report; only a client that cannot connect,
/// or a load phase that writes nothing, fails the run.
pub async fn run_workload(store: &dyn Store, spec: &RunSpec) -> Result<RunReport, BenchError> {
    spec.check()?;
    let name = store.name();
    let clients = connect(store, spec.clients).await?;
    let (clients, load) = if spec.load {
        let (clients, load) = load_records(&name, clients, spec).await?;
        (clients, Some(load))
    } else {
        (clients, None)
    };

    let shared = Arc::new(Shared {
        workload: spec.workload,
        keys: KeySpace::new(spec.records),
        phase: AtomicU8::new(if spec.warmup.is_zero() {
            MEASURING
        } else {
            WARMUP
        }),
        remaining: AtomicI64::new(match spec.limit {
            Limit::Operations(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Limit::Duration(_) => i64::MAX,
        }),
        count_ops: matches!(spec.limit, Limit::Operations(_)),
        finished: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        value_size: spec.value_size,
        max_scan_len: spec.max_scan_len,
        op_timeout: spec.op_timeout,
    });
    let mut tasks = JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        let shared = shared.clone();
        let seed = spec.seed.wrapping_add(i as u64);
        tasks.spawn(client_loop(client, shared, seed, spec.records));
    }
    let progress = spec
        .progress
        .map(|every| tokio::spawn(report_progress(shared.clone(), every, name.clone())));

    if !spec.warmup.is_zero() {
        tokio::time::sleep(spec.warmup).await;
        shared.phase.store(MEASURING, Ordering::Release);
    }
    let start = Instant::now();
    if let Limit::Duration(d) = spec.limit {
        tokio::time::sleep(d).await;
        shared.phase.store(DONE, Ordering::Release);
    }
    let mut total = Recorder::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(recorder) = done {
            total.merge(&recorder);
        }
    }
    let measured = match spec.limit {
        Limit::Duration(d) => d.as_secs_f64(),
        Limit::Operations(_) => start.elapsed().as_secs_f64(),
    };
    shared.phase.store(DONE, Ordering::Release);
    if let Some(p) = progress {
        p.abort();
    }
    let measured = (measured * 1000.0).round() / 1000.0;
    Ok(RunReport {
        store: name,
        workload: spec.workload,
        clients: spec.clients,
        records: spec.records,
        value_size: spec.value_size,
        warmup_secs: spec.warmup.as_secs_f64(),
        measured_secs: measured,
        ops: total.ops(),
        errors: total.errors(),
        ops_per_sec: rate(total.ops(), measured),
        per_op: total.op_reports(measured),
        load,
        error_samples: total.samples(),
    })
}

/// Opens one connection per client.
async fn connect(store: &dyn Store, n: usize) -> Result<Vec<Box<dyn StoreClient>>, BenchError> {
    let mut clients = Vec::with_capacity(n);
    for client in 0..n {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, store.connect()).await {
            Ok(Ok(c)) => {
                clients.push(c);
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {CONNECT_TIMEOUT:?}"),
        };
        return Err(BenchError::Connect {
            client,
            store: store.name(),
            error,
        });
    }
    Ok(clients)
}

/// A random alphanumeric value of `size` bytes.
fn random_value(rng: &mut StdRng, size: usize) -> String {
    rng.sample_iter(&Alphanumeric)
        .take(size)
        .map(char::from)
        .collect()
}

/// Runs `op` with the run's deadline.
async fn timed<T>(
    timeout: Duration,
    op: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, op)
        .await
        .unwrap_or(Err(StoreError::Timeout))
}

/// The load phase: the clients write records `0..records` between them (client `i`
/// takes every `clients`-th record from `i`).
async fn load_records(
    store: &str,
    clients: Vec<Box<dyn StoreClient>>,
    spec: &RunSpec,
) -> Result<(Vec<Box<dyn StoreClient>>, LoadReport), BenchError> {
    let start = Instant::now();
    let n = clients.len() as u64;
    let mut tasks = JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let (records, size, timeout) = (spec.records, spec.value_size, spec.op_timeout);
        let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_add(i as u64) ^ 0x10ad);
        tasks.spawn(async move {
            let value = random_value(&mut rng, size);
            let mut recorder = Recorder::default();
            for r in (i as u64..records).step_by(n as usize) {
                let t = Instant::now();
                match timed(timeout, client.insert(&key(r), &value)).await {
                    Ok(()) => recorder.ok(OpKind::Insert, t.elapsed()),
                    Err(e) => recorder.error(OpKind::Insert, &e.to_string()),
                }
            }
            (client, recorder)
        });
    }
    let mut back = Vec::new();
    let mut total = Recorder::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok((client, recorder)) = done {
            back.push(client);
            total.merge(&recorder);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if total.ops() == 0 {
        return Err(BenchError::Load {
            store: store.to_string(),
            records: spec.records,
            error: total.samples().first().cloned().unwrap_or_default(),
        });
    }
    if back.len() < n as usize {
        return Err(BenchError::Spec("a load task panicked".into()));
    }
    tracing::info!(
        store,
        records = spec.records,
        secs,
        errors = total.errors(),
        "loaded"
    );
    Ok((
        back,
        LoadReport {
            records: spec.records,
            errors: total.errors(),
            secs: (secs * 1000.0).round() / 1000.0,
            ops_per_sec: rate(total.ops(), secs),
        },
    ))
}

/// One client: operations until the run ends; returns what it measured.
async fn client_loop(
    mut client: Box<dyn StoreClient>,
    shared: Arc<Shared>,
    seed: u64,
    records: u64,
) -> Recorder {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut chooser = Chooser::new(shared.workload.distribution(), records);
    let value = random_value(&mut rng, shared.value_size);
    let mut recorder = Recorder::default();
    loop {
        let phase = shared.phase.load(Ordering::Acquire);
        if phase == DONE {
            break;
        }
        if phase == MEASURING
            && shared.count_ops
            && shared.remaining.fetch_sub(1, Ordering::AcqRel) <= 0
        {
            break;
        }
        let kind = shared.workload.next_op(&mut rng);
        let t = Instant::now();
        let result = one_op(
            client.as_mut(),
            kind,
            &shared,
            &mut chooser,
            &mut rng,
            &value,
        )
        .await;
        let latency = t.elapsed();
        shared.finished.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        // Only operations that started and ended inside the measured interval count.
        let still_measuring = shared.phase.load(Ordering::Acquire) == MEASURING;
        if phase == MEASURING && (still_measuring || shared.count_ops) {
            match result {
                Ok(()) => recorder.ok(kind, latency),
                Err(e) => recorder.error(kind, &e.to_string()),
            }
        }
    }
    recorder
}

/// Issues one operation of `kind`.
async fn one_op(
    client: &mut dyn StoreClient,
    kind: OpKind,
    shared: &Shared,
    chooser: &mut Chooser,
    rng: &mut StdRng,
    value: &str,
) -> Result<(), StoreError> {
    let timeout = shared.op_timeout;
    let existing =
        |chooser: &mut Chooser, rng: &mut StdRng| chooser.next(shared.keys.readable(), rng);
    match kind {
        OpKind::Read => {
            let k = key(existing(chooser, rng));
            timed(timeout, client.read(&k)).await.map(drop)
        }
        OpKind::Update => {
            let k = key(existing(chooser, rng));
            timed(timeout, client.update(&k, value)).await
        }
        OpKind::Insert => {
            let n = shared.keys.reserve();
            let result = timed(timeout, client.insert(&key(n), value)).await;
            shared.keys.finish(n);
            result
        }
        OpKind::Scan => {
            let start = existing(chooser, rng);
            let len = rng.gen_range(1..=shared.max_scan_len);
            let (from, to) = scan_range(start, len);
            let limit = usize::try_from(len).unwrap_or(usize::MAX);
            timed(timeout, client.scan(&from, &to, limit))
                .await
                .map(drop)
        }
        OpKind::ReadModifyWrite => {
            let k = key(existing(chooser, rng));
            timed(timeout, async {
                client.read(&k).await?;
                client.update(&k, value).await
            })
            .await
        }
    }
}

/// Prints a progress line on stderr every `every` until aborted.
async fn report_progress(shared: Arc<Shared>, every: Duration, store: String) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = 0u64;
    loop {
        tick.tick().await;
        let done = shared.finished.load(Ordering::Relaxed);
        let phase = match shared.phase.load(Ordering::Acquire) {
            WARMUP => "warm-up",
            MEASURING => "measuring",
            _ => "finishing",
        };
        eprintln!(
            "  [{:>5.1} s] {store} workload {} {phase}: {} ops ({:.0} ops/s), {} errors",
            start.elapsed().as_secs_f64(),
            shared.workload,
            done,
            (done - last) as f64 / every.as_secs_f64(),
            shared.failed.load(Ordering::Relaxed)
        );
        last = done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpFuture;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// An in-memory store; every `fail_every`-th operation fails.
    #[derive(Default)]
    struct Memory {
        data: Arc<Mutex<BTreeMap<String, String>>>,
        fail_every: Option<u64>,
    }

    struct MemoryClient {
        data: Arc<Mutex<BTreeMap<String, String>>>,
        fail_every: Option<u64>,
        ops: u64,
    }

    impl MemoryClient {
        fn tick(&mut self) -> Result<(), StoreError> {
            self.ops += 1;
            match self.fail_every {
                Some(n) if self.ops.is_multiple_of(n) => Err(StoreError::Store("injected".into())),
                _ => Ok(()),
            }
        }
    }

    impl Store for Memory {
        fn name(&self) -> String {
            "memory".into()
        }
        fn connect(&self) -> OpFuture<'_, Box<dyn StoreClient>> {
            let client = MemoryClient {
                data: self.data.clone(),
                fail_every: self.fail_every,
                ops: 0,
            };
            Box::pin(async move { Ok(Box::new(client) as Box<dyn StoreClient>) })
        }
    }

    impl StoreClient for MemoryClient {
        fn read<'a>(&'a mut self, key: &'a str) -> OpFuture<'a, Option<String>> {
            Box::pin(async move {
                self.tick()?;
                Ok(self.data.lock().unwrap().get(key).cloned())
            })
        }
        fn update<'a>(&'a mut self, key: &'a str, value: &'a str) -> OpFuture<'a, ()> {
            Box::pin(async move {
                self.tick()?;
                self.data.lock().unwrap().insert(key.into(), value.into());
                Ok(())
            })
        }
        fn scan<'a>(
            &'a mut self,
            start: &'a str,
            end: &'a str,
            limit: usize,
        ) -> OpFuture<'a, Vec<(String, String)>> {
            Box::pin(async move {
                self.tick()?;
                let data = self.data.lock().unwrap();
                let pairs = data.range(start.to_string()..=end.to_string());
                Ok(pairs
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect())
            })
        }
    }

    fn spec(workload: Workload, ops: u64) -> RunSpec {
        RunSpec {
            workload,
            records: 200,
            value_size: 16,
            clients: 4,
            limit: Limit::Operations(ops),
            warmup: Duration::ZERO,
            progress: None,
            ..RunSpec::default()
        }
    }

    #[tokio::test]
    async fn a_run_loads_then_issues_exactly_the_operations_asked() {
        let store = Memory::default();
        let report = run_workload(&store, &spec(Workload::A, 2_000))
            .await
            .unwrap();
        assert_eq!(
            store.data.lock().unwrap().len(),
            200,
            "the load phase wrote every record"
        );
        assert_eq!(report.load.as_ref().map(|l| l.records), Some(200));
        assert_eq!((report.ops, report.errors), (2_000, 0));
        let kinds: Vec<OpKind> = report.per_op.iter().map(|o| o.op).collect();
        assert_eq!(kinds, [OpKind::Read, OpKind::Update]);
        let reads = report.per_op[0].count as f64 / 2_000.0;
        assert!((0.45..0.55).contains(&reads), "{reads}");
    }

    #[tokio::test]
    async fn inserts_grow_the_key_space_and_scans_read_ranges() {
        let store = Memory::default();
        let e = run_workload(&store, &spec(Workload::E, 1_000))
            .await
            .unwrap();
        let inserts = e
            .per_op
            .iter()
            .find(|o| o.op == OpKind::Insert)
            .unwrap()
            .count;
        assert!(inserts > 20, "{inserts} inserts in 1,000 ops of workload E");
        let data = store.data.lock().unwrap();
        assert_eq!(
            data.len() as u64,
            200 + inserts,
            "every insert took a new key"
        );
        assert!(data.contains_key(&key(200 + inserts - 1)));
    }

    #[tokio::test]
    async fn failed_operations_are_counted_not_fatal() {
        let store = Memory {
            fail_every: Some(10),
            ..Memory::default()
        };
        let s = RunSpec {
            load: false,
            ..spec(Workload::F, 1_000)
        };
        let report = run_workload(&store, &s).await.unwrap();
        assert_eq!(report.ops + report.errors, 1_000);
        assert!(report.errors >= 50, "{} errors", report.errors);
        assert!(report.error_samples[0].contains("injected"));
    }
}
