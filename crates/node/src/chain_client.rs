//! [`emc_client::ChainClient`] over the node's own, in-process chain: what the router,
//! compute and challenger roles use when they run inside a node (no JSON-RPC hop).

use alloy_primitives::{Address, Bytes, B256, U256};
use emc_chain::Chain;
use emc_client::{ChainClient, ClientError, Fees, Head, TxOutcome};
use std::sync::Arc;

/// The tip the node's own transactions offer, wei per gas.
const TIP: u128 = 1_000_000_000;

pub struct Local(pub Arc<Chain>);

fn unreachable(e: impl std::fmt::Display) -> ClientError {
    ClientError::Unreachable(e.to_string())
}

/// A call's output and gas, or its revert as the client error with the reason.
fn outcome(o: emc_execution::CallOutcome) -> Result<(Bytes, u64), ClientError> {
    use alloy_sol_types::SolError;
    match o {
        emc_execution::CallOutcome::Success { output, gas_used } => Ok((output, gas_used)),
        emc_execution::CallOutcome::Revert { output, .. } => Err(ClientError::Reverted(
            alloy_sol_types::Revert::abi_decode(&output)
                .map(|r| r.reason)
                .unwrap_or_else(|_| "execution reverted".into()),
        )),
        emc_execution::CallOutcome::Halt { reason, .. } => Err(ClientError::Reverted(reason)),
    }
}

#[async_trait::async_trait]
impl ChainClient for Local {
    async fn chain_id(&self) -> Result<u64, ClientError> {
        Ok(self.0.chain_id())
    }

    async fn head(&self) -> Result<Head, ClientError> {
        let h = self.0.head();
        Ok(Head {
            height: h.height.0,
            hash: h.hash(),
        })
    }

    async fn height(&self) -> Result<u64, ClientError> {
        Ok(self.0.head().height.0)
    }

    async fn call(&self, to: Address, data: Bytes) -> Result<Bytes, ClientError> {
        let req = emc_execution::CallRequest {
            from: None,
            to: Some(to),
            gas: Some(50_000_000),
            gas_price: None,
            value: None,
            data: Some(data),
        };
        let out = self
            .0
            .call(self.0.head().height, &req)
            .map_err(unreachable)?;
        outcome(out).map(|(output, _)| output)
    }

    async fn nonce(&self, account: Address) -> Result<u64, ClientError> {
        let head = self.0.head();
        let stored = self
            .0
            .state_at(head.height)
            .map_err(unreachable)?
            .account(account)
            .map_err(unreachable)?
            .unwrap_or_default()
            .nonce;
        Ok(self.0.pending_nonce(account, stored))
    }

    async fn fees(&self) -> Result<Fees, ClientError> {
        Ok(Fees {
            base_fee: self.0.next_base_fee() as u128,
            tip: TIP,
        })
    }

    async fn estimate_gas(
        &self,
        from: Address,
        to: Address,
        value: U256,
        data: Bytes,
    ) -> Result<u64, ClientError> {
        let req = emc_execution::CallRequest {
            from: Some(from),
            to: Some(to),
            gas: None,
            gas_price: None,
            value: Some(value),
            data: Some(data),
        };
        match self.0.estimate_gas(self.0.head().height, &req) {
            Ok(Ok(gas)) => Ok(gas),
            Ok(Err(failed)) => outcome(failed).map(|(_, gas)| gas),
            Err(e) => Err(unreachable(e)),
        }
    }

    async fn submit(&self, raw: Bytes) -> Result<B256, ClientError> {
        self.0
            .submit(&raw)
            .map_err(|e| ClientError::Refused(e.to_string()))
    }

    async fn receipt(&self, tx: B256) -> Result<Option<TxOutcome>, ClientError> {
        let r = self.0.store().receipt(tx).map_err(unreachable)?;
        Ok(r.map(|(r, header)| TxOutcome {
            block: header.height.0,
            success: r.success,
            gas_used: r.gas_used,
        }))
    }
}
