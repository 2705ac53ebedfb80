//! The Pools module's ABI: what Solidity callers, ethers and `cast` see at
//! `POOLS_ADDRESS`.

use alloy_sol_types::sol;

sol! {
    /// The ABI at `POOLS_ADDRESS`.
    #[sol(all_derives)]
    interface IPools {
        /// The Tasks module's grant (`ITasks.Grant`), which a job's client signs as
        /// for any call: an API key or a one-request signature.
        struct Grant {
            uint64 chainId;
            address router;
            uint64 nonce;
            uint64 expires;
            uint256 limit;
            bytes32 request;
        }

        /// What one member spent on one job: CPU- and GPU-milliseconds.
        struct Usage {
            bytes32 nodeId;
            uint64 cpuMs;
            uint64 gpuMs;
        }

        /// A member's own report, signed by its node key over `usage_message`.
        struct Report {
            Usage usage;
            bytes signature;
        }

        /// A job's settlement: the client's grant, each member's signed report, and
        /// what Ray accounted for every member, signed by the job's head member over
        /// `accounting_message`.
        struct JobReceipt {
            Grant grant;
            bytes grantSignature;
            /// The socket whose credits pay (its holder's socket key signed the
            /// grant); zero: the client's Tasks escrow (an API key).
            uint256 socket;
            uint64 poolId;
            bytes32 jobId;
            bytes32 requestHash;
            Report[] reports;
            Usage[] accounted;
            bytes headSignature;
        }

        struct Pool {
            address operator;
            string name;
            uint16 commissionBps;
            /// Wei per CPU-second and per GPU-second.
            uint256 cpuPrice;
            uint256 gpuPrice;
            /// The member whose machine runs Ray's head (zero: none yet).
            bytes32 head;
            string[] apps;
            string[] frameworks;
            uint64 members;
            uint64 createdAt;
        }

        struct Member {
            bytes32 nodeId;
            address owner;
            uint32 cpus;
            uint32 gpus;
            uint64 memoryMb;
            /// Its E, the proof-of-computing module's last score.
            uint64 score;
            bool leaving;
            /// Jobs opened while it was a member and not yet settled or expired.
            uint64 running;
        }

        struct Job {
            /// 0 none, 1 running, 2 settled, 3 expired.
            uint8 state;
            address router;
            bytes32 head;
            uint256 maxCost;
            uint64 deadline;
            bytes32[] members;
        }

        event PoolCreated(uint64 indexed poolId, address indexed operator, string name, uint16 commissionBps);
        event TermsSet(uint64 indexed poolId, uint16 commissionBps, uint256 cpuPrice, uint256 gpuPrice);
        event AppsSet(uint64 indexed poolId, string[] apps, string[] frameworks);
        event Joined(uint64 indexed poolId, bytes32 indexed nodeId, uint32 cpus, uint32 gpus, uint64 memoryMb);
        event Leaving(uint64 indexed poolId, bytes32 indexed nodeId, uint64 running);
        event Left(uint64 indexed poolId, bytes32 indexed nodeId);
        event HeadSet(uint64 indexed poolId, bytes32 indexed nodeId);
        event JobOpened(uint64 indexed poolId, bytes32 indexed jobId, address router, uint256 maxCost, uint64 deadline);
        event JobSettled(uint64 indexed poolId, bytes32 indexed jobId, address indexed account, uint256 cost, uint256 routerFee, uint256 commission);
        event MemberPaid(bytes32 indexed jobId, bytes32 indexed nodeId, address owner, uint64 cpuMs, uint64 gpuMs, uint256 amount);
        event MeteringRefused(bytes32 indexed jobId, bytes32 indexed nodeId, string reason);
        event JobExpired(uint64 indexed poolId, bytes32 indexed jobId);

        /// By an account with router or compute stake: a pool it operates.
        function createPool(string name, uint16 commissionBps, uint256 cpuPrice, uint256 gpuPrice, string[] apps, string[] frameworks) external returns (uint64 poolId);
        function setTerms(uint64 poolId, uint16 commissionBps, uint256 cpuPrice, uint256 gpuPrice) external;
        function setApps(uint64 poolId, string[] apps, string[] frameworks) external;
        /// By the node's owner, with the node key's signature over `join_message`.
        function join(uint64 poolId, bytes32 nodeId, uint32 cpus, uint32 gpus, uint64 memoryMb, bytes nodeSignature) external;
        /// By the node's owner: leaves now, or when its running jobs end.
        function leave(bytes32 nodeId) external;
        /// By the operator: the member that runs Ray's head.
        function setHead(uint64 poolId, bytes32 nodeId) external;
        /// By a staked router, when it submits a job: the job runs on the pool's
        /// members of now, and must settle before `deadline` (unix seconds).
        function openJob(uint64 poolId, bytes32 jobId, uint256 maxCost, uint64 deadline) external;
        /// By the job's router.
        function settleJob(JobReceipt receipt) external returns (uint256 cost);
        /// By anyone, once the job's deadline has passed unsettled.
        function expireJob(uint64 poolId, bytes32 jobId) external;

        function pool(uint64 poolId) external view returns (Pool memory);
        function members(uint64 poolId) external view returns (Member[] memory);
        function poolOf(bytes32 nodeId) external view returns (uint64);
        function job(uint64 poolId, bytes32 jobId) external view returns (Job memory);
        function poolCount() external view returns (uint64);
    }
}
