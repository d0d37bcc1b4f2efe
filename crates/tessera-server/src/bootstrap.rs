//! First start: create the data directory, a signing keypair and an admin token when none are
//! configured, and say where they are, once. The private key and the token are never logged.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tessera_core::Signer;
use tessera_core::keys::{self, PrivateKey};

use crate::config::ServeArgs;
use crate::secret::{Secret, random_token};

pub struct Bootstrapped {
    pub signer: Signer,
    pub admin_token: Secret,
}

pub fn prepare(args: &ServeArgs) -> anyhow::Result<Bootstrapped> {
    let admin_token = admin_token(args)?;
    let signer = signer(args)?;
    Ok(Bootstrapped {
        signer,
        admin_token,
    })
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions on {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> anyhow::Result<()> {
    Ok(())
}

/// Writes a new file readable only by its owner; fails rather than overwrite.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn admin_token(args: &ServeArgs) -> anyhow::Result<Secret> {
    // clap may treat an empty variable as unset; an operator who set it empty made a mistake.
    let env_empty = std::env::var_os("ADMIN_TOKEN").is_some_and(|v| v.is_empty());
    match &args.admin_token {
        Some(t) if t.trim().is_empty() => {
            bail!(
                "ADMIN_TOKEN is set but empty: set a long random value, or unset it to have one generated"
            )
        }
        Some(t) => {
            if t.len() < 16 {
                tracing::warn!(
                    "ADMIN_TOKEN is shorter than 16 characters; use a long random value"
                );
            }
            Ok(Secret::new(t.trim().to_string()))
        }
        None if env_empty => {
            bail!(
                "ADMIN_TOKEN is set but empty: set a long random value, or unset it to have one generated"
            )
        }
        None => {
            ensure_private_dir(&args.data_dir)?;
            let path = args.data_dir.join("admin-token");
            if path.exists() {
                let token = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let token = token.trim().to_string();
                if token.is_empty() {
                    bail!(
                        "{} is empty: delete it to have a new token generated",
                        path.display()
                    );
                }
                return Ok(Secret::new(token));
            }
            let token = random_token(32);
            write_secret_file(&path, format!("{token}\n").as_bytes())?;
            tracing::info!(path = %path.display(), "generated an admin token (ADMIN_TOKEN was not set); read it from this file");
            Ok(Secret::new(token))
        }
    }
}

fn signer(args: &ServeArgs) -> anyhow::Result<Signer> {
    let private_path = match &args.jwt_private_key_path {
        Some(p) => p.clone(),
        None => default_private_key(&args.data_dir)?,
    };
    let pem = std::fs::read(&private_path)
        .with_context(|| format!("reading JWT private key {}", private_path.display()))?;
    let key = PrivateKey::from_pem(&pem)
        .with_context(|| format!("parsing JWT private key {}", private_path.display()))?;
    let signer = Signer::new(key, None)?;
    if let Some(public_path) = &args.jwt_public_key_path {
        let public = std::fs::read_to_string(public_path)
            .with_context(|| format!("reading JWT public key {}", public_path.display()))?;
        let mut trusted = tessera_core::Verifier::default();
        trusted.trust_pem(public.as_bytes(), None)?;
        let probe = signer.sign(&serde_json::json!({"probe": true}))?;
        if trusted.decode::<serde_json::Value>(&probe).is_err() {
            bail!(
                "JWT_PUBLIC_KEY_PATH {} does not match JWT_PRIVATE_KEY_PATH {}",
                public_path.display(),
                private_path.display()
            );
        }
    }
    Ok(signer)
}

fn default_private_key(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("keys");
    let private = dir.join("private.pem");
    if private.exists() {
        return Ok(private);
    }
    ensure_private_dir(data_dir)?;
    ensure_private_dir(&dir)?;
    let pair = keys::generate_rsa()?;
    write_secret_file(&private, pair.private_pem.as_bytes())?;
    let public = dir.join("public.pem");
    std::fs::write(&public, pair.public_pem.as_bytes())?;
    tracing::info!(
        private_key = %private.display(),
        public_key = %public.display(),
        "generated an RSA-2048 signing keypair; embed the public key in your applications"
    );
    Ok(private)
}
