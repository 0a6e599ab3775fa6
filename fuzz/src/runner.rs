//! Runs one target: its corpus as it is, then seeded mutations of it, each input on
//! a worker thread under a deadline, with panics caught and allocations measured.
//!
//! The first failing input of a target ends its run: it is written to
//! `crashes/<target>/<hash>` and the [`Report`] says how to replay it
//! (`diskv-fuzz --target NAME --input FILE`).

use crate::mutate::Mutator;
use crate::{alloc, Target};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Stop mutating after this long (`None`: no time bound).
    pub duration: Option<Duration>,
    /// Stop mutating after this many mutants (`None`: no count bound).
    pub iterations: Option<u64>,
    /// Seed of the mutator.
    pub seed: u64,
    /// An input running longer than this is a hang.
    pub deadline: Duration,
    /// An input making more bytes live than this (above what was live before it)
    /// is a failure: allocation out of proportion to inputs of a few KiB. A target
    /// may allow more ([`Target::alloc_limit`]).
    pub alloc_limit: usize,
    /// Longest mutant.
    pub max_len: usize,
    /// Where the corpus folders are (`<corpus>/<target>/`).
    pub corpus_dir: PathBuf,
    /// Where failing inputs are written (`<crashes>/<target>/<hash>`).
    pub crash_dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Some(Duration::from_secs(10)),
            iterations: None,
            seed: 0,
            deadline: Duration::from_secs(2),
            alloc_limit: 256 << 20,
            max_len: 16 << 10,
            corpus_dir: crate::crate_dir().join("corpus"),
            crash_dir: crate::crate_dir().join("crashes"),
        }
    }
}

/// What went wrong with an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The target panicked (a product panic, or a property the target checks).
    Panic(String),
    /// The input ran past the deadline.
    Hang(Duration),
    /// The input made this many bytes live at its peak.
    Alloc(usize),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic(msg) => write!(f, "panic: {msg}"),
            Failure::Hang(d) => write!(f, "hang: no result within {d:?}"),
            Failure::Alloc(n) => write!(f, "allocation: {n} bytes live at the peak"),
        }
    }
}

/// A failing input.
#[derive(Clone, Debug)]
pub struct Finding {
    /// What failed.
    pub failure: Failure,
    /// The input.
    pub input: Vec<u8>,
    /// Where it was written, if it could be.
    pub saved: Option<PathBuf>,
}

/// What a run of one target did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target.
    pub target: &'static str,
    /// Corpus inputs run as they are (files and built-in seeds).
    pub corpus: usize,
    /// Mutants run.
    pub mutants: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The failure that ended the run, if any.
    pub finding: Option<Finding>,
}

impl Report {
    /// Inputs run per second.
    pub fn execs_per_sec(&self) -> f64 {
        (self.corpus as f64 + self.mutants as f64) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<14} {:>5} corpus + {:>9} mutants in {:>6.1} s = {:>8.0} execs/s",
            self.target,
            self.corpus,
            self.mutants,
            self.elapsed.as_secs_f64(),
            self.execs_per_sec()
        )?;
        match &self.finding {
            None => write!(f, "  ok"),
            Some(found) => {
                write!(f, "  FAILED: {}", found.failure)?;
                if let Some(path) = &found.saved {
                    write!(
                        f,
                        "\n  input: {}\n  reproduce: cargo run --profile fuzz -p diskv-fuzz -- --target {} --input {}",
                        path.display(),
                        self.target,
                        path.display()
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The message of the last panic on any thread, kept by the quiet hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the panic hook (once) by one that keeps the message and location
/// instead of printing them: the runner prints one line per failure.
pub fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                s.to_string()
            } else if let Some(s) = info.payload().downcast_ref::<String>() {
                s.clone()
            } else {
                "(non-string panic payload)".to_string()
            };
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let mut msg = format!("{msg}{at}");
            if msg.len() > 600 {
                let mut cut = 600;
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                msg.truncate(cut);
                msg.push_str("...");
            }
            *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
        }));
    });
}

/// Runs `run` on `input` here, catching a panic and measuring allocation.
pub fn run_one(run: fn(&[u8]), input: &[u8], alloc_limit: usize) -> Result<(), Failure> {
    alloc::set_in_flight(Some(input));
    let base = alloc::start_measuring();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(input)));
    let peak = alloc::peak_since(base);
    alloc::set_in_flight(None);
    match outcome {
        Err(_) => {
            let msg = LAST_PANIC
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| "(no message)".into());
            Err(Failure::Panic(msg))
        }
        Ok(()) if peak > alloc_limit => Err(Failure::Alloc(peak)),
        Ok(()) => Ok(()),
    }
}

/// A thread that runs inputs of one target, so that the caller can give up on one
/// that hangs.
struct Worker {
    inputs: Sender<Vec<u8>>,
    results: Receiver<(Vec<u8>, Result<(), Failure>)>,
}

impl Worker {
    fn spawn(target: &'static Target, alloc_limit: usize) -> Worker {
        let (inputs, rx) = mpsc::channel::<Vec<u8>>();
        let (tx, results) = mpsc::channel();
        thread::Builder::new()
            .name(format!("fuzz-{}", target.name))
            .spawn(move || {
                for input in rx {
                    let result = run_one(target.run, &input, alloc_limit);
                    if tx.send((input, result)).is_err() {
                        return;
                    }
                }
            })
            .expect("spawning a fuzz worker thread");
        Worker { inputs, results }
    }

    /// Runs `input`; a hang if no result comes within `deadline` (the worker is
    /// then stuck and must be abandoned).
    fn run(&self, input: Vec<u8>, deadline: Duration) -> (Vec<u8>, Result<(), Failure>) {
        let copy = input.clone();
        if self.inputs.send(input).is_err() {
            return (copy, Err(Failure::Panic("the worker thread died".into())));
        }
        match self.results.recv_timeout(deadline) {
            Ok(done) => done,
            Err(RecvTimeoutError::Timeout) => (copy, Err(Failure::Hang(deadline))),
            Err(RecvTimeoutError::Disconnected) => {
                (copy, Err(Failure::Panic("the worker thread died".into())))
            }
        }
    }
}

/// A short, stable name for an input: 16 hex digits of its FNV-1a hash.
pub fn input_hash(input: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in input {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The files of `dir`, sorted by name (none if it does not exist).
pub fn read_corpus(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            std::fs::read(e.path()).ok().map(|bytes| (name, bytes))
        })
        .collect();
    files.sort();
    files
}

fn save(crash_dir: &Path, target: &str, input: &[u8]) -> Option<PathBuf> {
    let dir = crash_dir.join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(input_hash(input));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Runs `target`: its corpus folder and built-in seeds as they are, then mutants
/// until the time or iteration budget is spent (whichever comes first), stopping at
/// the first failure.
pub fn run_target(target: &'static Target, opts: &Options) -> Report {
    quiet_panics();
    let start = Instant::now();
    let mut corpus: Vec<Vec<u8>> = read_corpus(&opts.corpus_dir.join(target.name))
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    corpus.extend((target.seeds)().into_iter().map(|(_, bytes)| bytes));
    let crash_dir = opts.crash_dir.join(target.name);
    let _ = std::fs::create_dir_all(&crash_dir);
    alloc::arm(
        &crash_dir.join("over-hard-allocation-limit"),
        format!(
            "diskv-fuzz: input written to {}\n  reproduce: cargo run --profile fuzz -p diskv-fuzz -- --target {} --input {}\n",
            crash_dir.join("over-hard-allocation-limit").display(),
            target.name,
            crash_dir.join("over-hard-allocation-limit").display()
        ),
    );
    let worker = Worker::spawn(target, target.alloc_limit.unwrap_or(opts.alloc_limit));
    let mut report = Report {
        target: target.name,
        corpus: 0,
        mutants: 0,
        elapsed: Duration::ZERO,
        finding: None,
    };
    let fail = |input: Vec<u8>, failure: Failure| {
        let saved = save(&opts.crash_dir, target.name, &input);
        Some(Finding {
            failure,
            input,
            saved,
        })
    };
    for input in &corpus {
        let (input, result) = worker.run(input.clone(), opts.deadline);
        report.corpus += 1;
        if let Err(failure) = result {
            report.finding = fail(input, failure);
            report.elapsed = start.elapsed();
            return report;
        }
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut mutator = Mutator::new(opts.seed, opts.max_len);
    let mutating = Instant::now();
    loop {
        if opts.iterations.is_some_and(|n| report.mutants >= n)
            || opts.duration.is_some_and(|d| mutating.elapsed() >= d)
        {
            break;
        }
        let base = mutator.rng().below(corpus.len());
        let other = mutator.rng().below(corpus.len());
        let input = mutator.mutate(&corpus[base], &corpus[other]);
        let (input, result) = worker.run(input, opts.deadline);
        report.mutants += 1;
        if let Err(failure) = result {
            report.finding = fail(input, failure);
            break;
        }
    }
    report.elapsed = start.elapsed();
    report
}
