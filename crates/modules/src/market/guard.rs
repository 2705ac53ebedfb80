//! Price guards, from the genesis's market rules: a provider's price more than
//! `maxPriceMultiple` times the market's last clearing price is refused with a reason
//! (Akash's absurdly overpriced bids), and an order never pays above its own limit
//! (the clearing and the auctions check that where they pay).

use super::revert;
use super::storage::{market as mk, MARKETS, PRICE_MULTIPLE};
use crate::{Metered, ModuleError};
use alloy_primitives::{B256, U256};

/// The multiple when the genesis leaves it out.
pub const DEFAULT_MULTIPLE: u64 = 10;

/// Refuses a provider's `price` in `market` above the multiple of its last clearing
/// price (none yet: no bound).
pub fn provider_price(m: &mut Metered<'_>, market: B256, price: U256) -> Result<(), ModuleError> {
    let last: U256 = MARKETS.get(m, &market, mk::PRICE)?;
    if last.is_zero() {
        return Ok(());
    }
    let multiple = match PRICE_MULTIPLE.get(m)? {
        0 => DEFAULT_MULTIPLE,
        k => k,
    };
    let cap = last.saturating_mul(U256::from(multiple));
    if price > cap {
        return Err(revert(format!(
            "{price} wei a unit is more than {multiple} times the last clearing price {last} (at most {cap})"
        )));
    }
    Ok(())
}
