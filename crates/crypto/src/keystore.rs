//! Ethereum keystore v3 files, written as geth writes them: scrypt with n = 2¹⁸,
//! r = 8, p = 1 (geth's "standard" cost: about a second and 256 MiB to try one
//! password), AES-128-CTR, a keccak-256 MAC, and the file created `0600` inside a
//! `0700` directory, never over an existing file. `Kdf::Light` is geth's
//! `--lightkdf` (n = 2¹², p = 6) for throwaway test keys.
//!
//! Files are read by alloy's keystore decoder (it accepts any scrypt or pbkdf2
//! parameters); a failed MAC check is reported as the wrong password it almost
//! always is.

use crate::CryptoError;
use aes::cipher::{KeyIvInit, StreamCipher};
use alloy_primitives::{keccak256, Address};
use rand::RngCore;
use std::io::Write;
use std::path::Path;

/// The scrypt cost of a new keystore file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// geth's default: n = 2¹⁸, r = 8, p = 1.
    Standard,
    /// geth's `--lightkdf`: n = 2¹², r = 8, p = 6.
    Light,
}

impl Kdf {
    /// (log₂ n, r, p)
    fn params(self) -> (u8, u32, u32) {
        match self {
            Kdf::Standard => (18, 8, 1),
            Kdf::Light => (12, 8, 6),
        }
    }
}

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The keystore v3 JSON of `secret` under `password`.
pub fn encrypt(
    secret: &[u8],
    address: Address,
    password: &str,
    kdf: Kdf,
) -> Result<serde_json::Value, String> {
    let mut rng = rand::thread_rng();
    let (mut salt, mut iv, mut id) = ([0u8; 32], [0u8; 16], [0u8; 16]);
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    rng.fill_bytes(&mut id);
    let (log_n, r, p) = kdf.params();
    let params = scrypt::Params::new(log_n, r, p).map_err(|e| e.to_string())?;
    let mut dk = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut dk).map_err(|e| e.to_string())?;
    let mut ciphertext = secret.to_vec();
    Aes128Ctr::new(dk[..16].into(), (&iv).into()).apply_keystream(&mut ciphertext);
    let mac = keccak256([&dk[16..32], &ciphertext[..]].concat());
    // A random (version 4) UUID, as geth names each key.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let h = hex::encode(id);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    Ok(serde_json::json!({
        "address": hex::encode(address),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": {"iv": hex::encode(iv)},
            "ciphertext": hex::encode(&ciphertext),
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": 1u64 << log_n, "p": p, "r": r, "salt": hex::encode(salt)},
            "mac": hex::encode(mac),
        },
        "id": uuid,
        "version": 3,
    }))
}

/// Writes `json` to `path`, readable by its owner only, refusing to replace a file.
pub fn write_private(path: &Path, json: &serde_json::Value) -> Result<(), CryptoError> {
    let err = |reason: String| CryptoError::Keystore {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            set_mode(dir, 0o700).map_err(|e| err(e.to_string()))?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
    f.write_all(json.to_string().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err(e.to_string()))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The message for a keystore that did not decrypt: a wrong password, said so.
pub fn open_error(e: alloy_signer_local::LocalSignerError) -> String {
    match e {
        alloy_signer_local::LocalSignerError::EthKeystoreError(
            eth_keystore::KeystoreError::MacMismatch,
        ) => "wrong password (the keystore's MAC does not match this password)".into(),
        other => other.to_string(),
    }
}
