//! The Sockets module on revm with the chain's own table of modules: a socket bought
//! from an offer, moved with `safeTransferFrom` into a contract that accepts ERC-721
//! tokens, refused by one that does not, and moved there anyway by `transferFrom`
//! (which, as ERC-721 says, does not ask).

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolValue};
use common::{reason, Evm};
use emc_modules::kit::callout::asm;
use emc_modules::registry::register_call;
use emc_modules::sockets::{IERC721Receiver, ISockets};
use emc_modules::{MODULES, REGISTRY_ADDRESS, SOCKETS_ADDRESS};
use revm::context_interface::result::ExecutionResult;

mod common;

const CHAIN: u64 = 7;
const PRICE: u64 = 1_000;

struct Chain {
    evm: Evm,
}

impl Chain {
    fn new() -> Self {
        let mut evm = Evm::new(MODULES, CHAIN);
        for i in 1..=3 {
            evm.fund(Address::repeat_byte(i), U256::from(10u128.pow(20)));
        }
        Chain { evm }
    }

    fn deploy(&mut self, at: Address, code: Bytes) {
        self.evm.deploy(at, code)
    }

    fn send(&mut self, from: Address, to: Address, value: u64, data: Vec<u8>) -> ExecutionResult {
        self.evm.send(from, to, value, data)
    }

    fn sockets(&mut self, from: Address, value: u64, call: impl SolCall) -> Bytes {
        self.evm.ok(from, SOCKETS_ADDRESS, value, call.abi_encode())
    }

    /// Registers the test's node (serving "echo") for `provider`: its id.
    fn register(&mut self, provider: Address) -> B256 {
        let key = ed25519_consensus::SigningKey::from([3u8; 32]);
        let reg = register_call(CHAIN, provider, &key, &["echo"]);
        let r = self.send(provider, REGISTRY_ADDRESS, 0, reg.abi_encode());
        assert!(r.is_success(), "{r:?}");
        reg.nodeId
    }

    fn owner(&mut self, id: U256) -> Address {
        let c = ISockets::ownerOfCall { tokenId: id };
        let out = self.sockets(Address::repeat_byte(1), 0, c);
        Address::abi_decode(&out).expect("an address")
    }
}

#[test]
fn safe_transfer_into_a_contract_asks_it_and_honours_its_answer() {
    let mut c = Chain::new();
    let (provider, buyer) = (Address::repeat_byte(1), Address::repeat_byte(2));
    let node = c.register(provider);
    let offer = ISockets::offerCall {
        node,
        app: "echo".into(),
        appHash: B256::ZERO,
        unit: 0,
        pricePerUnit: U256::from(PRICE),
        minUnits: 1,
        maxUnits: 10,
        validFor: 3_600,
        capacity: 100,
        expires: u64::MAX / 2,
        renewalPricePerSecond: U256::ZERO,
    };
    let offer = U256::abi_decode(&c.sockets(provider, 0, offer)).expect("offer id");
    let buy = || ISockets::buyCall {
        offerId: offer,
        units: 2,
    };
    let first = U256::abi_decode(&c.sockets(buyer, 2 * PRICE, buy())).expect("token");
    let second = U256::abi_decode(&c.sockets(buyer, 2 * PRICE, buy())).expect("token");

    // A holder that answers onERC721Received's selector, as ERC721Holder does.
    let holder = Address::repeat_byte(0x40);
    let selector = IERC721Receiver::onERC721ReceivedCall::SELECTOR;
    c.deploy(
        holder,
        asm::Program::default().return_word(&selector).assemble(),
    );
    let safe = |to, id| ISockets::safeTransferFrom_1Call {
        from: buyer,
        to,
        tokenId: id,
    };
    c.sockets(buyer, 0, safe(holder, first));
    assert_eq!(c.owner(first), holder);

    // A contract without the hook refuses; nothing moves.
    let mut p = asm::Program::default();
    p.ops(&[asm::Op::PUSH0, asm::Op::PUSH0, asm::Op::REVERT]);
    let wall = Address::repeat_byte(0x41);
    c.deploy(wall, p.assemble());
    let r = c.send(buyer, SOCKETS_ADDRESS, 0, safe(wall, second).abi_encode());
    assert!(
        reason(&r).contains("does not accept ERC-721 tokens"),
        "{}",
        reason(&r)
    );
    assert_eq!(c.owner(second), buyer);
    // transferFrom does not ask.
    let plain = ISockets::transferFromCall {
        from: buyer,
        to: wall,
        tokenId: second,
    };
    c.sockets(buyer, 0, plain);
    assert_eq!(c.owner(second), wall);
}

/// A provider with a registered node and `n` sockets minted to each of `holders`.
fn with_holdings(c: &mut Chain, holders: &[(Address, u64)]) -> Vec<Vec<U256>> {
    let provider = Address::repeat_byte(1);
    let node = c.register(provider);
    holders
        .iter()
        .map(|&(h, n)| {
            (0..n)
                .map(|_| {
                    let mint = ISockets::mintCall {
                        to: h,
                        node,
                        app: "echo".into(),
                        appHash: B256::ZERO,
                        unit: 0,
                        pricePerUnit: U256::from(PRICE),
                        validFor: 3_600,
                        renewalPricePerSecond: U256::ZERO,
                    };
                    U256::abi_decode(&c.sockets(provider, 0, mint)).expect("token")
                })
                .collect()
        })
        .collect()
}

/// Gas of `transferFrom` of the `pick`th socket of a holder of `from_n` to a holder
/// of `to_n`, on a fresh chain.
fn transfer_gas(from_n: u64, pick: usize, to_n: u64) -> u64 {
    let mut c = Chain::new();
    let (a, b) = (Address::repeat_byte(0x51), Address::repeat_byte(0x52));
    c.evm.fund(a, U256::from(10u128.pow(20)));
    let ids = with_holdings(&mut c, &[(a, from_n), (b, to_n)]);
    let t = ISockets::transferFromCall {
        from: a,
        to: b,
        tokenId: ids[0][pick],
    };
    let r = c.send(a, SOCKETS_ADDRESS, 0, t.abi_encode());
    assert!(r.is_success(), "{r:?}");
    r.tx_gas_used()
}

/// What a transfer costs by what its two sides hold (the figures in PERFORMANCE.md):
/// the same for any token of a holder of two to seven, whose list fits the word that
/// carries its count; one more cold read past that; EIP-3529's refund when the
/// holder's last token leaves (its list's word clears); and the same for a recipient
/// of up to six as for one of one.
#[test]
fn a_transfer_costs_the_same_for_any_token_of_a_small_holder() {
    let mut rows = vec![];
    for (from_n, pick, to_n) in [
        (1, 0, 0),
        (2, 1, 0),
        (2, 0, 0),
        (7, 0, 0),
        (7, 3, 0),
        (9, 0, 0),
        (17, 2, 0),
        (17, 9, 0),
        (1, 0, 1),
        (1, 0, 6),
        (1, 0, 7),
        (1, 0, 8),
    ] {
        rows.push(((from_n, pick, to_n), transfer_gas(from_n, pick, to_n)));
    }
    for ((f, p, t), g) in &rows {
        println!("GAS from a holder of {f} (its #{p}) to a holder of {t}: {g}");
    }
    let gas = |k| rows.iter().find(|(r, _)| *r == k).expect("measured").1;
    let base = gas((2, 1, 0));
    for k in [(2, 0, 0), (7, 0, 0), (7, 3, 0)] {
        assert_eq!(gas(k), base, "{k:?}");
    }
    assert_eq!(gas((1, 0, 0)), base - emc_modules::GAS_SSTORE_CLEARS as u64);
    assert_eq!(gas((9, 0, 0)), base + emc_modules::GAS_COLD_SLOAD);
    assert_eq!(gas((1, 0, 6)), gas((1, 0, 1)));
}

/// The Market reads the Sockets module through a module-to-module call, in a
/// transaction that touched only the Market: the callee's account is loaded on its
/// first access (it once panicked the node).
#[test]
fn the_market_reads_a_socket_through_a_nested_module_call() {
    let mut c = Chain::new();
    let holder = Address::repeat_byte(0x51);
    c.evm.fund(holder, U256::from(10u128.pow(20)));
    let ids = with_holdings(&mut c, &[(holder, 1)]);
    let list = emc_modules::market::IMarket::listCall {
        tokenId: ids[0][0],
        price: U256::from(5),
        ends: u64::MAX / 4,
    };
    let r = c.send(holder, emc_modules::MARKET_ADDRESS, 0, list.abi_encode());
    assert!(reason(&r).contains("approve the Market"), "{}", reason(&r));
}
