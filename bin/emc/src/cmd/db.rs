//! `emc db verify`: check a (stopped) node's database end to end.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum DbCmd {
    /// Walk every block and recompute the head's state root from the stored leaves.
    Verify {
        /// The node's data directory.
        #[arg(long, env = "EMC_DATADIR")]
        datadir: PathBuf,
    },
}

pub fn run(c: DbCmd) -> Result<()> {
    let DbCmd::Verify { datadir } = c;
    let path = datadir.join("chain.redb");
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let store = emc_storage::Store::open(&path).with_context(|| {
        format!(
            "opening {} (is a node still running on it?)",
            path.display()
        )
    })?;
    let r = store.verify()?;
    println!(
        "head: {}  blocks: {}  transactions: {}",
        r.head, r.blocks, r.transactions
    );
    println!("state root in header: {}", r.header_state_root);
    println!("recomputed from leaves: {}", r.recomputed_state_root);
    println!("stored tree root:       {}", r.tree_state_root);
    if !r.ok() {
        bail!("state roots disagree: the database is inconsistent");
    }
    let certified = verify_certificates(&store, r.head)?;
    println!(
        "commit certificates verified: {certified} of {} blocks",
        r.head.0
    );
    println!("ok");
    Ok(())
}

/// Checks every stored commit certificate against the validator set that sealed its
/// block (named by the parent's state), as a following node does; returns how many
/// blocks carry one.
fn verify_certificates(store: &emc_storage::Store, head: emc_types::Height) -> Result<u64> {
    use borsh::BorshDeserialize;
    use emc_consensus::{verify_certificate, CommitCertificate};
    let genesis = store.genesis_json()?.context("no genesis stored")?;
    let genesis = emc_types::Genesis::from_json(&genesis)?;
    let verifier = emc_consensus::Ed25519Crypto::verify_only();
    let mut certified = 0;
    for h in 1..=head.0 {
        let Some(bytes) = store.certificate(emc_types::Height(h))? else {
            continue;
        };
        let cert = CommitCertificate::try_from_slice(&bytes)
            .with_context(|| format!("certificate of block {h} does not decode"))?;
        let header = store
            .header(emc_types::Height(h))?
            .with_context(|| format!("block {h} missing"))?;
        let parent_state = store.state_at(emc_types::Height(h - 1))?;
        let set = emc_chain::consensus_set(&emc_chain::validator_set_in(&parent_state)?)?;
        verify_certificate(
            &verifier,
            genesis.chain_id,
            &set,
            header.height,
            header.hash(),
            &cert,
        )
        .with_context(|| format!("certificate of block {h}"))?;
        certified += 1;
    }
    Ok(certified)
}
