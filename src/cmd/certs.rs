//! `diskv certs`: a cluster's CA and the node and client certificates it signs
//! (docs/SECURITY.md).

use paxos::transport::certs::{CertAuthority, NODE_VALID_DAYS};
use paxos::transport::role::Role;
use std::path::PathBuf;

/// Make a cluster CA, or a node or client certificate signed by it.
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
    /// Make a certificate signed by the CA in --ca: a directory to pass as
    /// `--tls-dir` (ca.crt, node.crt, node.key).
    Issue {
        /// The CA's directory (from `diskv certs init`).
        #[arg(long)]
        ca: PathBuf,
        /// The holder's name, shown in its certificate.
        #[arg(long)]
        name: String,
        /// `node`: a replica, shardmaster or `diskv serve` (serves a port, may
        /// open every connection). `client`: `diskv client`, `diskv admin` or
        /// an application (client connections only; cannot serve).
        #[arg(long, value_enum, default_value_t = RoleArg::Node)]
        role: RoleArg,
        /// Every IP address or DNS name the node is dialled at (repeat or
        /// comma-separate); required for a node, not needed for a client.
        #[arg(long = "host", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Where to write it [default: CA_DIR/NAME].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Days it stays valid.
        #[arg(long, default_value_t = NODE_VALID_DAYS)]
        days: i64,
    },
}

/// `--role`: what the certificate lets its holder do ([`Role`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RoleArg {
    /// A diskv process that serves a port.
    Node,
    /// A user's client.
    Client,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Node => Role::Node,
            RoleArg::Client => Role::Client,
        }
    }
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
            role,
            hosts,
            out,
            days,
        } => {
            let role = Role::from(role);
            anyhow::ensure!(days > 0, "--days must be positive");
            anyhow::ensure!(
                role == Role::Client || !hosts.is_empty(),
                "--host is required for a node certificate: every IP address or DNS name \
                 the node is dialled at (a client certificate needs none: --role client)"
            );
            let authority = CertAuthority::open(&ca)?;
            let out = out.unwrap_or_else(|| ca.join(&name));
            authority.issue(&out, &name, role, &hosts, days)?;
            let hosts = if hosts.is_empty() {
                String::new()
            } else {
                format!(" ({})", hosts.join(", "))
            };
            println!(
                "{role} certificate for {name}{hosts} written to {}; pass --tls-dir {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}
