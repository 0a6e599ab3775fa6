//! `diskv-fuzz`: runs the fuzz targets of the `diskv-fuzz` crate on stable Rust.
//!
//! ```text
//! diskv-fuzz [--target NAME|all] [--secs N] [--iters N] [--seed S] [--max-len N]
//! diskv-fuzz --target NAME --input FILE     replay one input (a crash file)
//! diskv-fuzz --write-seeds                  rewrite fuzz/corpus/<target>/seed-*
//! diskv-fuzz --list                         the targets and what each reaches
//! ```
//!
//! Exit status 1 if any target failed (its input is saved under
//! `fuzz/crashes/<target>/` and the reproduce command printed), 2 on bad usage.

use diskv_fuzz::runner::{self, Options};
use diskv_fuzz::Target;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str =
    "usage: diskv-fuzz [--target NAME|all] [--secs N] [--iters N] [--seed S] [--max-len N]
       diskv-fuzz --target NAME --input FILE
       diskv-fuzz --write-seeds
       diskv-fuzz --list";

/// What the command line asks for.
struct Args {
    target: String,
    secs: Option<f64>,
    iters: Option<u64>,
    seed: Option<u64>,
    max_len: Option<usize>,
    input: Option<PathBuf>,
    write_seeds: bool,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "all".into(),
        secs: None,
        iters: None,
        seed: None,
        max_len: None,
        input: None,
        write_seeds: false,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        }
        match flag.as_str() {
            "--target" => args.target = value("--target")?,
            "--secs" => args.secs = Some(num("--secs", value("--secs")?)?),
            "--iters" => args.iters = Some(num("--iters", value("--iters")?)?),
            "--seed" => args.seed = Some(num("--seed", value("--seed")?)?),
            "--max-len" => args.max_len = Some(num("--max-len", value("--max-len")?)?),
            "--input" => args.input = Some(PathBuf::from(value("--input")?)),
            "--write-seeds" => args.write_seeds = true,
            "--list" => args.list = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn selected(name: &str) -> Result<Vec<&'static Target>, String> {
    if name == "all" {
        return Ok(diskv_fuzz::all().iter().collect());
    }
    diskv_fuzz::find(name).map(|t| vec![t]).ok_or_else(|| {
        let names: Vec<&str> = diskv_fuzz::all().iter().map(|t| t.name).collect();
        format!("no target {name:?}; targets: {}", names.join(", "))
    })
}

fn write_seeds() -> std::io::Result<()> {
    let corpus = diskv_fuzz::crate_dir().join("corpus");
    for target in diskv_fuzz::all() {
        let dir = corpus.join(target.name);
        std::fs::create_dir_all(&dir)?;
        for (name, _) in runner::read_corpus(&dir) {
            if name.starts_with("seed-") {
                std::fs::remove_file(dir.join(name))?;
            }
        }
        let seeds = (target.seeds)();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{:<14} {} seeds", target.name, seeds.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("diskv-fuzz: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for t in diskv_fuzz::all() {
            println!("{:<14} {}", t.name, t.reaches);
        }
        return ExitCode::SUCCESS;
    }
    if args.write_seeds {
        return match write_seeds() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("diskv-fuzz: writing seeds: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let targets = match selected(&args.target) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("diskv-fuzz: {why}");
            return ExitCode::from(2);
        }
    };
    let defaults = Options::default();
    if let Some(path) = &args.input {
        let [target] = targets[..] else {
            eprintln!("diskv-fuzz: --input needs one --target");
            return ExitCode::from(2);
        };
        let input = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                eprintln!("diskv-fuzz: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        // The default hook prints the whole panic, with a backtrace if asked for.
        let limit = target.alloc_limit.unwrap_or(defaults.alloc_limit);
        return match runner::run_one(target.run, &input, limit) {
            Ok(()) => {
                println!("{}: {} bytes: ok", target.name, input.len());
                ExitCode::SUCCESS
            }
            Err(failure) => {
                println!("{}: {} bytes: {failure}", target.name, input.len());
                ExitCode::FAILURE
            }
        };
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let opts = Options {
        duration: match (args.secs, args.iters) {
            (Some(s), _) => Some(Duration::from_secs_f64(s)),
            (None, Some(_)) => None,
            (None, None) => defaults.duration,
        },
        iterations: args.iters,
        seed,
        max_len: args.max_len.unwrap_or(defaults.max_len),
        ..defaults
    };
    println!("diskv-fuzz: seed {seed} (replay this run with --seed {seed})");
    let mut failed = false;
    for target in targets {
        let report = runner::run_target(target, &opts);
        println!("{report}");
        failed |= report.finding.is_some();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
