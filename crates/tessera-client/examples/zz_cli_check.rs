#[path = "../../tessera-cli/src/license.rs"]
mod license;
#[path = "../../tessera-cli/src/output.rs"]
mod output;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: license::LicenseArgs,
    #[command(subcommand)]
    cmd: license::LicenseCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    license::run(cli.args, cli.cmd).await
}
