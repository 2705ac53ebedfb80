//! Binary keccak Merkle root over an ordered list of leaves, used for the transactions
//! and receipts roots of a header.
//!
//! Leaves are hashed with a 0x00 prefix and inner nodes with 0x01 so a leaf can never
//! be passed off as an inner node; an odd node is promoted unchanged. The empty list's
//! root is keccak256 of the empty string.

use alloy_primitives::{keccak256, B256};

pub fn merkle_root<I, T>(leaves: I) -> B256
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut level: Vec<B256> = leaves
        .into_iter()
        .map(|leaf| {
            let mut buf = Vec::with_capacity(leaf.as_ref().len() + 1);
            buf.push(0u8);
            buf.extend_from_slice(leaf.as_ref());
            keccak256(&buf)
        })
        .collect();
    if level.is_empty() {
        return keccak256([]);
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => {
                    let mut buf = [0u8; 65];
                    buf[0] = 1;
                    buf[1..33].copy_from_slice(a.as_slice());
                    buf[33..].copy_from_slice(b.as_slice());
                    keccak256(buf)
                }
                [a] => *a,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_change_the_root() {
        let a = merkle_root([b"a".as_slice(), b"b", b"c"]);
        let b = merkle_root([b"b".as_slice(), b"a", b"c"]);
        let c = merkle_root([b"a".as_slice(), b"b", b"d"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, merkle_root([b"a".as_slice(), b"b", b"c"]));
    }

    #[test]
    fn single_leaf_is_not_its_own_hash_preimage() {
        let leaf = [7u8; 64];
        // An inner node over two leaves must not equal a leaf holding their concatenation.
        let l = merkle_root([&leaf[..32], &leaf[32..]]);
        assert_ne!(l, merkle_root([&leaf[..]]));
    }
}
