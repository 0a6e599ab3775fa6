//! `diskv client`: the line protocol of docs/REFERENCE.md §4 over stdin/stdout.

use anyhow::Context;
use diskv::line::{decode_line, is_token, parse, Line};
use diskv::{Clerk, Op, Reply};
use std::io::Write;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Read requests from stdin, one per line, and answer each on stdout.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shardmaster addresses, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    masters: Vec<String>,
    #[command(flatten)]
    tls: super::tls::TlsArgs,
}

fn found(b: bool) -> &'static str {
    if b {
        "found"
    } else {
        "not_found"
    }
}

/// Why a stored value cannot be printed faithfully on one line.
const NOT_A_TOKEN: &str = "is not a single token (it is empty or holds whitespace, such as \
    a newline) and cannot be printed faithfully in the line protocol; read it over HTTP";

/// The reply to `VERB k` whose answer is `value` (`GET`, `SWAP`): the value, or
/// `null`, or an error if the value is not a token (the rule of README.md,
/// "Line-protocol client").
fn value_reply(verb: &str, key: &str, value: Option<String>) -> Result<String, String> {
    match value {
        None => Ok(format!("{verb} {key} null")),
        Some(v) if is_token(&v) => Ok(format!("{verb} {key} {v}")),
        Some(_) if verb == "SWAP" => Err(format!(
            "SWAP {key} took effect, but the old value {NOT_A_TOKEN}"
        )),
        Some(_) => Err(format!("{verb} {key}: the value {NOT_A_TOKEN}")),
    }
}

/// The reply lines of `SCAN a b` over `rows`; an error naming the first key
/// whose value (or the key itself) is not a token, so that every row printed is
/// exactly one key and one value.
fn scan_reply(a: &str, b: &str, rows: &[(String, String)]) -> Result<String, String> {
    let mut out = format!("SCAN {a} {b} BEGIN");
    for (k, v) in rows {
        if !is_token(k) {
            return Err(format!("SCAN {a} {b}: a key in the range {NOT_A_TOKEN}"));
        }
        if !is_token(v) {
            return Err(format!("SCAN {a} {b}: the value of {k} {NOT_A_TOKEN}"));
        }
        out.push_str(&format!("\n  {k} {v}"));
    }
    out.push_str("\nSCAN END");
    Ok(out)
}

/// Executes one request and renders its reply lines.
async fn answer(clerk: &mut Clerk, req: Line) -> Result<String, String> {
    let Line::Op(op) = req else {
        return Ok("STOP".into());
    };
    let reply = clerk.execute(op.clone()).await.map_err(|e| e.to_string())?;
    render(&op, reply)
}

/// The reply lines of `op`, answered `reply` (the operations [`parse`] makes).
fn render(op: &Op, reply: Reply) -> Result<String, String> {
    match (op, reply) {
        (Op::Put { key, .. }, Reply::Existed(b)) => Ok(format!("PUT {key} {}", found(b))),
        (Op::Append { key, .. }, Reply::Existed(b)) => Ok(format!("APPEND {key} {}", found(b))),
        (Op::Swap { key, .. }, Reply::Value(old)) => value_reply("SWAP", key, old),
        (Op::Get { key }, Reply::Value(value)) => value_reply("GET", key, value),
        (Op::Delete { key }, Reply::Existed(b)) => Ok(format!("DELETE {key} {}", found(b))),
        (Op::Scan { start, end }, Reply::Pairs(rows)) => scan_reply(start, end, &rows),
        (_, other) => Err(other.unexpected().to_string()),
    }
}

/// The reply to one raw input line, and whether it was `STOP`; `None` for a
/// blank line.
async fn reply_to(clerk: &mut Clerk, raw: &[u8]) -> Option<(String, bool)> {
    let line = match decode_line(raw) {
        Ok(line) => line,
        Err(reason) => return Some((format!("ERROR {reason}"), false)),
    };
    if line.trim().is_empty() {
        return None;
    }
    Some(match parse(line) {
        Ok(req) => {
            let stop = req == Line::Stop;
            let reply = answer(clerk, req)
                .await
                .unwrap_or_else(|e| format!("ERROR {e}"));
            (reply, stop)
        }
        Err(reason) => (format!("ERROR {reason}"), false),
    })
}

/// Runs the client until STOP or end of input.
pub async fn run(args: Args) -> anyhow::Result<()> {
    args.tls.install_client()?;
    let mut clerk = Clerk::new(args.masters).await;
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut stdout = std::io::stdout();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        if stdin
            .read_until(b'\n', &mut raw)
            .await
            .context("reading stdin")?
            == 0
        {
            break;
        }
        let Some((reply, stop)) = reply_to(&mut clerk, &raw).await else {
            continue;
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
    fn token_values_print_byte_for_byte() {
        assert_eq!(
            value_reply("GET", "k", Some("v".into())),
            Ok("GET k v".into())
        );
        assert_eq!(value_reply("GET", "k", None), Ok("GET k null".into()));
        assert_eq!(
            value_reply("SWAP", "k", Some("héllo,🙂".into())),
            Ok("SWAP k héllo,🙂".into())
        );
        let rows = [("a".to_string(), "1".to_string()), ("b".into(), "2".into())];
        assert_eq!(
            scan_reply("a", "z", &rows),
            Ok("SCAN a z BEGIN\n  a 1\n  b 2\nSCAN END".into())
        );
        assert_eq!(
            scan_reply("a", "z", &[]),
            Ok("SCAN a z BEGIN\nSCAN END".into())
        );
    }

    /// Issue #18, B8: a value written over HTTP with a newline printed a second
    /// line indistinguishable from a real answer.
    #[test]
    fn a_value_that_is_not_a_token_is_an_error_on_one_line() {
        for v in [
            "x\nGET inj:2 forged",
            "a b",
            "tab\t",
            "",
            "cr\r",
            "nel\u{85}",
        ] {
            let got = value_reply("GET", "inj:1", Some(v.into()));
            let reason = got.expect_err(v);
            assert!(!reason.contains('\n'), "{reason:?}");
            assert!(reason.starts_with("GET inj:1: the value is not a single token"));
            assert!(reason.contains("read it over HTTP"));
        }
        let swap = value_reply("SWAP", "k", Some("x\ny".into())).unwrap_err();
        assert!(swap.starts_with("SWAP k took effect"), "{swap}");
        let rows = [
            ("a".to_string(), "1".to_string()),
            ("b".into(), "2\n  c 3".into()),
        ];
        let scan = scan_reply("a", "z", &rows).unwrap_err();
        assert!(scan.starts_with("SCAN a z: the value of b is not a single token"));
        assert!(!scan.contains('\n'));
    }
}
