//! `diskv token`: the bearer tokens of the front doors (docs/SECURITY.md).

use diskv::access::{self, Role};
use std::path::PathBuf;

/// Add, list or revoke the tokens in a token file.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Make a token and print it (it is shown only this once).
    Add {
        /// The token file (made by the first `add`).
        #[arg(long)]
        file: PathBuf,
        /// Its name (for `list` and `revoke`, and in the logs).
        name: String,
        /// Reads only (GET, /metrics, Redis reads); the default may write too.
        #[arg(long)]
        read_only: bool,
    },
    /// Print every token's name and role.
    List {
        /// The token file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove the token NAME; front doors refuse it from their next request.
    Revoke {
        /// The token file.
        #[arg(long)]
        file: PathBuf,
        /// The token's name.
        name: String,
    },
}

/// Runs the subcommand.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Add {
            file,
            name,
            read_only,
        } => {
            let role = if read_only { Role::Read } else { Role::Write };
            let token = access::add(&file, &name, role)?;
            println!("{token}");
            eprintln!(
                "token '{name}' ({}) added to {}; it is not stored in clear, keep it now",
                role.as_str(),
                file.display()
            );
        }
        Command::List { file } => {
            for (name, role) in access::list(&file)? {
                println!("{name} {}", role.as_str());
            }
        }
        Command::Revoke { file, name } => {
            anyhow::ensure!(
                access::revoke(&file, &name)?,
                "no token named '{name}' in {}",
                file.display()
            );
            println!("token '{name}' revoked");
        }
    }
    Ok(())
}
