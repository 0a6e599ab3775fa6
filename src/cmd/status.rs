//! `diskv admin status`: one screen on the whole cluster — every shardmaster and
//! group replica, its role, applied index and lag, shards, keys, disk and last
//! error — or the same as one JSON object (`--json`). The exit status is the
//! verdict, so it serves as a health check (docs/REFERENCE.md §3).

use diskv::client::survey::{self, ClusterStatus, Health, Seen, SurveyOptions};
use diskv::rpc::ReplicaStatus;
use diskv::shard::ShardMode;
use paxos::node::DiskUse;
use shardmaster::status::MasterStatus;
use std::fmt::Write as _;

/// Exit status of a degraded cluster.
pub const EXIT_DEGRADED: u8 = 2;
/// Exit status of a cluster with a shard that cannot be served.
pub const EXIT_UNAVAILABLE: u8 = 3;

/// A command that ran to its end and answers with a non-zero exit status.
#[derive(Debug)]
pub struct Verdict {
    /// The exit status.
    pub code: u8,
    /// The one line printed on stderr.
    pub message: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Verdict {}

/// Surveys the cluster, prints it, and turns its health into the exit status:
/// 0 healthy, [`EXIT_DEGRADED`], [`EXIT_UNAVAILABLE`].
pub async fn run(masters: Vec<String>, opts: SurveyOptions, json: bool) -> anyhow::Result<()> {
    let status = survey::survey(masters, &opts, &Default::default()).await;
    if json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print!("{}", render(&status));
    }
    let code = match status.health {
        Health::Healthy => return Ok(()),
        Health::Degraded => EXIT_DEGRADED,
        Health::Unavailable => EXIT_UNAVAILABLE,
    };
    Err(Verdict {
        code,
        message: format!("the cluster is {}", status.health.name()),
    }
    .into())
}

/// The one-screen table.
pub fn render(status: &ClusterStatus) -> String {
    let mut out = String::new();
    let config = status.config.map_or("no configuration".to_string(), |n| {
        format!("configuration {n}")
    });
    let _ = writeln!(
        out,
        "cluster {} · {config} · {} shards · {} groups",
        status.health.name(),
        status.shards.len(),
        status.groups.len()
    );
    for (title, lines) in [("problems", &status.problems), ("in motion", &status.notes)] {
        if !lines.is_empty() {
            let _ = writeln!(out, "{title}:");
            for line in lines {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    let mut rows = vec![[
        "SET", "#", "ADDRESS", "ROLE", "APPLIED", "LAG", "SHARDS", "KEYS", "DISK", "FREE", "ERROR",
    ]
    .map(String::from)
    .to_vec()];
    for (i, m) in status.masters.iter().enumerate() {
        rows.push(master_row(i, m));
    }
    for g in &status.groups {
        for (i, r) in g.replicas.iter().enumerate() {
            rows.push(replica_row(g.gid, i, r));
        }
    }
    out.push('\n');
    out.push_str(&table(&rows));
    out
}

fn master_row(i: usize, seen: &Seen<MasterStatus>) -> Vec<String> {
    let Some(s) = &seen.status else {
        return down_row("shardmaster".into(), i, seen);
    };
    vec![
        "shardmaster".into(),
        s.me.to_string(),
        seen.addr.clone(),
        s.node.role.name().into(),
        s.applied.to_string(),
        lag(seen),
        "-".into(),
        format!("config {}", s.latest_config),
        disk(s.disk, s.disk_error.as_deref()),
        free(s.disk),
        s.node.error.clone().unwrap_or_default(),
    ]
}

fn replica_row(gid: u64, i: usize, seen: &Seen<ReplicaStatus>) -> Vec<String> {
    let set = format!("group {gid}");
    let Some(s) = &seen.status else {
        return down_row(set, i, seen);
    };
    vec![
        set,
        s.me.to_string(),
        seen.addr.clone(),
        s.node.role.name().into(),
        s.applied.to_string(),
        lag(seen),
        shards(s),
        s.keys.to_string(),
        disk(s.disk, s.disk_error.as_deref()),
        free(s.disk),
        s.node.error.clone().unwrap_or_default(),
    ]
}

fn down_row<T>(set: String, i: usize, seen: &Seen<T>) -> Vec<String> {
    let mut row = vec![set, i.to_string(), seen.addr.clone(), "down".into()];
    row.extend(["-", "-", "-", "-", "-", "-"].map(String::from));
    row.push(seen.error.clone().unwrap_or_default());
    row
}

fn lag<T>(seen: &Seen<T>) -> String {
    seen.lag.map_or("-".into(), |l| l.to_string())
}

/// The shards a replica holds: `3` serving, `3<` arriving, `3>` leaving.
fn shards(s: &ReplicaStatus) -> String {
    if s.shards.is_empty() {
        return "-".into();
    }
    s.shards
        .iter()
        .map(|(shard, mode)| match mode {
            ShardMode::Serving => shard.to_string(),
            ShardMode::Pulling { .. } => format!("{shard}<"),
            ShardMode::Leaving { .. } => format!("{shard}>"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn disk(d: Option<DiskUse>, error: Option<&str>) -> String {
    match (d, error) {
        (Some(d), _) => bytes(d.used_bytes),
        (None, Some(_)) => "?".into(),
        (None, None) => "-".into(),
    }
}

fn free(d: Option<DiskUse>) -> String {
    d.map_or("-".into(), |d| bytes(d.free_bytes))
}

/// `n` bytes in the largest binary unit that keeps it at 1 or more.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_shown_in_the_largest_fitting_unit() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn columns_line_up_and_the_last_is_not_padded() {
        let rows = vec![
            vec!["a".to_string(), "bb".into(), "x".into()],
            vec!["ccc".to_string(), "d".into(), "".into()],
        ];
        assert_eq!(table(&rows), "a    bb  x\nccc  d\n");
    }
}
