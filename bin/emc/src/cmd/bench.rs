//! `emc bench chain`: filled in below.
use anyhow::Result;

#[derive(clap::Subcommand)]
pub enum BenchCmd {}

pub fn run(c: BenchCmd) -> Result<()> {
    match c {}
}
