//! The chain-client seam: everything the compute economy asks of the chain.

use crate::tx::{self, Fees};
use crate::ClientError;
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::SolCall;
use std::time::{Duration, Instant};

/// The chain's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub hash: B256,
}

/// What became of an included transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    pub block: u64,
    pub success: bool,
    pub gas_used: u64,
}

/// What the compute economy asks of the chain. Object safe, so roles hold an
/// `Arc<dyn ChainClient>` and tests hand them whichever implementation they need.
#[async_trait::async_trait]
pub trait ChainClient: Send + Sync {
    async fn chain_id(&self) -> Result<u64, ClientError>;
    async fn head(&self) -> Result<Head, ClientError>;
    /// The head's height alone (an implementation may answer it cheaper than
    /// [`ChainClient::head`], which hashes the header).
    async fn height(&self) -> Result<u64, ClientError> {
        Ok(self.head().await?.height)
    }
    /// A read-only call at the head (`eth_call`); a revert is
    /// [`ClientError::Reverted`] with its reason.
    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ClientError>;
    /// The next nonce of `account`, counting its transactions in the pool.
    async fn nonce(&self, account: Address) -> Result<u64, ClientError>;
    /// The next block's base fee and a tip that gets a transaction in.
    async fn fees(&self) -> Result<Fees, ClientError>;
    async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
    ) -> Result<u64, ClientError>;
    /// Submits a signed transaction; its hash.
    async fn submit(&self, raw: Bytes) -> Result<B256, ClientError>;
    /// The outcome of an included transaction; `None` while it is not included.
    async fn receipt(&self, tx: B256) -> Result<Option<TxOutcome>, ClientError>;
}

/// Typed views and signed calls over any [`ChainClient`].
#[async_trait::async_trait]
pub trait ChainClientExt: ChainClient {
    /// A typed read-only call to a contract or system module.
    async fn view<C: SolCall + Send + Sync>(
        &self,
        to: Address,
        call: C,
    ) -> Result<C::Return, ClientError> {
        let out = self.call(to, call.abi_encode().into()).await?;
        C::abi_decode_returns(&out).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Signs a call to `to` from `signer`'s account with the one transaction builder
    /// and submits it; its hash. `gas`: a limit, or `None` to estimate it.
    async fn send(
        &self,
        signer: &alloy_signer_local::PrivateKeySigner,
        to: Address,
        value: U256,
        data: Bytes,
        gas: Option<u64>,
    ) -> Result<B256, ClientError> {
        let from = signer.address();
        let gas = match gas {
            Some(g) => g,
            None => self.estimate_gas(from, to, value, data.clone()).await?,
        };
        let raw = tx::Builder {
            chain_id: self.chain_id().await?,
            nonce: self.nonce(from).await?,
            fees: self.fees().await?,
            gas,
            to,
            value,
            data,
        }
        .sign(signer)?;
        self.submit(raw).await
    }

    /// Waits up to `timeout` for `tx` to be included.
    async fn wait(&self, tx: B256, timeout: Duration) -> Result<TxOutcome, ClientError> {
        let start = Instant::now();
        loop {
            if let Some(o) = self.receipt(tx).await? {
                return Ok(o);
            }
            if start.elapsed() > timeout {
                return Err(ClientError::NotIncluded(timeout));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl<T: ChainClient + ?Sized> ChainClientExt for T {}
