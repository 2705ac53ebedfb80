//! Settlement: served calls' receipts, batched into `ITasks.settle` transactions (calls
//! paid from escrow) and `ISockets.settle` transactions (calls paid from a socket's
//! credits) from the router's account.

use crate::ledger::{Ledger, Payer, Pending};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use emc_client::{ChainClient, ChainClientExt, ClientError};
use emc_modules::sockets::ISockets;
use emc_modules::tasks::ITasks;
use emc_modules::{SOCKETS_ADDRESS, TASKS_ADDRESS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often receipts are batched into a settlement.
const EVERY: Duration = Duration::from_secs(1);
/// Receipts per settlement transaction (the module's most), and the gas each may use
/// (about 30,000 is measured; see the Tasks module's tests).
const BATCH: usize = emc_modules::tasks::MAX_RECEIPTS;
const GAS_PER_RECEIPT: u64 = 40_000;

/// Batches receipts into `ITasks.settle` and `ISockets.settle` transactions from the
/// router's account and drops their holds once they are in a block. Each batch is
/// first run through its module's `check` at the head: receipts the chain would refuse are dropped (with
/// their reason in the log) rather than sent, so the router never pays gas for a
/// settlement the chain must reject. A batch not in a block within a minute is sent
/// again: receipts already settled are refused on chain, so none pays twice.
pub async fn run(
    chain: Arc<dyn ChainClient>,
    ledger: Arc<Ledger>,
    account: alloy_signer_local::PrivateKeySigner,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let (sockets, escrow): (Vec<Pending>, Vec<Pending>) = ledger
            .take_batch(BATCH)
            .into_iter()
            .partition(|p| matches!(p.payer, Payer::Socket(_)));
        for batch in [escrow, sockets] {
            if !batch.is_empty() {
                settle_batch(&*chain, &ledger, &account, batch, &mut stopped).await;
            }
        }
    }
}

/// Where a batch settles: the Tasks module for escrow, the Sockets module for sockets.
fn module_of(batch: &[Pending]) -> Address {
    match batch.first().map(|p| p.payer) {
        Some(Payer::Socket(_)) => SOCKETS_ADDRESS,
        _ => TASKS_ADDRESS,
    }
}

fn socket_ids(batch: &[Pending]) -> Vec<U256> {
    batch
        .iter()
        .map(|p| match p.payer {
            Payer::Socket(id) => id,
            Payer::Account(_) => U256::ZERO,
        })
        .collect()
}

/// The settlement transaction's calldata for a batch.
fn settle_call(batch: &[Pending]) -> Bytes {
    let receipts = batch.iter().map(|p| p.receipt.clone());
    if module_of(batch) == SOCKETS_ADDRESS {
        ISockets::settleCall {
            sockets: socket_ids(batch),
            receipts: receipts.map(Into::into).collect(),
        }
        .abi_encode()
        .into()
    } else {
        ITasks::settleCall {
            receipts: receipts.collect(),
        }
        .abi_encode()
        .into()
    }
}

/// Checks, sends and waits for one batch (all of one module's), requeueing what did
/// not make it into a block.
async fn settle_batch(
    chain: &dyn ChainClient,
    ledger: &Ledger,
    account: &alloy_signer_local::PrivateKeySigner,
    batch: Vec<Pending>,
    stopped: &mut watch::Receiver<bool>,
) {
    let batch = match settleable(chain, account.address(), batch).await {
        Ok((good, refused)) => {
            // Receipts that can never settle hold the client's escrow no longer.
            ledger.settled(&refused);
            good
        }
        Err((batch, e)) => {
            tracing::warn!(error = %e, receipts = batch.len(), "cannot check receipts; later");
            ledger.requeue(batch);
            return;
        }
    };
    if batch.is_empty() {
        return;
    }
    let gas = 300_000 + GAS_PER_RECEIPT * batch.len() as u64;
    let sent = {
        let _one = crate::chain::SENDING.lock().await;
        chain
            .send(
                account,
                module_of(&batch),
                U256::ZERO,
                settle_call(&batch),
                Some(gas),
            )
            .await
    };
    let tx = match sent {
        Ok(tx) => tx,
        Err(e) => {
            tracing::warn!(error = %e, receipts = batch.len(), "settlement not submitted");
            ledger.requeue(batch);
            return;
        }
    };
    tracing::info!(%tx, receipts = batch.len(), "settlement submitted");
    let included = wait_included(chain, tx, Duration::from_secs(60), stopped).await;
    if included {
        ledger.settled(&batch);
    } else {
        tracing::warn!(%tx, "settlement not in a block in time; sending again");
        ledger.requeue(batch);
    }
}

/// Splits a batch into the receipts the chain would settle now and those it would
/// refuse (each logged with the chain's reason); gives the batch back if the check
/// itself cannot run.
#[allow(clippy::type_complexity)]
async fn settleable(
    chain: &dyn ChainClient,
    router: Address,
    batch: Vec<Pending>,
) -> Result<(Vec<Pending>, Vec<Pending>), (Vec<Pending>, ClientError)> {
    let receipts = batch.iter().map(|p| p.receipt.clone());
    let reasons = if module_of(&batch) == SOCKETS_ADDRESS {
        let check = ISockets::checkCall {
            router,
            sockets: socket_ids(&batch),
            receipts: receipts.map(Into::into).collect(),
        };
        chain.view(SOCKETS_ADDRESS, check).await
    } else {
        let check = ITasks::checkCall {
            router,
            receipts: receipts.collect(),
        };
        chain.view(TASKS_ADDRESS, check).await
    };
    let reasons = match reasons {
        Ok(r) if r.len() == batch.len() => r,
        Ok(r) => {
            let why = format!("{} reasons for {} receipts", r.len(), batch.len());
            return Err((batch, ClientError::Decode(why)));
        }
        Err(e) => return Err((batch, e)),
    };
    let (mut good, mut refused) = (Vec::new(), Vec::new());
    for (p, why) in batch.into_iter().zip(reasons) {
        if why.is_empty() {
            good.push(p);
        } else {
            tracing::warn!(call = %p.receipt.callId, payer = %p.payer, reason = %why, "receipt the chain would refuse; not sent");
            refused.push(p);
        }
    }
    Ok((good, refused))
}

async fn wait_included(
    chain: &dyn ChainClient,
    tx: B256,
    within: Duration,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if matches!(chain.receipt(tx).await, Ok(Some(_))) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopped.wait_for(|s| *s) => return false,
        }
    }
    false
}
