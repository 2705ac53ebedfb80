//! Reading a DID: `did:<method>:<method-specific id>`, with the DID URL parts a
//! resolver is given (`?versionId=<block>` for did:ethr; a path or fragment is cut
//! off, as `did-resolver`'s parser does).

use crate::{IdentityError, MAX_DID_BYTES};
use alloy_primitives::Address;

/// A DID this node resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Did {
    /// `did:pkh:eip155:<chain id>:<address>`: any account on any EVM chain.
    Pkh { account: String },
    /// `did:ethr:<network>:<identity>`: an identity in an ERC-1056 registry.
    Ethr { network: String, id: EthrId },
    /// `did:key:z<base58btc(multicodec ++ key)>`.
    Key { fingerprint: String, key: PublicKey },
}

/// A did:ethr identity: an address, or the compressed secp256k1 key whose address it
/// is (then the key is also in the document, as `#controllerKey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EthrId {
    Address(Address),
    PublicKey { hex: String, address: Address },
}

impl EthrId {
    pub fn address(&self) -> Address {
        match self {
            EthrId::Address(a) | EthrId::PublicKey { address: a, .. } => *a,
        }
    }
}

/// A did:key's key, by its multicodec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// `0xed`: 32 bytes.
    Ed25519([u8; 32]),
    /// `0xe7`: 33 bytes, compressed.
    Secp256k1(Vec<u8>),
}

/// A DID URL as a resolver is given it: the DID itself and the block asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The DID alone (no path, query or fragment): the document's `id`.
    pub did: String,
    pub method: Did,
    /// `?versionId=<n>`: the document as of block `n` (did:ethr).
    pub version_id: Option<u64>,
}

fn invalid(why: impl Into<String>) -> IdentityError {
    IdentityError::InvalidDid(why.into())
}

/// Reads a DID URL.
pub fn parse(url: &str) -> Result<Parsed, IdentityError> {
    if url.len() > MAX_DID_BYTES {
        return Err(invalid(format!(
            "a DID of {} bytes is longer than the {MAX_DID_BYTES} this resolver reads",
            url.len()
        )));
    }
    let (before_fragment, _) = url.split_once('#').unwrap_or((url, ""));
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let did = before_query.split('/').next().unwrap_or_default();
    let rest = did
        .strip_prefix("did:")
        .ok_or_else(|| invalid(format!("{} does not begin with did:", clip(url))))?;
    let (method, id) = rest
        .split_once(':')
        .filter(|(m, id)| !m.is_empty() && !id.is_empty())
        .ok_or_else(|| invalid(format!("{} is not did:<method>:<id>", clip(url))))?;
    let method = match method {
        "pkh" => pkh(id)?,
        "ethr" => ethr(id)?,
        "key" => key(id)?,
        other => {
            return Err(IdentityError::MethodNotSupported(format!(
                "did:{} is not resolved here (did:ethr, did:pkh and did:key are)",
                clip(other)
            )))
        }
    };
    let version_id =
        match query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("versionId="))) {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| invalid(format!("versionId {} is not a block number", clip(v))))?,
            ),
        };
    Ok(Parsed {
        did: did.to_string(),
        method,
        version_id,
    })
}

/// At most 80 characters of what a caller sent, for a message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn pkh(id: &str) -> Result<Did, IdentityError> {
    let parts: Vec<&str> = id.split(':').collect();
    let [namespace, reference, address] = parts[..] else {
        return Err(invalid(format!(
            "did:pkh:{} is not <namespace>:<reference>:<address>",
            clip(id)
        )));
    };
    if namespace != "eip155" {
        return Err(invalid(format!(
            "chain namespace not supported {}",
            clip(namespace)
        )));
    }
    let reference_ok = !reference.is_empty()
        && reference.len() <= 32
        && reference.bytes().all(|b| b.is_ascii_digit());
    let address_ok = address.len() == 42
        && address.starts_with("0x")
        && address[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !reference_ok || !address_ok {
        return Err(invalid(format!(
            "did:pkh:{} is not eip155:<chain id>:0x<40 hex>",
            clip(id)
        )));
    }
    Ok(Did::Pkh {
        account: id.to_string(),
    })
}

/// `ethr-did-resolver`'s reading: the identity is the trailing `0x` + 40 or 66 hex
/// digits, the network what comes before it (`mainnet` if nothing).
fn ethr(id: &str) -> Result<Did, IdentityError> {
    let hex_tail = |n: usize| {
        id.len() >= n + 2
            && id.is_char_boundary(id.len() - n - 2)
            && id[id.len() - n - 2..].starts_with("0x")
            && id[id.len() - n..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    let n = if hex_tail(66) {
        66
    } else if hex_tail(40) {
        40
    } else {
        return Err(invalid(format!("Not a valid did:ethr: {}", clip(id))));
    };
    let (prefix, ident) = id.split_at(id.len() - n - 2);
    let network = match prefix {
        "" => "mainnet".to_string(),
        p => p.strip_suffix(':').unwrap_or(p).to_string(),
    };
    let id = if n == 40 {
        let address = checksummed(ident)?;
        EthrId::Address(address)
    } else {
        let bytes = alloy_primitives::hex::decode(ident).map_err(|e| invalid(e.to_string()))?;
        let pk = k256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| {
            IdentityError::NotFound(format!("{} is not a secp256k1 public key", clip(ident)))
        })?;
        use k256::elliptic_curve::sec1::ToEncodedPoint;
        let point = pk.to_encoded_point(false);
        let hash = alloy_primitives::keccak256(&point.as_bytes()[1..]);
        EthrId::PublicKey {
            hex: ident.to_string(),
            address: Address::from_slice(&hash[12..]),
        }
    };
    Ok(Did::Ethr { network, id })
}

/// An address as ethers' `getAddress` reads it: all one case, or a valid checksum.
fn checksummed(s: &str) -> Result<Address, IdentityError> {
    let a: Address = s
        .parse()
        .map_err(|_| invalid(format!("{} is not an address", clip(s))))?;
    let digits = &s[2..];
    let one_case = digits == digits.to_lowercase() || digits == digits.to_uppercase();
    if !one_case && a.to_checksum(None) != s {
        return Err(IdentityError::NotFound(format!(
            "bad address checksum: {}",
            clip(s)
        )));
    }
    Ok(a)
}

fn key(id: &str) -> Result<Did, IdentityError> {
    let b58 = id
        .strip_prefix('z')
        .ok_or_else(|| invalid(format!("did:key:{} is not base58btc (z…)", clip(id))))?;
    let bytes = bs58::decode(b58)
        .into_vec()
        .map_err(|e| invalid(format!("did:key:{}: {e}", clip(id))))?;
    let key = match bytes.as_slice() {
        [0xed, 0x01, k @ ..] => PublicKey::Ed25519(
            k.try_into()
                .map_err(|_| invalid(format!("an Ed25519 key of {} bytes, not 32", k.len())))?,
        ),
        [0xe7, 0x01, k @ ..] => {
            if k.len() != 33 {
                return Err(invalid(format!(
                    "a secp256k1 key of {} bytes, not 33",
                    k.len()
                )));
            }
            PublicKey::Secp256k1(k.to_vec())
        }
        _ => {
            return Err(invalid(
                "did:key of a key type other than Ed25519 or secp256k1",
            ))
        }
    };
    Ok(Did::Key {
        fingerprint: id.to_string(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids_are_read_as_the_published_resolvers_read_them() {
        let p = parse(
            "did:ethr:0x1a4:0xb9c5714089478a327f09197987f16f9e5d936e8a?versionId=7#controller",
        )
        .expect("did:ethr");
        assert_eq!(
            p.did,
            "did:ethr:0x1a4:0xb9c5714089478a327f09197987f16f9e5d936e8a"
        );
        assert_eq!(p.version_id, Some(7));
        let Did::Ethr { network, id } = p.method else {
            panic!("ethr")
        };
        assert_eq!(network, "0x1a4");
        assert_eq!(
            id.address(),
            "0xb9c5714089478a327f09197987f16f9e5d936e8a"
                .parse::<Address>()
                .expect("address")
        );
        let Did::Ethr { network, .. } =
            parse("did:ethr:0xb9c5714089478a327f09197987f16f9e5d936e8a")
                .expect("bare")
                .method
        else {
            panic!()
        };
        assert_eq!(network, "mainnet");
        // A compressed key names the address it hashes to.
        let k = "0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let Did::Ethr { id, .. } = parse(&format!("did:ethr:0x1a4:{k}")).expect("key").method
        else {
            panic!()
        };
        let generator: Address = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
            .parse()
            .expect("addr");
        assert_eq!(id.address(), generator, "the key of private key 1");
        assert!(matches!(
            parse("did:key:z6MktvqCyLxTsXUH1tUZncNdVeEZ7hNh7npPRbUU27GTrYb8")
                .expect("key")
                .method,
            Did::Key {
                key: PublicKey::Ed25519(_),
                ..
            }
        ));
        assert!(matches!(
            parse("did:pkh:eip155:1:0xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb")
                .expect("pkh")
                .method,
            Did::Pkh { .. }
        ));
    }

    #[test]
    fn bad_dids_say_what_is_wrong() {
        let table = [
            ("ethr:0x1", "invalidDid"),
            ("did:web:example.com", "methodNotSupported"),
            ("did:ethr:0x1a4:0x12", "invalidDid"),
            ("did:ethr:0x1a4:0xB9C5714089478a327f09197987f16f9e5d936e8a", "notFound"),
            ("did:pkh:bip122:000000000019d6689c085ae165831e93:128Lkh3S7CkDTBZ8W7BbpsN3YYizJMp8p6", "invalidDid"),
            ("did:pkh:eip155:1:0x12", "invalidDid"),
            ("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBm", "invalidDid"),
            ("did:key:6MktvqCyLxTsXUH1tUZncNdVeEZ7hNh7npPRbUU27GTrYb8", "invalidDid"),
            ("did:ethr:0x1a4:0xb9c5714089478a327f09197987f16f9e5d936e8a?versionId=x", "invalidDid"),
        ];
        for (did, code) in table {
            let e = parse(did).expect_err(did);
            assert_eq!(e.code(), code, "{did}: {e}");
        }
        let long = format!("did:ethr:{}", "a".repeat(MAX_DID_BYTES));
        assert!(parse(&long).is_err_and(|e| e.to_string().contains("longer")));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(s in ".{0,200}") {
            let _ = parse(&s);
            let _ = parse(&format!("did:ethr:{s}"));
            let _ = parse(&format!("did:key:z{s}"));
        }
    }
}
