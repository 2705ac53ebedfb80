//! Account keys.
//!
//! * Development accounts come from the mnemonic Hardhat and Anvil use
//!   (`test test ... junk`, path `m/44'/60'/0'/0/i`), so account 0 is
//!   `0xf39F...2266` with the private key every Ethereum tutorial prints.
//! * Keys at rest are Ethereum keystore v3 files (scrypt + AES-128-CTR), so geth,
//!   MetaMask, Foundry's `cast wallet` or ethers' `Wallet.fromEncryptedJson` import
//!   them unchanged.
//!
//! Consensus keys (ed25519) are separate from account keys and arrive with the
//! consensus crate.

use alloy_primitives::Address;
use alloy_signer_local::{coins_bip39::English, LocalSigner, MnemonicBuilder, PrivateKeySigner};
use std::path::{Path, PathBuf};

pub use alloy_signer_local::PrivateKeySigner as AccountKey;

/// The mnemonic Hardhat and Anvil derive their development accounts from.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("deriving development account {index}: {reason}")]
    Derive { index: u32, reason: String },
    #[error("keystore {path}: {reason}")]
    Keystore { path: PathBuf, reason: String },
    #[error("no key for {0} in the keystore directory")]
    NotFound(Address),
    #[error("invalid private key: {0}")]
    BadKey(String),
}

/// The first `n` development accounts.
pub fn dev_accounts(n: u32) -> Result<Vec<PrivateKeySigner>, CryptoError> {
    (0..n)
        .map(|index| {
            MnemonicBuilder::<English>::default()
                .phrase(DEV_MNEMONIC)
                .index(index)
                .and_then(|b| b.build())
                .map_err(|e| CryptoError::Derive {
                    index,
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Parses a hex private key (with or without 0x).
pub fn key_from_hex(hex: &str) -> Result<PrivateKeySigner, CryptoError> {
    hex.trim()
        .parse::<PrivateKeySigner>()
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}

/// Creates a new random key and writes it encrypted under `dir`, named by its address.
pub fn keystore_new(dir: &Path, password: &str) -> Result<(Address, PathBuf), CryptoError> {
    let key = PrivateKeySigner::random();
    keystore_import(dir, &key, password)
}

/// Writes `key` encrypted under `dir` as `UTC--<address>.json`.
pub fn keystore_import(
    dir: &Path,
    key: &PrivateKeySigner,
    password: &str,
) -> Result<(Address, PathBuf), CryptoError> {
    let ks_err = |reason: String| CryptoError::Keystore {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| ks_err(e.to_string()))?;
    let address = key.address();
    let name = format!("UTC--{}.json", hex_addr(address));
    let mut rng = rand::thread_rng();
    LocalSigner::encrypt_keystore(dir, &mut rng, key.to_bytes(), password, Some(&name))
        .map_err(|e| ks_err(e.to_string()))?;
    // geth and most tools name the account in the file; the encrypting crate does not.
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| ks_err(e.to_string()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ks_err(e.to_string()))?;
    json["address"] = serde_json::Value::String(hex_addr(address));
    std::fs::write(&path, json.to_string()).map_err(|e| ks_err(e.to_string()))?;
    Ok((address, path))
}

/// Every keystore file under `dir` with the address it declares, sorted by address.
pub fn keystore_list(dir: &Path) -> Result<Vec<(Address, PathBuf)>, CryptoError> {
    let ks_err = |path: &Path, reason: String| CryptoError::Keystore {
        path: path.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ks_err(dir, e.to_string())),
    };
    for entry in entries {
        let path = entry.map_err(|e| ks_err(dir, e.to_string()))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ks_err(&path, e.to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ks_err(&path, e.to_string()))?;
        let addr = json
            .get("address")
            .and_then(|a| a.as_str())
            .and_then(|a| a.trim_start_matches("0x").parse::<Address>().ok())
            .ok_or_else(|| ks_err(&path, "no address field".into()))?;
        out.push((addr, path));
    }
    out.sort();
    Ok(out)
}

/// Decrypts the key for `address` from `dir`.
pub fn keystore_open(
    dir: &Path,
    address: Address,
    password: &str,
) -> Result<PrivateKeySigner, CryptoError> {
    let (_, path) = keystore_list(dir)?
        .into_iter()
        .find(|(a, _)| *a == address)
        .ok_or(CryptoError::NotFound(address))?;
    LocalSigner::decrypt_keystore(&path, password).map_err(|e| CryptoError::Keystore {
        path,
        reason: e.to_string(),
    })
}

fn hex_addr(a: Address) -> String {
    format!("{a:x}").trim_start_matches("0x").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_match_hardhat() {
        let keys = dev_accounts(2).expect("derive");
        assert_eq!(
            keys[0].address(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
                .parse::<Address>()
                .expect("addr")
        );
        assert_eq!(
            format!("{}", alloy_primitives::hex::encode(keys[0].to_bytes())),
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        assert_eq!(
            keys[1].address(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
                .parse::<Address>()
                .expect("addr")
        );
    }

    #[test]
    fn keystore_round_trip_and_wrong_password() {
        let dir = tempfile::tempdir().expect("tmp");
        let (addr, _) = keystore_new(dir.path(), "pw").expect("new");
        assert_eq!(keystore_list(dir.path()).expect("list")[0].0, addr);
        assert_eq!(
            keystore_open(dir.path(), addr, "pw")
                .expect("open")
                .address(),
            addr
        );
        assert!(keystore_open(dir.path(), addr, "wrong").is_err());
        assert!(matches!(
            keystore_open(dir.path(), Address::ZERO, "pw"),
            Err(CryptoError::NotFound(_))
        ));
    }
}
