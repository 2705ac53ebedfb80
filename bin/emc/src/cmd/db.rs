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
    println!("ok");
    Ok(())
}
