//! A real local chain for tests: anvil, plus our minimal ENS registry and offchain resolver
//! (`tests/contracts/`), driven over plain JSON-RPC.
//!
//! Use it from a test file with `#[path = "support/anvil.rs"] mod anvil;` (tests/support/mod.rs
//! belongs to the node's own harness). Transactions go out with `eth_sendTransaction` from anvil's
//! first, unlocked account, so the harness needs no signing code; anvil mines each one at once.
//!
//! ```ignore
//! let anvil = Anvil::start().await?;
//! let ens = Ens::deploy(&anvil, &["http://127.0.0.1:PORT/{sender}/{data}.json"], &[gateway_signer]).await?;
//! ens.use_offchain_resolver("bridge.test.eth").await?;   // wildcard for *.bridge.test.eth
//! // resolve through anvil.url() with ens.registry as the ENS registry
//! ```
#![allow(dead_code)] // each test file uses a different part of the harness

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, hex, keccak256};
use alloy_sol_types::{SolCall, SolValue, sol};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

sol! {
    // Debug and PartialEq on the generated types, so tests can print and compare decoded reverts.
    #![sol(all_derives)]

    /// The registry functions the harness and tests call (tests/contracts/ENSRegistry.sol).
    interface IENSRegistry {
        function owner(bytes32 node) external view returns (address);
        function resolver(bytes32 node) external view returns (address);
        function setSubnodeOwner(bytes32 node, bytes32 label, address owner) external returns (bytes32);
        function setResolver(bytes32 node, address resolver) external;
    }

    /// tests/contracts/OffchainResolver.sol, errors included so tests can decode reverts.
    interface IOffchainResolver {
        error OffchainLookup(address sender, string[] urls, bytes callData, bytes4 callbackFunction, bytes extraData);
        error SignatureExpired(uint64 validUntil, uint256 blockTimestamp);
        error InvalidSignature();
        error UnknownSigner(address recovered);
        error NotOwner();

        function resolve(bytes name, bytes data) external view returns (bytes);
        function resolveWithProof(bytes response, bytes extraData) external view returns (bytes);
        function setUrls(string[] urls) external;
        function setSigner(address signer, bool trusted) external;
        function getUrls() external view returns (string[]);
        function signers(address signer) external view returns (bool);
        function supportsInterface(bytes4 interfaceId) external view returns (bool);
    }

    /// The record calls a client wraps in `resolve(name, data)` (ENSIP-10).
    interface IRecords {
        function addr(bytes32 node) external view returns (address);
        function text(bytes32 node, string key) external view returns (string);
    }
}

/// `tests/contracts`, where the sources, build artifacts, resolve.js and node_modules live.
pub fn contracts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contracts")
}

/// The anvil binary that `scripts/install-contract-deps.sh` installs; `DM3_BRIDGE_ANVIL` overrides it.
pub fn anvil_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("DM3_BRIDGE_ANVIL") {
        Some(path) => PathBuf::from(path),
        None => {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => bail!("no anvil build for {other} in @foundry-rs/anvil"),
            };
            contracts_dir().join(format!("node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"))
        }
    };
    if !path.is_file() {
        bail!("anvil not found at {}: run scripts/install-contract-deps.sh", path.display());
    }
    Ok(path)
}

/// A JSON-RPC error as the node returned it; `data` carries revert data for `eth_call`.
#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

/// A cheap, cloneable JSON-RPC handle that sends as anvil's first account.
#[derive(Clone)]
pub struct Rpc {
    client: reqwest::Client,
    url: String,
    /// The unlocked account every transaction comes from; it deploys and so owns everything.
    pub from: Address,
}

impl Rpc {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One JSON-RPC request. Transport failures are `Err`; a JSON-RPC error is `Ok(Err(..))`.
    pub async fn request_raw(&self, method: &str, params: Value) -> Result<Result<Value, RpcError>> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let response: Value = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{method} to {}", self.url))?
            .json()
            .await
            .with_context(|| format!("{method}: the answer is not JSON"))?;
        if let Some(error) = response.get("error") {
            return Ok(Err(RpcError {
                code: error["code"].as_i64().unwrap_or_default(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
                data: error.get("data").cloned(),
            }));
        }
        response.get("result").cloned().map(Ok).ok_or_else(|| anyhow!("{method}: no result in {response}"))
    }

    /// One JSON-RPC request; a JSON-RPC error becomes an `Err` with its message.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value> {
        self.request_raw(method, params).await?.map_err(|e| {
            anyhow!("{method} failed: {} (code {}, data {})", e.message, e.code, e.data.unwrap_or_default())
        })
    }

    /// `eth_call` at the latest block. `Ok(Err(revert_data))` when the contract reverted, so
    /// tests can decode EIP-3668's OffchainLookup and the resolver's errors.
    pub async fn call(&self, to: Address, data: &[u8]) -> Result<Result<Vec<u8>, Vec<u8>>> {
        self.call_as(self.from, to, data).await
    }

    /// `call` from another account, e.g. to show that only the owner may configure a contract.
    pub async fn call_as(&self, from: Address, to: Address, data: &[u8]) -> Result<Result<Vec<u8>, Vec<u8>>> {
        let tx = json!({"from": from.to_string(), "to": to.to_string(), "data": hex::encode_prefixed(data)});
        match self.request_raw("eth_call", json!([tx, "latest"])).await? {
            Ok(result) => Ok(Ok(decode_hex(&result)?)),
            // anvil reports a revert as code 3 with the revert data as a hex string.
            Err(RpcError { data: Some(data @ Value::String(_)), .. }) => Ok(Err(decode_hex(&data)?)),
            Err(e) => bail!("eth_call failed without revert data: {} (code {})", e.message, e.code),
        }
    }

    /// `eth_call` that must succeed; decodes the return value of `C`.
    pub async fn view<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return> {
        let out = self
            .call(to, &call.abi_encode())
            .await?
            .map_err(|revert| anyhow!("{} reverted: {}", C::SIGNATURE, hex::encode_prefixed(revert)))?;
        C::abi_decode_returns(&out).with_context(|| format!("decoding the return of {}", C::SIGNATURE))
    }

    /// Sends a transaction and waits for its receipt; a reverted transaction is an error.
    /// `to = None` deploys `data` as init code. Returns the receipt.
    pub async fn send(&self, to: Option<Address>, data: &[u8]) -> Result<Value> {
        let mut tx = json!({"from": self.from.to_string(), "data": hex::encode_prefixed(data)});
        if let Some(to) = to {
            tx["to"] = json!(to.to_string());
        }
        // anvil estimates gas itself; a call that would revert already fails here, with the reason.
        let hash = self.request("eth_sendTransaction", json!([tx])).await?;
        // Automining makes the receipt available at once; the loop only covers a slow machine.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let receipt = self.request("eth_getTransactionReceipt", json!([hash])).await?;
            if !receipt.is_null() {
                if receipt["status"] != json!("0x1") {
                    bail!("transaction {hash} reverted: {receipt}");
                }
                return Ok(receipt);
            }
            if Instant::now() > deadline {
                bail!("no receipt for {hash} after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `call` to `to` and waits for it to be mined.
    pub async fn transact<C: SolCall>(&self, to: Address, call: &C) -> Result<Value> {
        self.send(Some(to), &call.abi_encode()).await.with_context(|| C::SIGNATURE.to_owned())
    }

    /// Deploys `tests/contracts/build/<contract>.json` with ABI-encoded constructor arguments
    /// (`SolValue::abi_encode_params` of the argument tuple; empty for none).
    pub async fn deploy(&self, contract: &str, constructor_args: &[u8]) -> Result<Address> {
        let path = contracts_dir().join(format!("build/{contract}.json"));
        let artifact: Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let mut code =
            decode_hex(&artifact["bytecode"]).with_context(|| format!("bytecode in {}", path.display()))?;
        code.extend_from_slice(constructor_args);
        let receipt = self.send(None, &code).await.with_context(|| format!("deploying {contract}"))?;
        let address = receipt["contractAddress"]
            .as_str()
            .ok_or_else(|| anyhow!("deploying {contract}: no contractAddress in {receipt}"))?;
        address.parse().with_context(|| format!("contract address {address}"))
    }

    /// The latest block's timestamp (what `block.timestamp` is for an `eth_call`, give or take a block).
    pub async fn block_timestamp(&self) -> Result<u64> {
        let block = self.request("eth_getBlockByNumber", json!(["latest", false])).await?;
        let ts = block["timestamp"].as_str().ok_or_else(|| anyhow!("no timestamp in {block}"))?;
        u64::from_str_radix(ts.trim_start_matches("0x"), 16).with_context(|| format!("timestamp {ts}"))
    }

    /// Moves chain time forward and mines a block, so expiry can be tested without waiting.
    pub async fn increase_time(&self, seconds: u64) -> Result<()> {
        self.request("evm_increaseTime", json!([seconds])).await?;
        self.request("evm_mine", json!([])).await?;
        Ok(())
    }
}

/// A running anvil on a free 127.0.0.1 port; killed when dropped.
pub struct Anvil {
    child: Child,
    rpc: Rpc,
}

impl Anvil {
    /// Starts anvil and waits until `eth_chainId` answers. Fails (never skips) when the binary
    /// is missing, telling the reader to run scripts/install-contract-deps.sh.
    pub async fn start() -> Result<Anvil> {
        let binary = anvil_binary()?;
        // The port is free when we look; another process may take it before anvil binds, so retry.
        let mut last_error = anyhow!("anvil did not start");
        for _ in 0..3 {
            match Self::start_once(&binary).await {
                Ok(anvil) => return Ok(anvil),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    async fn start_once(binary: &std::path::Path) -> Result<Anvil> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--silent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut anvil = Anvil { child, rpc: Rpc { client, url, from: Address::ZERO } };

        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = anvil.child.try_wait()? {
                // It exited, so its stderr pipe is closed and reading it cannot block.
                let mut stderr = String::new();
                if let Some(mut pipe) = anvil.child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).ok();
                }
                bail!("anvil exited with {status} on port {port}: {}", stderr.trim());
            }
            if let Ok(Ok(id)) = anvil.rpc.request_raw("eth_chainId", json!([])).await {
                if id != json!("0x7a69") {
                    bail!("anvil answers chain id {id}, 31337 (0x7a69) expected");
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("anvil on port {port} did not answer eth_chainId within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let accounts = anvil.rpc.request("eth_accounts", json!([])).await?;
        let first =
            accounts[0].as_str().ok_or_else(|| anyhow!("anvil has no unlocked account: {accounts}"))?;
        anvil.rpc.from = first.parse()?;
        Ok(anvil)
    }

    /// The JSON-RPC endpoint, e.g. `http://127.0.0.1:38211`.
    pub fn url(&self) -> &str {
        self.rpc.url()
    }

    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// anvil's chain id (always 31337 here).
    pub fn chain_id(&self) -> u64 {
        31337
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        // Best effort: the test is ending either way, and anvil holds nothing worth a clean stop.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The ENS registry and one OffchainResolver, both owned by the harness account.
#[derive(Clone)]
pub struct Ens {
    rpc: Rpc,
    pub registry: Address,
    pub resolver: Address,
}

impl Ens {
    /// Deploys ENSRegistry (root owned by the harness account) and an OffchainResolver with
    /// the given gateway URL templates (`…/{sender}/{data}.json`) and trusted signers.
    pub async fn deploy(anvil: &Anvil, urls: &[&str], signers: &[Address]) -> Result<Ens> {
        let rpc = anvil.rpc().clone();
        let registry = rpc.deploy("ENSRegistry", &[]).await?;
        let urls: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
        let args = (urls, signers.to_vec()).abi_encode_params();
        let resolver = rpc.deploy("OffchainResolver", &args).await?;
        Ok(Ens { rpc, registry, resolver })
    }

    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// `setSubnodeOwner(namehash(parent), keccak(label), owner)`; returns the new node.
    pub async fn set_subnode_owner(&self, parent: &str, label: &str, owner: Address) -> Result<B256> {
        let call =
            IENSRegistry::setSubnodeOwnerCall { node: namehash(parent), label: keccak256(label), owner };
        self.rpc.transact(self.registry, &call).await?;
        Ok(namehash(&join(label, parent)))
    }

    pub async fn set_resolver(&self, name: &str, resolver: Address) -> Result<()> {
        let call = IENSRegistry::setResolverCall { node: namehash(name), resolver };
        self.rpc.transact(self.registry, &call).await.map(drop)
    }

    pub async fn owner(&self, name: &str) -> Result<Address> {
        self.rpc.view(self.registry, &IENSRegistry::ownerCall { node: namehash(name) }).await
    }

    pub async fn resolver_of(&self, name: &str) -> Result<Address> {
        self.rpc.view(self.registry, &IENSRegistry::resolverCall { node: namehash(name) }).await
    }

    /// Gives the harness account `name` and every ancestor still unowned (eth, test.eth, ...).
    pub async fn claim(&self, name: &str) -> Result<()> {
        let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
        let mut parent = String::new();
        for label in labels.iter().rev() {
            let child = join(label, &parent);
            if self.owner(&child).await? != self.rpc.from {
                self.set_subnode_owner(&parent, label, self.rpc.from).await?;
            }
            parent = child;
        }
        Ok(())
    }

    /// Makes the OffchainResolver the resolver of `name`, claiming it first. Every name under
    /// it without its own resolver then resolves there too (ENSIP-10 wildcard).
    pub async fn use_offchain_resolver(&self, name: &str) -> Result<()> {
        self.claim(name).await?;
        self.set_resolver(name, self.resolver).await
    }

    /// Replaces the resolver's gateway URL templates with this one.
    pub async fn set_gateway_url(&self, url_template: &str) -> Result<()> {
        self.set_gateway_urls(&[url_template]).await
    }

    pub async fn set_gateway_urls(&self, url_templates: &[&str]) -> Result<()> {
        let urls = url_templates.iter().map(|u| (*u).to_owned()).collect();
        self.rpc.transact(self.resolver, &IOffchainResolver::setUrlsCall { urls }).await.map(drop)
    }

    /// Trusts (or stops trusting) a gateway signer address.
    pub async fn set_signer(&self, signer: Address, trusted: bool) -> Result<()> {
        let call = IOffchainResolver::setSignerCall { signer, trusted };
        self.rpc.transact(self.resolver, &call).await.map(drop)
    }

    /// `node tests/contracts/resolve.js …` against this chain (ethers 5.7.2 with CCIP-read);
    /// add `--key K` arguments as needed, run it, and parse its JSON line.
    pub fn resolve_js(&self, name: &str) -> Command {
        let mut cmd = Command::new("node");
        cmd.arg(contracts_dir().join("resolve.js")).args([
            "--rpc",
            self.rpc.url(),
            "--registry",
            &self.registry.to_string(),
            "--name",
            name,
        ]);
        cmd
    }
}

fn join(label: &str, parent: &str) -> String {
    if parent.is_empty() { label.to_owned() } else { format!("{label}.{parent}") }
}

fn decode_hex(value: &Value) -> Result<Vec<u8>> {
    let text = value.as_str().ok_or_else(|| anyhow!("expected a hex string, got {value}"))?;
    hex::decode(text).with_context(|| format!("bad hex {text}"))
}

/// ENS namehash (EIP-137) of an already normalized name; "" is the root.
// replaced by dm3::ens once merged
pub fn namehash(name: &str) -> B256 {
    name.rsplit('.')
        .filter(|l| !l.is_empty())
        .fold(B256::ZERO, |node, label| keccak256([node.as_slice(), keccak256(label).as_slice()].concat()))
}

/// DNS wire encoding of a name (ENSIP-10's `name` argument): length-prefixed labels, then 0.
/// Labels longer than 63 bytes cannot be encoded; this test helper refuses them.
// replaced by dm3::ens once merged
pub fn dns_encode(name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|n| *n <= 63)
            .ok_or_else(|| anyhow!("label too long: {label}"))?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(out)
}
