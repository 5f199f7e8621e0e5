//! Wallet, transfer and explorer commands.

use crate::client::outln;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use domain::address::Address;
use domain::keys::SigningKey;
use domain::money::{Amount, DECIMALS};
use domain::tx::{TxPayload, sign_payload};
use serde_json::{Value, json};

use crate::client::{Context, print};
use crate::keystore;

#[derive(Subcommand)]
pub enum WalletCommand {
    /// Create a new wallet with a fresh key.
    New {
        name: String,
        /// Read the passphrase from this file (else AITBC_PASSPHRASE, else a prompt).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Import a secret key (64 hex characters, read from a file).
    Import {
        name: String,
        /// File holding the secret key.
        #[arg(long)]
        secret_key_file: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// List local wallets.
    List,
    /// Show a wallet's address, public key and balance.
    Show { name: String },
    /// Wallets the node holds for you (custodial): create, import, send, balance.
    #[command(subcommand)]
    Custodial(CustodialCommand),
}

/// `aitbc wallet custodial`: API.md's custodial wallets, whose keys the node keeps.
#[derive(Subcommand)]
pub enum CustodialCommand {
    /// Have the node create a wallet; prints its address and its credential (shown once: keep
    /// it to send with `--credential-file`).
    Create {
        name: String,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Hand the node a secret key (64 hex, from a file) to hold.
    Import {
        name: String,
        #[arg(long)]
        secret_key_file: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Send from a custodial wallet (its name or address).
    Send {
        #[arg(long)]
        from: String,
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount: tokens like `12.5AIT` / `2.5USDX` (base units with --base-units).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        #[arg(long)]
        asset: Option<String>,
        /// File holding the wallet's credential (required by nodes that ask for it).
        #[arg(long)]
        credential_file: Option<PathBuf>,
        /// Makes a retry of this send pay once (`Idempotency-Key`).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// A custodial wallet's balance.
    Balance { address: String },
}

fn custodial(ctx: &Context, command: CustodialCommand) -> anyhow::Result<()> {
    match command {
        CustodialCommand::Create {
            name,
            passphrase_file,
        } => {
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), true)?;
            let body = json!({"name": name, "passphrase": passphrase.as_str()});
            print(ctx.post("/v1/wallet/create", &body))
        }
        CustodialCommand::Import {
            name,
            secret_key_file,
            passphrase_file,
        } => {
            let secret = zeroize::Zeroizing::new(
                std::fs::read_to_string(&secret_key_file)
                    .with_context(|| format!("reading {}", secret_key_file.display()))?,
            );
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), true)?;
            let body = json!({"name": name, "passphrase": passphrase.as_str(),
                              "secret_key": secret.trim()});
            print(ctx.post("/v1/wallet/import", &body))
        }
        CustodialCommand::Send {
            from,
            to,
            amount,
            asset,
            credential_file,
            idempotency_key,
            passphrase_file,
        } => {
            let amount = asset_amount(ctx, &chain_info(ctx)?, asset.as_deref(), &amount)?;
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), false)?;
            let mut body = json!({"from": from, "to": to, "amount": amount,
                                  "passphrase": passphrase.as_str()});
            if let Some(asset) = asset {
                body["asset"] = json!(asset);
            }
            let credential = match credential_file {
                Some(file) => Some(zeroize::Zeroizing::new(format!(
                    "Bearer {}",
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?
                        .trim()
                ))),
                None => None,
            };
            let mut headers = Vec::new();
            if let Some(credential) = &credential {
                headers.push(("Authorization", credential.as_str()));
            }
            if let Some(key) = &idempotency_key {
                headers.push(("Idempotency-Key", key.as_str()));
            }
            print(ctx.post_with("/v1/wallet/send", &headers, &body))
        }
        CustodialCommand::Balance { address } => {
            print(ctx.get_with("/v1/wallet/balance", &[("address", address.as_str())]))
        }
    }
}

#[derive(Args)]
pub struct SendArgs {
    /// Local wallet to send from.
    #[arg(long)]
    from: String,
    /// Recipient address or local wallet name.
    #[arg(long)]
    to: String,
    /// Amount: tokens like `12.5AIT` (base units with --base-units).
    #[arg(long, allow_hyphen_values = true)]
    amount: String,
    /// Asset to send (default: the native one); `--amount` then ends in its symbol.
    #[arg(long)]
    asset: Option<String>,
    /// Fee in AIT, like `0.001AIT` (defaults to the chain's minimum fee).
    #[arg(long, allow_hyphen_values = true)]
    fee: Option<String>,
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

/// How a local wallet signs a transaction: which wallet, its passphrase, the fee.
#[derive(Args)]
pub struct Signer {
    /// Local wallet that signs and pays the fee.
    #[arg(long)]
    pub from: String,
    /// Fee in AIT, like `0.001AIT` (defaults to the chain's minimum fee).
    #[arg(long, allow_hyphen_values = true)]
    pub fee: Option<String>,
    /// Read the passphrase from this file (else AITBC_PASSPHRASE, else a prompt).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

pub fn run(ctx: &Context, command: WalletCommand) -> anyhow::Result<()> {
    match command {
        WalletCommand::New {
            name,
            passphrase_file,
        } => {
            keystore::ensure_new(&ctx.keystore, &name)?;
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), true)?;
            let key = SigningKey::generate().map_err(|e| anyhow!("no OS randomness: {e}"))?;
            let file = keystore::save(&ctx.keystore, &name, &key, &passphrase)?;
            outln!(
                "created wallet {name}\naddress: {}\nfile: {}",
                key.address(),
                file.display()
            );
            Ok(())
        }
        WalletCommand::Import {
            name,
            secret_key_file,
            passphrase_file,
        } => {
            keystore::ensure_new(&ctx.keystore, &name)?;
            let text = std::fs::read_to_string(&secret_key_file)
                .with_context(|| format!("reading {}", secret_key_file.display()))?;
            let key = SigningKey::from_hex(&text)
                .ok_or_else(|| anyhow!("the secret key file must hold 64 hex characters"))?;
            let passphrase = keystore::passphrase(passphrase_file.as_deref(), true)?;
            keystore::save(&ctx.keystore, &name, &key, &passphrase)?;
            outln!("imported wallet {name}\naddress: {}", key.address());
            Ok(())
        }
        WalletCommand::List => {
            let wallets = keystore::list(&ctx.keystore)?;
            if wallets.is_empty() {
                outln!(
                    "no wallets in {} (create one with `aitbc wallet new NAME`)",
                    ctx.keystore.display()
                );
            }
            for wallet in wallets {
                outln!("{}\t{}", wallet.name, wallet.key.address);
            }
            Ok(())
        }
        WalletCommand::Show { name } => {
            let wallet = keystore::load(&ctx.keystore, &name)?;
            let account = ctx.get(&format!("/v1/accounts/{}", wallet.key.address))?;
            print(Ok(json!({
                "name": wallet.name,
                "address": wallet.key.address,
                "public_key": wallet.key.public_key,
                "balance": account["balance"],
                "nonce": account["nonce"],
            })))
        }
        WalletCommand::Custodial(command) => custodial(ctx, command),
    }
}

/// An address, or the address of a local wallet of that name.
pub fn resolve(ctx: &Context, account: &str) -> anyhow::Result<Address> {
    if let Ok(address) = account.parse() {
        return Ok(address);
    }
    Ok(keystore::load(&ctx.keystore, account)
        .map_err(|_| {
            anyhow!(
                "{account:?} is neither an address (ait1 + 40 hex) nor a local wallet name \
                 (see `aitbc wallet list`)"
            )
        })?
        .key
        .address)
}

/// An amount of `asset` (None: the native one) as written on the command line: decimal units
/// followed by the asset's symbol (`12.5AIT`, `2.5USDX`) with the decimals the chain declares
/// for it, or base units under `--base-units`.
pub fn asset_amount(
    ctx: &Context,
    chain: &Value,
    asset: Option<&str>,
    text: &str,
) -> anyhow::Result<Amount> {
    let symbol = asset.unwrap_or("AIT");
    let decimals = decimals_of(chain, symbol)
        .ok_or_else(|| anyhow!("asset {symbol} is not declared on this chain"))?;
    parse_amount(text, symbol, decimals, ctx.base_units)
}

/// The decimals of `symbol` on `chain` (`GET /v1/chains/{id}`), if the chain has it.
fn decimals_of(chain: &Value, symbol: &str) -> Option<u32> {
    match symbol {
        "AIT" => Some(DECIMALS),
        _ => chain["assets"]
            .as_array()
            .and_then(|assets| assets.iter().find(|a| a["symbol"] == symbol))
            .and_then(|a| a["decimals"].as_u64())
            .map(|d| d as u32),
    }
}

/// Reads `text` as an amount of `symbol`. A bare number is refused rather than guessed: `12`
/// could mean 12 AIT or 12 base units (10^-17 AIT), and a wrong guess sends the wrong money.
pub fn parse_amount(
    text: &str,
    symbol: &str,
    decimals: u32,
    base_units: bool,
) -> anyhow::Result<Amount> {
    let trimmed = text.trim();
    if base_units {
        return trimmed
            .parse::<Amount>()
            .map_err(|e| anyhow!("{text:?}: {e} (--base-units is given)"));
    }
    let lower_case = (symbol == "AIT")
        .then(|| trimmed.strip_suffix("ait"))
        .flatten();
    match trimmed.strip_suffix(symbol).or(lower_case) {
        Some(number) => Amount::parse_decimal(number, decimals)
            .map_err(|e| anyhow!("{text:?}: {e}; write {symbol} like \"12.5{symbol}\"")),
        None if trimmed.starts_with('-') => bail!("{text:?}: an amount cannot be negative"),
        None if Amount::parse_decimal(trimmed, decimals).is_ok() => bail!(
            "{text:?} has no unit: write \"{trimmed}{symbol}\" for {trimmed} {symbol}, \
             or give --base-units to mean base units"
        ),
        None => bail!(
            "{text:?} is not an amount of {symbol}: write it like \"12.5{symbol}\" \
             (or base units with --base-units)"
        ),
    }
}

/// The chain the commands talk to (`--chain`, else the node's default).
pub fn chain_info(ctx: &Context) -> anyhow::Result<Value> {
    match &ctx.chain {
        Some(chain) => ctx.get(&format!("/v1/chains/{chain}")),
        None => {
            let chains = ctx.get("/v1/chains")?;
            let default = chains["default_chain"].as_str().unwrap_or_default();
            chains["chains"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["chain_id"] == default))
                .cloned()
                .ok_or_else(|| anyhow!("the node did not report its default chain"))
        }
    }
}

/// Signs a transaction of `kind` with `body` from a local wallet at its next nonce, submits it
/// and prints the node's answer.
pub fn sign_and_submit(
    ctx: &Context,
    chain: &Value,
    signer: &Signer,
    kind: &str,
    body: Value,
) -> anyhow::Result<()> {
    print(sign_and_post(ctx, chain, signer, kind, body))
}

/// [`sign_and_submit`], returning the node's answer.
fn sign_and_post(
    ctx: &Context,
    chain: &Value,
    signer: &Signer,
    kind: &str,
    body: Value,
) -> anyhow::Result<Value> {
    keystore::load(&ctx.keystore, &signer.from)?;
    let passphrase = keystore::passphrase(signer.passphrase_file.as_deref(), false)?;
    let key = keystore::unlock(&ctx.keystore, &signer.from, &passphrase)?;
    let chain_id = chain["chain_id"]
        .as_str()
        .ok_or_else(|| anyhow!("the node did not name its chain"))?;
    let account = ctx.get(&format!("/v1/accounts/{}", key.address()))?;
    let nonce = account["nonce"]
        .as_u64()
        .ok_or_else(|| anyhow!("the node did not report a nonce"))?;
    let mut payload = TxPayload::transfer(
        chain_id,
        key.address(),
        nonce,
        Amount(u128::MAX),
        key.address(),
        Amount::ZERO,
    );
    payload.kind = kind.to_string();
    payload.body = body;
    let chain_amount = |field: &str| -> anyhow::Result<u128> {
        let text = chain[field].as_str().unwrap_or("0");
        text.parse().map_err(|_| anyhow!("bad {field} from node"))
    };
    payload.fee = match &signer.fee {
        Some(fee) => parse_amount(fee, "AIT", DECIMALS, ctx.base_units)?,
        // The chain's minimum, with its price per byte for the longest this payload can be.
        None => {
            let longest = serde_json::to_string(&payload)?.len() as u128;
            let per_byte = chain_amount("min_fee_per_byte")?.saturating_mul(longest);
            Amount(chain_amount("min_fee")?.saturating_add(per_byte))
        }
    };
    let envelope = sign_payload(&key, &payload);
    ctx.post("/v1/transactions", &serde_json::to_value(envelope)?)
}

/// Prints the node's answer to a payment: with `--json` as it is, otherwise as a sentence
/// ("`what`: transaction HASH, committed").
fn print_payment(ctx: &Context, answer: Value, what: &str) -> anyhow::Result<()> {
    if ctx.json {
        return print(Ok(answer));
    }
    let hash = answer["tx_hash"].as_str().unwrap_or_default();
    match answer["outcome"].as_str() {
        Some("applied") => outln!("{what}: transaction {hash}, committed"),
        _ => outln!(
            "transaction {hash} was committed but refused ({}): {}; only its fee was paid",
            answer["reason"]["code"].as_str().unwrap_or("refused"),
            answer["reason"]["message"].as_str().unwrap_or_default()
        ),
    }
    Ok(())
}

/// `value` of `asset` (None: AIT) as `12.5 AIT (12500000000000000000 base units)`.
fn shown(chain: &Value, asset: Option<&str>, value: Amount) -> String {
    let symbol = asset.unwrap_or("AIT");
    let decimals = decimals_of(chain, symbol).unwrap_or(0);
    format!(
        "{} {symbol} ({value} base units)",
        value.display_units(decimals)
    )
}

pub fn send(ctx: &Context, args: SendArgs) -> anyhow::Result<()> {
    let to = resolve(ctx, &args.to)?;
    let chain = chain_info(ctx)?;
    let value = asset_amount(ctx, &chain, args.asset.as_deref(), &args.amount)?;
    let mut body = json!({"to": to, "amount": value});
    if let Some(asset) = &args.asset {
        body["asset"] = json!(asset);
    }
    let what = format!(
        "sent {} from {} to {to}",
        shown(&chain, args.asset.as_deref(), value),
        args.from
    );
    let signer = Signer {
        from: args.from,
        fee: args.fee,
        passphrase_file: args.passphrase_file,
    };
    let answer = sign_and_post(ctx, &chain, &signer, "transfer", body)?;
    print_payment(ctx, answer, &what)
}

pub fn balance(ctx: &Context, account: &str) -> anyhow::Result<()> {
    let address = resolve(ctx, account)?;
    let answer = ctx.get(&format!("/v1/accounts/{address}"))?;
    let units: Amount = answer["balance"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .map_err(|_| anyhow!("bad balance from node"))?;
    outln!(
        "{address}\n  balance: {} {} ({} base units)\n  nonce:   {}",
        units.display_tokens(),
        answer["token"].as_str().unwrap_or(""),
        units,
        answer["nonce"]
    );
    let chain = chain_info(ctx)?;
    for asset in chain["assets"].as_array().into_iter().flatten().skip(1) {
        let symbol = asset["symbol"].as_str().unwrap_or_default();
        let decimals = asset["decimals"].as_u64().unwrap_or(0) as u32;
        let units: Amount = answer["balances"][symbol]
            .as_str()
            .unwrap_or("0")
            .parse()
            .map_err(|_| anyhow!("bad {symbol} balance from node"))?;
        outln!(
            "  {symbol}: {} ({units} base units)",
            units.display_units(decimals)
        );
    }
    Ok(())
}

pub fn block(ctx: &Context, id: Option<&str>) -> anyhow::Result<()> {
    let id = match id {
        Some(id) => id.to_string(),
        None => chain_info(ctx)?["height"].to_string(),
    };
    print(ctx.get(&format!("/v1/blocks/{id}")))
}

pub fn faucet(
    ctx: &Context,
    account: &str,
    amount_text: &str,
    asset: Option<&str>,
) -> anyhow::Result<()> {
    let address = resolve(ctx, account)?;
    let chain = chain_info(ctx)?;
    let value = asset_amount(ctx, &chain, asset, amount_text)?;
    if value == Amount::ZERO {
        bail!("the amount must be positive");
    }
    let mut body = json!({"address": address, "amount": value});
    if let Some(chain) = &ctx.chain {
        body["chain_id"] = json!(chain);
    }
    if let Some(asset) = asset {
        body["asset"] = json!(asset);
    }
    let answer = ctx.post("/v1/faucet", &body)?;
    let what = format!(
        "the faucet sent {} to {address}",
        shown(&chain, asset, value)
    );
    print_payment(ctx, answer, &what)
}
