//! Account keys.
//!
//! * Development accounts come from the mnemonic Hardhat and Anvil use
//!   (`test test ... junk`, path `m/44'/60'/0'/0/i`), so account 0 is
//!   `0xf39F...2266` with the private key every Ethereum tutorial prints.
//! * Keys at rest are Ethereum keystore v3 files (scrypt + AES-128-CTR), so geth,
//!   MetaMask, Foundry's `cast wallet` or ethers' `Wallet.fromEncryptedJson` import
//!   them unchanged; written with geth's scrypt cost, owner-only ([`keystore`]).
//!
//! * Consensus keys are ed25519, separate from account keys, kept unencrypted in a
//!   `0600` JSON file (a validator signs unattended, as Tendermint's
//!   `priv_validator_key.json`). Development validators derive theirs from a public
//!   seed, like the development accounts.

pub mod keystore;

use alloy_primitives::Address;
use alloy_signer_local::{coins_bip39::English, LocalSigner, MnemonicBuilder, PrivateKeySigner};
use std::path::{Path, PathBuf};

pub use keystore::Kdf;

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
pub fn keystore_new(
    dir: &Path,
    password: &str,
    kdf: Kdf,
) -> Result<(Address, PathBuf), CryptoError> {
    let key = PrivateKeySigner::random();
    keystore_import(dir, &key, password, kdf)
}

/// Writes `key` encrypted under `dir` as `UTC--<address>.json` (owner-only, never
/// over an existing file).
pub fn keystore_import(
    dir: &Path,
    key: &PrivateKeySigner,
    password: &str,
    kdf: Kdf,
) -> Result<(Address, PathBuf), CryptoError> {
    let address = key.address();
    let path = dir.join(format!("UTC--{}.json", hex_addr(address)));
    if path.exists() {
        return Err(CryptoError::Keystore {
            path,
            reason: format!("{address} is already in this keystore"),
        });
    }
    let json =
        keystore::encrypt(&key.to_bytes()[..], address, password, kdf).map_err(|reason| {
            CryptoError::Keystore {
                path: path.clone(),
                reason,
            }
        })?;
    keystore::write_private(&path, &json)?;
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
        reason: keystore::open_error(e),
    })
}

/// A validator's ed25519 consensus key.
#[derive(Clone)]
pub struct ConsensusKey {
    seed: [u8; 32],
}

impl std::fmt::Debug for ConsensusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsensusKey({})", self.public())
    }
}

impl ConsensusKey {
    pub fn random() -> Self {
        Self {
            seed: rand::random(),
        }
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { seed }
    }

    /// Development validator `i`'s key: public, like the development mnemonic.
    pub fn dev(i: u32) -> Self {
        use sha2::Digest;
        Self {
            seed: sha2::Sha256::digest(format!("emc development consensus key {i}")).into(),
        }
    }

    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    pub fn public(&self) -> alloy_primitives::B256 {
        alloy_primitives::B256::from(
            ed25519_consensus::SigningKey::from(self.seed)
                .verification_key()
                .to_bytes(),
        )
    }

    /// Writes `{"type": "ed25519", "public": ..., "secret": ...}` readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<(), CryptoError> {
        let err = |reason: String| CryptoError::Keystore {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let json = serde_json::json!({
            "type": "ed25519",
            "public": self.public().to_string(),
            "secret": format!("0x{}", alloy_primitives::hex::encode(self.seed)),
        });
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| err(e.to_string()))?;
        std::io::Write::write_all(&mut f, json.to_string().as_bytes())
            .map_err(|e| err(e.to_string()))
    }

    pub fn read(path: &Path) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::Keystore {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if v["type"] != "ed25519" {
            return Err(err("not an ed25519 consensus key file".into()));
        }
        let secret = v["secret"]
            .as_str()
            .ok_or_else(|| err("no secret".into()))?;
        let bytes = alloy_primitives::hex::decode(secret).map_err(|e| err(e.to_string()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| err("secret is not 32 bytes".into()))?;
        let key = Self { seed };
        if v["public"].as_str() != Some(key.public().to_string().as_str()) {
            return Err(err("public key does not match the secret".into()));
        }
        Ok(key)
    }
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
    fn consensus_key_files_round_trip_and_refuse_tampering() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = ConsensusKey::random();
        let path = dir.path().join("v.json");
        k.write(&path).expect("write");
        assert_eq!(
            ConsensusKey::read(&path).expect("read").public(),
            k.public()
        );
        assert!(k.write(&path).is_err(), "never overwrites a key");
        let text = std::fs::read_to_string(&path)
            .expect("text")
            .replace(&k.public().to_string()[4..10], "abcdef");
        std::fs::write(&path, text).expect("write");
        assert!(ConsensusKey::read(&path).is_err());
        assert_ne!(ConsensusKey::dev(0).public(), ConsensusKey::dev(1).public());
    }

    #[test]
    fn keystore_round_trip_and_wrong_password() {
        let dir = tempfile::tempdir().expect("tmp");
        let ks = dir.path().join("keystore");
        let (addr, path) = keystore_new(&ks, "pw", Kdf::Standard).expect("new");
        assert_eq!(keystore_list(&ks).expect("list")[0].0, addr);
        assert_eq!(
            keystore_open(&ks, addr, "pw").expect("open").address(),
            addr
        );
        // geth's cost and permissions: scrypt n = 2^18, the file 0600 in a 0700 folder.
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(json["crypto"]["kdfparams"]["n"], 262_144);
        assert_eq!(json["version"], 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&ks), 0o700);
        }
        let e = keystore_open(&ks, addr, "wrong").expect_err("refused");
        assert!(e.to_string().contains("wrong password"), "{e}");
        // Never written over.
        let key = keystore_open(&ks, addr, "pw").expect("open");
        assert!(keystore_import(&ks, &key, "other", Kdf::Light).is_err());
        let dir = dir.path();
        assert!(matches!(
            keystore_open(&dir.join("keystore"), Address::ZERO, "pw"),
            Err(CryptoError::NotFound(_))
        ));
    }
}
