//! `diskv client`: the line protocol of contracts.md §4 over stdin/stdout.

use anyhow::Context;
use diskv::Clerk;
use std::io::Write;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Read requests from stdin, one per line, and answer each on stdout.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shardmaster addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
}

/// One parsed request line.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Put(String, String),
    Append(String, String),
    Swap(String, String),
    Get(String),
    Delete(String),
    Scan(String, String),
    Stop,
}

/// Parses a request line, or says what is wrong with it.
fn parse(line: &str) -> Result<Line, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, rest)) = words.split_first() else {
        return Err("empty line".into());
    };
    let want = |n: usize| -> Result<(), String> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{verb} takes {n} argument{}, got {}",
                if n == 1 { "" } else { "s" },
                rest.len()
            ))
        }
    };
    let s = |i: usize| rest[i].to_string();
    match verb {
        "PUT" => want(2).map(|_| Line::Put(s(0), s(1))),
        "APPEND" => want(2).map(|_| Line::Append(s(0), s(1))),
        "SWAP" => want(2).map(|_| Line::Swap(s(0), s(1))),
        "GET" => want(1).map(|_| Line::Get(s(0))),
        "DELETE" => want(1).map(|_| Line::Delete(s(0))),
        "SCAN" => want(2).map(|_| Line::Scan(s(0), s(1))),
        "STOP" => want(0).map(|_| Line::Stop),
        other => Err(format!(
            "unknown request {other:?}; expected PUT, APPEND, SWAP, GET, DELETE, SCAN or STOP"
        )),
    }
}

fn found(b: bool) -> &'static str {
    if b {
        "found"
    } else {
        "not_found"
    }
}

/// Executes one request and renders its reply lines.
async fn answer(clerk: &mut Clerk, req: Line) -> Result<String, String> {
    let e = |e: diskv::KvError| e.to_string();
    Ok(match req {
        Line::Put(k, v) => format!("PUT {k} {}", found(clerk.put(&k, &v).await.map_err(e)?)),
        Line::Append(k, v) => format!(
            "APPEND {k} {}",
            found(clerk.append(&k, &v).await.map_err(e)?)
        ),
        Line::Swap(k, v) => format!(
            "SWAP {k} {}",
            clerk
                .swap(&k, &v)
                .await
                .map_err(e)?
                .unwrap_or_else(|| "null".into())
        ),
        Line::Get(k) => format!(
            "GET {k} {}",
            clerk
                .get(&k)
                .await
                .map_err(e)?
                .unwrap_or_else(|| "null".into())
        ),
        Line::Delete(k) => format!("DELETE {k} {}", found(clerk.delete(&k).await.map_err(e)?)),
        Line::Scan(a, b) => {
            let mut out = format!("SCAN {a} {b} BEGIN");
            for (k, v) in clerk.scan(&a, &b).await.map_err(e)? {
                out.push_str(&format!("\n  {k} {v}"));
            }
            out.push_str("\nSCAN END");
            out
        }
        Line::Stop => "STOP".into(),
    })
}

/// Runs the client until STOP or end of input.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut clerk = Clerk::new(args.masters).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = std::io::stdout();
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        if line.trim().is_empty() {
            continue;
        }
        let (reply, stop) = match parse(&line) {
            Ok(req) => {
                let stop = req == Line::Stop;
                (
                    answer(&mut clerk, req)
                        .await
                        .unwrap_or_else(|e| format!("ERROR {e}")),
                    stop,
                )
            }
            Err(reason) => (format!("ERROR {reason}"), false),
        };
        writeln!(stdout, "{reply}")
            .and_then(|_| stdout.flush())
            .context("writing stdout")?;
        if stop {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_request_form() {
        assert_eq!(parse("PUT k v"), Ok(Line::Put("k".into(), "v".into())));
        assert_eq!(
            parse("  APPEND k v  "),
            Ok(Line::Append("k".into(), "v".into()))
        );
        assert_eq!(parse("SWAP k v"), Ok(Line::Swap("k".into(), "v".into())));
        assert_eq!(parse("GET k"), Ok(Line::Get("k".into())));
        assert_eq!(parse("DELETE k"), Ok(Line::Delete("k".into())));
        assert_eq!(parse("SCAN a b"), Ok(Line::Scan("a".into(), "b".into())));
        assert_eq!(parse("STOP"), Ok(Line::Stop));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert!(parse("PUT k")
            .unwrap_err()
            .contains("PUT takes 2 arguments, got 1"));
        assert!(parse("GET")
            .unwrap_err()
            .contains("GET takes 1 argument, got 0"));
        assert!(parse("put k v").unwrap_err().contains("unknown request"));
        assert!(parse("STOP now").is_err());
    }
}
