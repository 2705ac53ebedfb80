//! `eth_`, `net_` and `web3_` request handlers.

use crate::{internal, invalid_params, json, limit_exceeded, server_error, Ctx, RpcError};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_rpc_types_eth::{Filter, FilterBlockOption, TransactionRequest};
use emc_chain::{Chain, ChainError, SubmitError};
use emc_execution::{CallOutcome, CallRequest};
use emc_storage::LogFilter;
use emc_types::{Height, TxError};
use jsonrpsee::{types::ErrorObjectOwned, types::Params, RpcModule};
use serde_json::{json, Value};

type R = Result<Value, ErrorObjectOwned>;

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    method!(m, "eth_chainId", |c: &Ctx, _| Ok(json!(json::q(
        c.chain.chain_id()
    ))));
    method!(m, "net_version", |c: &Ctx, _| Ok(json!(c
        .chain
        .chain_id()
        .to_string())));
    method!(m, "net_listening", |_: &Ctx, _| Ok(json!(true)));
    method!(m, "net_peerCount", |c: &Ctx, _| Ok(json!(json::q(
        c.net.peers() as u64
    ))));
    method!(m, "web3_clientVersion", |_: &Ctx, _| Ok(json!(
        emc_types::CLIENT_VERSION
    )));
    method!(m, "web3_sha3", web3_sha3);
    method!(m, "eth_syncing", |_: &Ctx, _| Ok(json!(false)));
    method!(m, "eth_accounts", |_: &Ctx, _| Ok(json!([])));
    method!(m, "eth_blockNumber", |c: &Ctx, _| Ok(json!(json::q(
        c.chain.head().height.0
    ))));
    method!(m, "eth_gasPrice", |c: &Ctx, _| Ok(json!(json::q(
        c.chain.next_base_fee() + c.cfg.suggested_tip
    ))));
    method!(m, "eth_maxPriorityFeePerGas", |c: &Ctx, _| Ok(json!(
        json::q(c.cfg.suggested_tip)
    )));
    method!(m, "eth_getBalance", get_balance);
    method!(m, "eth_getTransactionCount", get_transaction_count);
    method!(m, "eth_getCode", get_code);
    method!(m, "eth_getStorageAt", get_storage_at);
    method!(m, "eth_call", eth_call);
    method!(m, "eth_estimateGas", estimate_gas);
    method!(m, "eth_feeHistory", fee_history);
    method!(m, "eth_sendRawTransaction", send_raw_transaction);
    method!(m, "eth_getTransactionByHash", get_transaction_by_hash);
    method!(m, "eth_getTransactionReceipt", get_transaction_receipt);
    method!(m, "eth_getBlockByNumber", get_block_by_number);
    method!(m, "eth_getBlockByHash", get_block_by_hash);
    method!(m, "eth_getLogs", get_logs);
    method!(m, "eth_getBlockReceipts", get_block_receipts);
    // By number and by hash alike: a block id names either.
    method!(m, "eth_getBlockTransactionCountByNumber", tx_count);
    method!(m, "eth_getBlockTransactionCountByHash", tx_count);
    method!(m, "eth_getTransactionByBlockNumberAndIndex", tx_at);
    method!(m, "eth_getTransactionByBlockHashAndIndex", tx_at);
    method!(m, "eth_createAccessList", create_access_list);
    Ok(())
}

// ---- block resolution ----------------------------------------------------------

pub(crate) fn resolve_block(
    chain: &Chain,
    id: Option<BlockId>,
) -> Result<Height, ErrorObjectOwned> {
    resolve(chain, id)
}

fn resolve(chain: &Chain, id: Option<BlockId>) -> Result<Height, ErrorObjectOwned> {
    let head = chain.head().height;
    match id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest)) {
        BlockId::Number(BlockNumberOrTag::Number(n)) if n > head.0 => Err(server_error(format!(
            "header not found: block {n} is beyond the head {head}"
        ))),
        BlockId::Number(BlockNumberOrTag::Number(n)) => Ok(Height(n)),
        BlockId::Number(BlockNumberOrTag::Earliest) => Ok(Height::GENESIS),
        // Blocks are final once committed (IBFT), so every tag but earliest is the head.
        BlockId::Number(_) => Ok(head),
        BlockId::Hash(h) => chain
            .store()
            .height_of(h.block_hash)
            .map_err(internal)?
            .ok_or_else(|| {
                server_error(format!(
                    "header not found: no block with hash {}",
                    h.block_hash
                ))
            }),
    }
}

pub(crate) fn chain_err(e: ChainError) -> ErrorObjectOwned {
    match e {
        ChainError::UnknownBlock(n) => server_error(format!("header not found: block {n}")),
        other => internal(other),
    }
}

// ---- state ---------------------------------------------------------------------

fn get_balance(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let addr: Address = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    let acct = c
        .chain
        .state_at(at)
        .map_err(chain_err)?
        .account(addr)
        .map_err(internal)?;
    Ok(json!(json::q(
        acct.map_or(U256::ZERO, |a| a.balance).to::<u128>()
    )))
}

fn get_transaction_count(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let addr: Address = s.next()?;
    let id: Option<BlockId> = s.optional_next()?;
    let pending = matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)));
    let at = resolve(&c.chain, id)?;
    let nonce = c
        .chain
        .state_at(at)
        .map_err(chain_err)?
        .account(addr)
        .map_err(internal)?
        .map_or(0, |a| a.nonce);
    let nonce = if pending {
        c.chain.pending_nonce(addr, nonce)
    } else {
        nonce
    };
    Ok(json!(json::q(nonce)))
}

fn get_code(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let addr: Address = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    let state = c.chain.state_at(at).map_err(chain_err)?;
    let code = match state.account(addr).map_err(internal)? {
        None => Bytes::new(),
        Some(a) => state
            .code(a.code_hash)
            .map_err(internal)?
            .unwrap_or_default(),
    };
    Ok(json!(code))
}

fn get_storage_at(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let addr: Address = s.next()?;
    let slot: U256 = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    let v = c
        .chain
        .state_at(at)
        .map_err(chain_err)?
        .storage(addr, slot)
        .map_err(internal)?;
    Ok(json!(B256::from(v.to_be_bytes::<32>())))
}

fn web3_sha3(_: &Ctx, p: Params<'_>) -> R {
    let data: Bytes = p.one()?;
    Ok(json!(alloy_primitives::keccak256(&data)))
}

// ---- calls -----------------------------------------------------------------------

fn call_request(req: TransactionRequest) -> Result<CallRequest, ErrorObjectOwned> {
    let data = req.input.input().cloned();
    if let (Some(a), Some(b)) = (&req.input.input, &req.input.data) {
        if a != b {
            return Err(invalid_params(
                "both \"input\" and \"data\" are set and differ",
            ));
        }
    }
    Ok(CallRequest {
        from: req.from,
        to: match req.to {
            Some(alloy_primitives::TxKind::Call(a)) => Some(a),
            _ => None,
        },
        gas: req.gas,
        gas_price: req.gas_price.or(req.max_fee_per_gas),
        value: req.value,
        data,
    })
}

fn revert_error(output: &Bytes) -> ErrorObjectOwned {
    use alloy_sol_types_shim::decode_revert;
    let msg = match decode_revert(output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_string(),
    };
    ErrorObjectOwned::owned(3, msg, Some(output.to_string()))
}

/// Decodes Solidity's `Error(string)` revert payload without another dependency.
mod alloy_sol_types_shim {
    pub fn decode_revert(out: &[u8]) -> Option<String> {
        if out.len() < 68 || out[..4] != [0x08, 0xc3, 0x79, 0xa0] {
            return None;
        }
        let len = usize::try_from(alloy_primitives::U256::from_be_slice(&out[36..68])).ok()?;
        let bytes = out.get(68..68usize.checked_add(len)?)?;
        String::from_utf8(bytes.to_vec()).ok()
    }
}

fn eth_call(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let req: TransactionRequest = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    match c.chain.call(at, &call_request(req)?) {
        Ok(CallOutcome::Success { output, .. }) => Ok(json!(output)),
        Ok(CallOutcome::Revert { output, .. }) => Err(revert_error(&output)),
        Ok(CallOutcome::Halt { reason, .. }) => {
            Err(server_error(format!("execution halted: {reason}")))
        }
        Err(ChainError::Exec(e)) => Err(server_error(e.to_string())),
        Err(e) => Err(chain_err(e)),
    }
}

fn estimate_gas(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let req: TransactionRequest = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    match c.chain.estimate_gas(at, &call_request(req)?) {
        Ok(Ok(gas)) => Ok(json!(json::q(gas))),
        Ok(Err(CallOutcome::Revert { output, .. })) => Err(revert_error(&output)),
        Ok(Err(CallOutcome::Halt { reason, .. })) => Err(server_error(format!(
            "gas required exceeds allowance or execution halted: {reason}"
        ))),
        Ok(Err(CallOutcome::Success { .. })) => {
            Err(internal("estimate failed on a successful call"))
        }
        Err(ChainError::Exec(e)) => Err(server_error(e.to_string())),
        Err(e) => Err(chain_err(e)),
    }
}

fn fee_history(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let count: alloy_primitives::U64 = s.next()?;
    let newest = resolve(&c.chain, s.next::<Option<BlockId>>()?)?;
    let percentiles: Option<Vec<f64>> = s.optional_next()?;
    if let Some(ps) = &percentiles {
        if ps.len() > 100
            || ps.windows(2).any(|w| w[0] > w[1])
            || ps.iter().any(|p| !(0.0..=100.0).contains(p))
        {
            return Err(invalid_params(
                "reward percentiles must be at most 100 values, ascending, within 0..=100",
            ));
        }
    }
    let count = count.to::<u64>().clamp(1, 1024).min(newest.0 + 1);
    let oldest = newest.0 + 1 - count;
    let (mut base, mut ratio, mut rewards) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for h in oldest..=newest.0 {
        let header = c
            .chain
            .store()
            .header(Height(h))
            .map_err(internal)?
            .ok_or_else(|| internal("missing header"))?;
        base.push(json::q(header.base_fee));
        ratio.push(header.gas_used as f64 / header.gas_limit as f64);
        if let Some(ps) = &percentiles {
            let receipts = c
                .chain
                .store()
                .receipts(Height(h))
                .map_err(internal)?
                .unwrap_or_default();
            rewards.push(block_rewards(&receipts, header.base_fee, ps));
        }
        last = Some(header);
    }
    if let Some(last) = last {
        base.push(json::q(emc_chain::next_base_fee(&last, c.chain.genesis())));
    }
    let mut out =
        json!({ "oldestBlock": json::q(oldest), "baseFeePerGas": base, "gasUsedRatio": ratio });
    if percentiles.is_some() {
        out["reward"] = json!(rewards);
    }
    Ok(out)
}

/// Tips paid at each percentile of gas used in a block, as geth computes them.
fn block_rewards(receipts: &[emc_types::Receipt], base_fee: u64, ps: &[f64]) -> Vec<String> {
    let mut tips: Vec<(u128, u64)> = receipts
        .iter()
        .map(|r| {
            (
                r.effective_gas_price.saturating_sub(base_fee as u128),
                r.gas_used,
            )
        })
        .collect();
    tips.sort();
    let total: u64 = tips.iter().map(|t| t.1).sum();
    ps.iter()
        .map(|p| {
            let threshold = (total as f64 * p / 100.0) as u64;
            let mut acc = 0u64;
            let tip = tips
                .iter()
                .find(|(_, g)| {
                    acc += g;
                    acc >= threshold
                })
                .or(tips.last())
                .map_or(0, |t| t.0);
            json::q(tip)
        })
        .collect()
}

// ---- transactions ----------------------------------------------------------------

fn send_raw_transaction(c: &Ctx, p: Params<'_>) -> R {
    let raw: Bytes = p.one().map_err(|_| {
        invalid_params("expected one parameter: the signed transaction as 0x-prefixed hex")
    })?;
    match c.chain.submit(&raw) {
        Ok(hash) => Ok(json!(hash)),
        Err(SubmitError::Decode(
            e @ (TxError::Malformed(_) | TxError::Oversized { .. } | TxError::UnsupportedType(_)),
        )) => Err(invalid_params(e.to_string())),
        Err(SubmitError::Decode(e)) => Err(server_error(e.to_string())),
        Err(SubmitError::Pool(e)) => Err(server_error(e.to_string())),
        Err(SubmitError::Chain(e)) => Err(chain_err(e)),
    }
}

fn get_transaction_by_hash(c: &Ctx, p: Params<'_>) -> R {
    let hash: B256 = p.one()?;
    if let Some(t) = c
        .chain
        .store()
        .transaction(hash)
        .map_err(internal)?
        .filter(|t| t.height <= c.chain.head().height)
    {
        let env = json::decode_stored(&t.raw)
            .ok_or_else(|| internal("stored transaction does not decode"))?;
        return Ok(json::tx_json(
            env,
            t.sender,
            Some((t.block_hash, t.height.0, t.index, t.base_fee)),
        ));
    }
    Ok(match c.chain.pool_tx(&hash) {
        Some(t) => json::tx_json(t.envelope, t.sender, None),
        None => Value::Null,
    })
}

fn get_transaction_receipt(c: &Ctx, p: Params<'_>) -> R {
    let hash: B256 = p.one()?;
    let Some((rc, header)) = c.chain.store().receipt(hash).map_err(internal)? else {
        return Ok(Value::Null);
    };
    // A block becomes visible only once the head names it, so every answer agrees
    // with "latest" (the store commits a block just before the head moves to it).
    if header.height > c.chain.head().height {
        return Ok(Value::Null);
    }
    let receipts = c
        .chain
        .store()
        .receipts(header.height)
        .map_err(internal)?
        .unwrap_or_default();
    let first_log: usize = receipts
        .iter()
        .take(rc.tx_index as usize)
        .map(|r| r.logs.len())
        .sum();
    Ok(json::receipt_json(&rc, &header, first_log as u32))
}

// ---- blocks and logs -------------------------------------------------------------

fn block_at(c: &Ctx, h: Height, full: bool) -> R {
    if h > c.chain.head().height {
        return Ok(Value::Null);
    }
    Ok(match c.chain.store().block(h).map_err(internal)? {
        Some((block, senders)) => json::block_json(&block, &senders, full),
        None => Value::Null,
    })
}

/// The height a block tag names (every tag but `earliest` and a number is the head:
/// blocks are final once committed).
fn height_of_tag(c: &Ctx, tag: BlockNumberOrTag) -> Height {
    match tag {
        BlockNumberOrTag::Number(n) => Height(n),
        BlockNumberOrTag::Earliest => Height::GENESIS,
        _ => c.chain.head().height,
    }
}

fn get_block_by_number(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let tag: BlockNumberOrTag = s.next()?;
    let full: Option<bool> = s.optional_next()?;
    block_at(c, height_of_tag(c, tag), full.unwrap_or(false))
}

/// The height of a block named by number, tag or hash; `None` for a hash not stored
/// or a number past the head (the methods answer null for those).
fn block_height(c: &Ctx, id: BlockId) -> Result<Option<Height>, ErrorObjectOwned> {
    let h = match id {
        BlockId::Number(tag) => height_of_tag(c, tag),
        BlockId::Hash(h) => match c.chain.store().height_of(h.block_hash).map_err(internal)? {
            Some(h) => h,
            None => return Ok(None),
        },
    };
    Ok((h <= c.chain.head().height).then_some(h))
}

/// The number of transactions in a block (null for a block not there).
fn tx_count(c: &Ctx, p: Params<'_>) -> R {
    let Some(h) = block_height(c, p.one()?)? else {
        return Ok(Value::Null);
    };
    Ok(match c.chain.store().block(h).map_err(internal)? {
        Some((block, _)) => json!(json::q(block.transactions.len() as u64)),
        None => Value::Null,
    })
}

/// The transaction at an index of a block, with its position (null if none).
fn tx_at(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let id: BlockId = s.next()?;
    let index: alloy_primitives::U64 = s.next()?;
    let Some(h) = block_height(c, id)? else {
        return Ok(Value::Null);
    };
    let Some((block, senders)) = c.chain.store().block(h).map_err(internal)? else {
        return Ok(Value::Null);
    };
    let i = usize::try_from(index.to::<u64>()).unwrap_or(usize::MAX);
    let (Some(raw), Some(sender)) = (block.transactions.get(i), senders.get(i)) else {
        return Ok(Value::Null);
    };
    let env =
        json::decode_stored(raw).ok_or_else(|| internal("stored transaction does not decode"))?;
    Ok(json::tx_json(
        env,
        *sender,
        Some((block.hash(), h.0, i as u32, block.header.base_fee)),
    ))
}

/// Every receipt of a block, in order, the block's system receipt (if any) last.
fn get_block_receipts(c: &Ctx, p: Params<'_>) -> R {
    let Some(h) = block_height(c, p.one()?)? else {
        return Ok(Value::Null);
    };
    let store = c.chain.store();
    let (Some(header), Some(receipts)) = (
        store.header(h).map_err(internal)?,
        store.receipts(h).map_err(internal)?,
    ) else {
        return Ok(Value::Null);
    };
    let mut first_log = 0u32;
    let out: Vec<Value> = receipts
        .iter()
        .map(|rc| {
            let v = json::receipt_json(rc, &header, first_log);
            first_log += rc.logs.len() as u32;
            v
        })
        .collect();
    Ok(Value::Array(out))
}

/// EIP-2930's `eth_createAccessList`: the addresses and slots the call touches
/// (except the sender, the recipient and the precompiles, warm anyway) and the gas it
/// uses with that list.
fn create_access_list(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let req: TransactionRequest = s.next()?;
    let at = resolve(&c.chain, s.optional_next()?)?;
    match c.chain.create_access_list(at, &call_request(req)?) {
        Ok(Ok((list, gas))) => Ok(json!({"accessList": list, "gasUsed": json::q(gas)})),
        Ok(Err(CallOutcome::Revert { output, .. })) => Err(revert_error(&output)),
        Ok(Err(CallOutcome::Halt { reason, .. })) => {
            Err(server_error(format!("execution halted: {reason}")))
        }
        Ok(Err(CallOutcome::Success { .. })) => Err(internal("access list of a successful call")),
        Err(ChainError::Exec(e)) => Err(server_error(e.to_string())),
        Err(e) => Err(chain_err(e)),
    }
}

fn get_block_by_hash(c: &Ctx, p: Params<'_>) -> R {
    let mut s = p.sequence();
    let hash: B256 = s.next()?;
    let full: Option<bool> = s.optional_next()?;
    match c.chain.store().height_of(hash).map_err(internal)? {
        Some(h) => block_at(c, h, full.unwrap_or(false)),
        None => Ok(Value::Null),
    }
}

pub(crate) fn log_filter(c: &Ctx, f: &Filter) -> Result<LogFilter, ErrorObjectOwned> {
    let head = c.chain.head().height.0;
    let (from, to) = match &f.block_option {
        FilterBlockOption::AtBlockHash(h) => {
            let n = c
                .chain
                .store()
                .height_of(*h)
                .map_err(internal)?
                .ok_or_else(|| server_error(format!("unknown block {h}")))?;
            (n.0, n.0)
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let num = |b: &Option<BlockNumberOrTag>| match b {
                Some(BlockNumberOrTag::Number(n)) => *n,
                Some(BlockNumberOrTag::Earliest) => 0,
                _ => head,
            };
            (num(from_block), num(to_block).min(head))
        }
    };
    if from > to && from <= head {
        return Err(invalid_params(format!(
            "fromBlock {from} is after toBlock {to}"
        )));
    }
    if to.saturating_sub(from) >= c.cfg.max_log_range {
        return Err(limit_exceeded(format!(
            "query covers more than {} blocks",
            c.cfg.max_log_range
        )));
    }
    Ok(LogFilter {
        from,
        to,
        addresses: f.address.iter().copied().collect(),
        topics: topics_of(f),
    })
}

/// A filter's topic positions: `None` matches anything; trailing wildcards dropped.
pub(crate) fn topics_of(f: &Filter) -> Vec<Option<Vec<B256>>> {
    let mut topics: Vec<Option<Vec<B256>>> = f
        .topics
        .iter()
        .map(|t| {
            if t.is_empty() {
                None
            } else {
                Some(t.iter().copied().collect())
            }
        })
        .collect();
    while topics.last().is_some_and(|t| t.is_none()) {
        topics.pop();
    }
    topics
}

fn get_logs(c: &Ctx, p: Params<'_>) -> R {
    let f: Filter = p.one()?;
    let lf = log_filter(c, &f)?;
    if lf.from > lf.to {
        return Ok(json!([]));
    }
    let logs = c
        .chain
        .store()
        .logs(&lf, c.cfg.max_logs)
        .map_err(internal)?
        .ok_or_else(|| {
            limit_exceeded(format!(
                "query returns more than {} logs; narrow the range",
                c.cfg.max_logs
            ))
        })?;
    Ok(Value::Array(
        logs.iter()
            .map(|(log, h, bh, ti, th, li)| json::log_json(log, *h, *bh, *ti, *th, *li))
            .collect(),
    ))
}
