//! The Sessions module's ABI (its events carry more fields than clippy's default).
#![allow(clippy::too_many_arguments)]

use alloy_sol_types::sol;

sol! {
    /// The ABI at `SESSIONS_ADDRESS`.
    #[sol(all_derives)]
    interface ISessions {
        struct Session {
            /// The account that pays; zero: no such session.
            address account;
            uint64 expires;
            /// 1 escrow, 2 socket.
            uint8 kind;
            /// Escrow sessions: the most all their calls may cost together, wei.
            uint256 limit;
            /// Socket sessions: the socket.
            uint256 socket;
            /// keccak256 of each app it may call; empty: any.
            bytes32[] apps;
            bool revoked;
        }

        event SessionOpened(address indexed sessionKey, address indexed account, bytes32 indexed nonceHash, uint64 expires, uint8 kind, uint256 limit, uint256 socket, bool contractWallet);
        event SessionRevoked(address indexed sessionKey, address indexed account);

        function open(string message, bytes signature) external returns (address sessionKey);
        function revoke(address sessionKey) external;
        function session(address sessionKey) external view returns (Session memory);
        function nonceUsed(address account, string nonce) external view returns (bool);
    }

    /// EIP-1271.
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}
