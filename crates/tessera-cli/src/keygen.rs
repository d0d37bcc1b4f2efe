//! `tessera keygen`: write a new signing keypair.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tessera_core::keys;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Algorithm {
    /// RSA-2048, RS256 tokens (the seed's algorithm; default).
    Rs256,
    /// Ed25519, EdDSA tokens (smaller, faster; API-key mode).
    Ed25519,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Directory to write `private.pem` (mode 0600) and `public.pem` into.
    #[arg(long, default_value = "./keys")]
    pub out_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Algorithm::Rs256)]
    pub algorithm: Algorithm,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let private = args.out_dir.join("private.pem");
    let public = args.out_dir.join("public.pem");
    if !args.force && (private.exists() || public.exists()) {
        bail!(
            "{} or {} exists; pass --force to replace",
            private.display(),
            public.display()
        );
    }
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let pair = match args.algorithm {
        Algorithm::Rs256 => keys::generate_rsa()?,
        Algorithm::Ed25519 => keys::generate_ed25519()?,
    };
    if args.force {
        let _ = std::fs::remove_file(&private);
    }
    tessera_server::bootstrap::write_secret_file(&private, pair.private_pem.as_bytes())?;
    std::fs::write(&public, pair.public_pem.as_bytes())?;
    eprintln!(
        "wrote {} (keep secret) and {}",
        private.display(),
        public.display()
    );
    Ok(())
}
