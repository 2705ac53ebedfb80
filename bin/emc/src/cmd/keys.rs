//! `emc keys`: account keys in Ethereum keystore v3 files.

use alloy_primitives::Address;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct KeystoreArgs {
    /// Keystore directory.
    #[arg(long, env = "EMC_KEYSTORE")]
    keystore: Option<PathBuf>,
    /// Password (prefer EMC_PASSWORD or --password-file: flags show in `ps`).
    #[arg(long, env = "EMC_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// File whose first line is the password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Write new keys with geth's --lightkdf scrypt cost (n = 4096, p = 6): quick to
    /// open and quick to crack, for throwaway test keys only.
    #[arg(long)]
    light_kdf: bool,
}

impl KeystoreArgs {
    pub fn dir(&self) -> PathBuf {
        self.keystore.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".emc/keystore")
        })
    }

    /// The scrypt cost new keys are written with.
    pub fn kdf(&self) -> emc_crypto::Kdf {
        if self.light_kdf {
            emc_crypto::Kdf::Light
        } else {
            emc_crypto::Kdf::Standard
        }
    }

    pub fn password(&self) -> Result<String> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if let Some(f) = &self.password_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            return Ok(text.lines().next().unwrap_or("").to_string());
        }
        bail!("a password is needed: set EMC_PASSWORD, or pass --password-file FILE")
    }
}

#[derive(clap::Subcommand)]
pub enum KeysCmd {
    /// Create a new random key.
    New(KeystoreArgs),
    /// List the accounts in the keystore.
    List(KeystoreArgs),
    /// Print an account's private key (decrypting its keystore file).
    Export {
        address: Address,
        #[command(flatten)]
        ks: KeystoreArgs,
    },
    /// Create a validator's ed25519 consensus key file; prints its public key.
    ConsensusNew {
        /// Where to write it (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Encrypt a hex private key into the keystore.
    Import {
        /// Private key, hex (read from EMC_PRIVATE_KEY when omitted).
        #[arg(env = "EMC_PRIVATE_KEY", hide_env_values = true)]
        private_key: String,
        #[command(flatten)]
        ks: KeystoreArgs,
    },
}

pub fn run(c: KeysCmd) -> Result<()> {
    match c {
        KeysCmd::New(ks) => {
            let (addr, path) = emc_crypto::keystore_new(&ks.dir(), &ks.password()?, ks.kdf())?;
            println!("{addr}");
            eprintln!("key written to {}", path.display());
        }
        KeysCmd::List(ks) => {
            let keys = emc_crypto::keystore_list(&ks.dir())?;
            if keys.is_empty() {
                eprintln!("no keys in {}", ks.dir().display());
            }
            for (addr, path) in keys {
                println!("{addr}  {}", path.display());
            }
        }
        KeysCmd::Export { address, ks } => {
            let key = emc_crypto::keystore_open(&ks.dir(), address, &ks.password()?)?;
            println!("0x{}", hex::encode(key.to_bytes()));
        }
        KeysCmd::ConsensusNew { out } => {
            let key = emc_crypto::ConsensusKey::random();
            key.write(&out)?;
            println!("{}", key.public());
            eprintln!("consensus key written to {} (mode 0600)", out.display());
        }
        KeysCmd::Import { private_key, ks } => {
            let key = emc_crypto::key_from_hex(&private_key)?;
            let (addr, path) =
                emc_crypto::keystore_import(&ks.dir(), &key, &ks.password()?, ks.kdf())?;
            println!("{addr}");
            eprintln!("key written to {}", path.display());
        }
    }
    Ok(())
}
