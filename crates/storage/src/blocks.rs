//! Blocks, receipts and their indexes: written with the state in one transaction,
//! read by height, hash, transaction hash or log filter.

use crate::{
    corrupt, decode_u64, state::PreparedState, Result, StorageError, Store, BODIES, CERTIFICATES,
    GENESIS_KEY, HASH_TO_HEIGHT, HEADERS, HEAD_KEY, LOG_INDEX, META, RECEIPTS, SENDERS, TX_INDEX,
};
use alloy_primitives::{Address, Bytes, B256};
use borsh::BorshDeserialize;
use emc_types::{Block, Header, Height, Log, Receipt};
use redb::ReadableDatabase;

/// A transaction as stored: its bytes, its recovered sender, and where it landed.
#[derive(Clone, Debug)]
pub struct StoredTx {
    pub raw: Bytes,
    pub sender: Address,
    pub height: Height,
    pub block_hash: B256,
    pub index: u32,
    pub base_fee: u64,
}

/// `eth_getLogs` filter, resolved to heights. An empty address list matches any
/// address; each topic position is `None` (any) or a list of alternatives.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub from: u64,
    pub to: u64,
    pub addresses: Vec<Address>,
    pub topics: Vec<Option<Vec<B256>>>,
}

impl LogFilter {
    pub fn matches(&self, log: &Log) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        self.topics.iter().enumerate().all(|(i, want)| match want {
            None => true,
            Some(alts) => log.topics.get(i).is_some_and(|t| alts.contains(t)),
        })
    }
}

fn log_key(address: Address, height: u64, seq: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..20].copy_from_slice(address.as_slice());
    k[20..28].copy_from_slice(&height.to_be_bytes());
    k[28..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn de<T: BorshDeserialize>(what: &str, b: &[u8]) -> Result<T> {
    T::try_from_slice(b).map_err(|e| corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Writes `block` with everything it implies and moves the head to it, atomically.
    /// The block must extend the current head (or be genesis on an empty store).
    pub fn commit_block(
        &self,
        block: &Block,
        senders: &[Address],
        receipts: &[Receipt],
        state: &PreparedState,
        genesis_json: Option<&str>,
        certificate: Option<&[u8]>,
    ) -> Result<()> {
        let height = block.header.height.0;
        let expected = self.head()?.map_or(0, |h| h.0 + 1);
        if height != expected || state.version != height {
            return Err(StorageError::OutOfOrder {
                head: expected.wrapping_sub(1),
                got: height,
            });
        }
        let hash = block.hash();
        let w = self.db().begin_write()?;
        {
            let header = borsh::to_vec(&block.header).map_err(corrupt)?;
            w.open_table(HEADERS)?.insert(height, &header[..])?;
            let body = borsh::to_vec(&emc_types::block::BlockBody {
                transactions: block.transactions.clone(),
                parent_certificate: block.parent_certificate.clone(),
            })
            .map_err(corrupt)?;
            w.open_table(BODIES)?.insert(height, &body[..])?;
            let s = borsh::to_vec(senders).map_err(corrupt)?;
            w.open_table(SENDERS)?.insert(height, &s[..])?;
            let r = borsh::to_vec(receipts).map_err(corrupt)?;
            w.open_table(RECEIPTS)?.insert(height, &r[..])?;
            w.open_table(HASH_TO_HEIGHT)?.insert(&hash.0, height)?;
            let mut txi = w.open_table(TX_INDEX)?;
            let mut logi = w.open_table(LOG_INDEX)?;
            let mut seq = 0u32;
            for (i, rc) in receipts.iter().enumerate() {
                txi.insert(&rc.tx_hash.0, (height, i as u32))?;
                for log in &rc.logs {
                    logi.insert(&log_key(log.address, height, seq)[..], ())?;
                    seq += 1;
                }
            }
            crate::topics::index(&w, height, receipts)?;
            Self::write_state(&w, state)?;
            let mut meta = w.open_table(META)?;
            meta.insert(HEAD_KEY, &height.to_be_bytes()[..])?;
            if let Some(g) = genesis_json {
                meta.insert(GENESIS_KEY, g.as_bytes())?;
            }
            if let Some(c) = certificate {
                w.open_table(CERTIFICATES)?.insert(height, c)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// The commit certificate stored with block `height`, if it was sealed by IBFT.
    pub fn certificate(&self, height: Height) -> Result<Option<Vec<u8>>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(CERTIFICATES)?;
        Ok(t.get(height.0)?.map(|v| v.value().to_vec()))
    }

    pub fn header(&self, height: Height) -> Result<Option<Header>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(HEADERS)?;
        t.get(height.0)?
            .map(|v| de("header", v.value()))
            .transpose()
    }

    pub fn height_of(&self, hash: B256) -> Result<Option<Height>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(HASH_TO_HEIGHT)?;
        Ok(t.get(&hash.0)?.map(|v| Height(v.value())))
    }

    pub fn block(&self, height: Height) -> Result<Option<(Block, Vec<Address>)>> {
        let r = self.db().begin_read()?;
        let Some(header) = r
            .open_table(HEADERS)?
            .get(height.0)?
            .map(|v| de::<Header>("header", v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let body = r.open_table(BODIES)?;
        let body = body
            .get(height.0)?
            .ok_or(StorageError::MissingBlock(height.0))?;
        let senders = r.open_table(SENDERS)?;
        let senders = senders
            .get(height.0)?
            .ok_or(StorageError::MissingBlock(height.0))?;
        let body: emc_types::block::BlockBody = de("body", body.value())?;
        Ok(Some((
            Block {
                header,
                transactions: body.transactions,
                parent_certificate: body.parent_certificate,
            },
            de("senders", senders.value())?,
        )))
    }

    pub fn receipts(&self, height: Height) -> Result<Option<Vec<Receipt>>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(RECEIPTS)?;
        t.get(height.0)?
            .map(|v| de("receipts", v.value()))
            .transpose()
    }

    /// Where a transaction landed: (height, index in block).
    pub fn tx_location(&self, hash: B256) -> Result<Option<(Height, u32)>> {
        let r = self.db().begin_read()?;
        let t = r.open_table(TX_INDEX)?;
        Ok(t.get(&hash.0)?.map(|v| {
            let (h, i) = v.value();
            (Height(h), i)
        }))
    }

    pub fn transaction(&self, hash: B256) -> Result<Option<StoredTx>> {
        let Some((height, index)) = self.tx_location(hash)? else {
            return Ok(None);
        };
        let (block, senders) = self
            .block(height)?
            .ok_or(StorageError::MissingBlock(height.0))?;
        let i = index as usize;
        // A block's system receipt is indexed after its transactions: no transaction.
        if i == block.transactions.len() {
            return Ok(None);
        }
        let (raw, sender) = block
            .transactions
            .get(i)
            .zip(senders.get(i))
            .ok_or_else(|| corrupt(format!("tx index points past block {height}")))?;
        Ok(Some(StoredTx {
            raw: raw.clone(),
            sender: *sender,
            height,
            block_hash: block.hash(),
            index,
            base_fee: block.header.base_fee,
        }))
    }

    pub fn receipt(&self, hash: B256) -> Result<Option<(Receipt, Header)>> {
        let Some((height, index)) = self.tx_location(hash)? else {
            return Ok(None);
        };
        let header = self
            .header(height)?
            .ok_or(StorageError::MissingBlock(height.0))?;
        let receipts = self
            .receipts(height)?
            .ok_or(StorageError::MissingBlock(height.0))?;
        let rc = receipts
            .into_iter()
            .nth(index as usize)
            .ok_or_else(|| corrupt(format!("tx index points past receipts of {height}")))?;
        Ok(Some((rc, header)))
    }

    /// Logs matching `filter`, with (height, block hash, tx index, tx hash, log index in
    /// block). Stops with `None` once more than `limit` would be returned.
    #[allow(clippy::type_complexity)]
    pub fn logs(
        &self,
        filter: &LogFilter,
        limit: usize,
    ) -> Result<Option<Vec<(Log, u64, B256, u32, B256, u32)>>> {
        let r = self.db().begin_read()?;
        let headers = r.open_table(HEADERS)?;
        let receipts = r.open_table(RECEIPTS)?;
        // Candidate heights: from the address index when addresses are given, else every
        // height whose bloom admits the filter.
        let heights: Vec<u64> = if filter.addresses.is_empty() {
            (filter.from..=filter.to).collect()
        } else {
            let idx = r.open_table(LOG_INDEX)?;
            let mut hs = std::collections::BTreeSet::new();
            for a in &filter.addresses {
                let lo = log_key(*a, filter.from, 0);
                let hi = log_key(*a, filter.to, u32::MAX);
                for entry in idx.range(&lo[..]..=&hi[..])? {
                    let (k, _) = entry?;
                    hs.insert(decode_u64(&k.value()[20..28])?);
                }
            }
            hs.into_iter().collect()
        };
        let mut out = Vec::new();
        for h in heights {
            let Some(hv) = headers.get(h)? else { continue };
            let header: Header = de("header", hv.value())?;
            if !bloom_admits(&header, filter) {
                continue;
            }
            let Some(rv) = receipts.get(h)? else { continue };
            let rcs: Vec<Receipt> = de("receipts", rv.value())?;
            let block_hash = header.hash();
            let mut seq = 0u32;
            for rc in rcs {
                for log in rc.logs {
                    if filter.matches(&log) {
                        if out.len() >= limit {
                            return Ok(None);
                        }
                        out.push((log, h, block_hash, rc.tx_index, rc.tx_hash, seq));
                    }
                    seq += 1;
                }
            }
        }
        Ok(Some(out))
    }
}

fn bloom_admits(header: &Header, filter: &LogFilter) -> bool {
    use alloy_primitives::BloomInput;
    let bloom = &header.logs_bloom;
    let addr_ok = filter.addresses.is_empty()
        || filter
            .addresses
            .iter()
            .any(|a| bloom.contains_input(BloomInput::Raw(a.as_slice())));
    addr_ok
        && filter.topics.iter().all(|t| match t {
            None => true,
            Some(alts) => alts
                .iter()
                .any(|x| bloom.contains_input(BloomInput::Raw(x.as_slice()))),
        })
}
