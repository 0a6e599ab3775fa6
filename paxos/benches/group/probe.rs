//! What the machine itself can do, measured in the same run as the group: the raw
//! fdatasync rate of the benchmark's directory, the loopback round trip, and which
//! filesystem the directory is on.

use hdrhistogram::Histogram;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Latencies in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Microseconds of `d`, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// The raw fdatasync rate of a directory.
#[derive(Debug)]
pub struct SyncRate {
    /// Threads appending and syncing at once, each to its own file.
    pub writers: usize,
    /// Appends + fdatasyncs completed per second, all writers together.
    pub per_sec: f64,
    /// Median time of one write + fdatasync, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
}

/// Runs `writers` threads that each append `record_bytes` to their own fresh file in
/// `dir` and fdatasync it, in a loop for `run`: the write pattern of the log
/// (appending, so the file size changes, as in a segment).
pub fn fdatasync_rate(
    dir: &Path,
    writers: usize,
    record_bytes: usize,
    run: Duration,
) -> std::io::Result<SyncRate> {
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|i| {
            let path = dir.join(format!("fdatasync-probe-{i}"));
            std::thread::spawn(move || sync_loop(&path, record_bytes, started + run))
        })
        .collect();
    let mut hist = micros_histogram();
    for thread in threads {
        let one = thread
            .join()
            .map_err(|_| std::io::Error::other("fdatasync probe thread panicked"))??;
        hist.add(&one)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    }
    Ok(SyncRate {
        writers,
        per_sec: hist.len() as f64 / started.elapsed().as_secs_f64(),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    })
}

/// Appends and fdatasyncs `path` until `until`; returns the latencies, µs.
fn sync_loop(path: &Path, record_bytes: usize, until: Instant) -> std::io::Result<Histogram<u64>> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let record = vec![0x5a; record_bytes];
    let mut hist = micros_histogram();
    while Instant::now() < until {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        hist.saturating_record(micros(t.elapsed()));
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(hist)
}

/// The loopback TCP round trip.
#[derive(Debug)]
pub struct RoundTrip {
    /// Median, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
}

/// Round trips of a `msg_bytes` message to a tokio echo server on 127.0.0.1, with
/// `TCP_NODELAY`, for `run` (after 100 unmeasured ones).
pub async fn loopback_round_trip(msg_bytes: usize, run: Duration) -> std::io::Result<RoundTrip> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    });
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let msg = vec![0xa5; msg_bytes];
    let mut back = vec![0u8; msg_bytes];
    let mut hist = micros_histogram();
    for _ in 0..100 {
        stream.write_all(&msg).await?;
        stream.read_exact(&mut back).await?;
    }
    let started = Instant::now();
    while started.elapsed() < run {
        let t = Instant::now();
        stream.write_all(&msg).await?;
        stream.read_exact(&mut back).await?;
        hist.saturating_record(micros(t.elapsed()));
    }
    drop(stream);
    let _ = echo.await;
    Ok(RoundTrip {
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    })
}

/// The mount a path lives on, from `/proc/self/mounts`.
#[derive(Debug, Default)]
pub struct Mount {
    /// The device (or pseudo-device) mounted.
    pub device: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its filesystem type (ext4, xfs, tmpfs, overlay...).
    pub fs_type: String,
}

/// The mount holding `path` (the longest mount point that is a prefix of it), or a
/// `Mount` of unknowns if `/proc/self/mounts` cannot be read.
pub fn mount_of(path: &Path) -> Mount {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
            Some(Mount {
                device: device.to_owned(),
                mount_point: PathBuf::from(point.replace("\\040", " ")),
                fs_type: fs_type.to_owned(),
            })
        })
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .unwrap_or_else(|| Mount {
            device: "?".into(),
            mount_point: PathBuf::from("?"),
            fs_type: "?".into(),
        })
}
