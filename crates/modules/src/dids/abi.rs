//! The DID registry's ABI: ERC-1056's `EthereumDIDRegistry`, function for function and
//! event for event, so `ethr-did-resolver`, `ethr-did` and any ERC-1056 tool use
//! `DIDS_ADDRESS` as they use the registry deployed on Ethereum.

use alloy_sol_types::sol;

sol! {
    /// The ABI at `DIDS_ADDRESS` (ERC-1056).
    #[sol(all_derives)]
    interface IEthereumDIDRegistry {
        event DIDOwnerChanged(address indexed identity, address owner, uint previousChange);
        event DIDDelegateChanged(
            address indexed identity,
            bytes32 delegateType,
            address delegate,
            uint validTo,
            uint previousChange
        );
        event DIDAttributeChanged(
            address indexed identity,
            bytes32 name,
            bytes value,
            uint validTo,
            uint previousChange
        );

        function owners(address identity) external view returns (address);
        /// By `keccak256(abi.encode(delegateType))`, as the registry keys its storage.
        function delegates(address identity, bytes32 delegateTypeHash, address delegate) external view returns (uint);
        function changed(address identity) external view returns (uint);
        function nonce(address signer) external view returns (uint);
        function identityOwner(address identity) external view returns (address);
        function validDelegate(address identity, bytes32 delegateType, address delegate) external view returns (bool);

        function changeOwner(address identity, address newOwner) external;
        function changeOwnerSigned(address identity, uint8 sigV, bytes32 sigR, bytes32 sigS, address newOwner) external;
        function addDelegate(address identity, bytes32 delegateType, address delegate, uint validity) external;
        function addDelegateSigned(address identity, uint8 sigV, bytes32 sigR, bytes32 sigS, bytes32 delegateType, address delegate, uint validity) external;
        function revokeDelegate(address identity, bytes32 delegateType, address delegate) external;
        function revokeDelegateSigned(address identity, uint8 sigV, bytes32 sigR, bytes32 sigS, bytes32 delegateType, address delegate) external;
        function setAttribute(address identity, bytes32 name, bytes value, uint validity) external;
        function setAttributeSigned(address identity, uint8 sigV, bytes32 sigR, bytes32 sigS, bytes32 name, bytes value, uint validity) external;
        function revokeAttribute(address identity, bytes32 name, bytes value) external;
        function revokeAttributeSigned(address identity, uint8 sigV, bytes32 sigR, bytes32 sigS, bytes32 name, bytes value) external;
    }
}
