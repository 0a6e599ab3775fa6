//! `diskv certs`: a cluster's CA and the node certificates it signs
//! (docs/SECURITY.md).

use paxos::transport::certs::{CertAuthority, NODE_VALID_DAYS};
use std::path::PathBuf;

/// Make a cluster CA, or a node certificate signed by it.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Make a new CA in DIR (ca.crt, and ca.key which must stay secret).
    Init {
        /// Where the CA is kept.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name, shown in its certificate [default: diskv cluster CA
        /// and a random suffix, so two clusters' CAs never share a name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Make a node certificate signed by the CA in --ca: a directory to pass as
    /// `--tls-dir` (ca.crt, node.crt, node.key).
    Issue {
        /// The CA's directory (from `diskv certs init`).
        #[arg(long)]
        ca: PathBuf,
        /// The node's name, shown in its certificate.
        #[arg(long)]
        name: String,
        /// Every IP address or DNS name the node is dialled at (repeat or
        /// comma-separate); clients only need one, e.g. 127.0.0.1.
        #[arg(long = "host", value_delimiter = ',', required = true)]
        hosts: Vec<String>,
        /// Where to write it [default: CA_DIR/NAME].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days it stays valid.
        #[arg(long, default_value_t = NODE_VALID_DAYS)]
        days: i64,
    },
}

/// Runs the subcommand; prints what it wrote on stdout.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Init { dir, name } => {
            let name =
                name.unwrap_or_else(|| format!("diskv cluster CA {:08x}", rand::random::<u32>()));
            CertAuthority::create(&dir, &name)?;
            println!(
                "CA written to {} (ca.crt; keep ca.key secret)",
                dir.display()
            );
        }
        Command::Issue {
            ca,
            name,
            hosts,
            out,
            days,
        } => {
            anyhow::ensure!(days > 0, "--days must be positive");
            let authority = CertAuthority::open(&ca)?;
            let out = out.unwrap_or_else(|| ca.join(&name));
            authority.issue(&out, &name, &hosts, days)?;
            println!(
                "certificate for {name} ({}) written to {}; pass --tls-dir {}",
                hosts.join(", "),
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}
