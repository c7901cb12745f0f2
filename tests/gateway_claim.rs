//! The claim of docs/gateway.md section 3, attacked as an outsider would: a network account
//! takes its name for a wallet it holds, with a challenge the node issued to that account and
//! signed by the wallet. Someone else's account, a replay, an expired or altered challenge and
//! a signature by another wallet are refused; a claim over a custodial identity destroys its
//! keys. The network's part (which account sent the message) is the caller's `sender`, as the
//! homeserver or Telegram authenticates it. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use dm3::crypto::eth::Wallet;
use dm3_bridge::clock::now_ms;
use dm3_bridge::identities::network::{Network, NetworkUserId};
use dm3_bridge::identities::vault::claim::{CLAIM_TTL_MS, Claim};
use dm3_bridge::identities::{IdentityError, IdentityVault};
use support::TestDb;
use support::claims::claim_json;
use support::names::{NamesNode, start_names_node};

on_both_backends!(a_claim_holds_only_for_the_account_and_the_wallet_it_names);

fn matrix(user: &str) -> NetworkUserId {
    NetworkUserId::parse(Network::Matrix, user).unwrap()
}

/// The claim a client makes from a challenge ([`claim_json`]), read as the node reads it.
fn claim_of(text: &str, wallet: &Wallet, signer: &Wallet, node: &str) -> Claim {
    Claim::parse(&claim_json(text, wallet, signer, node).to_string()).unwrap()
}

async fn refused(vault: &IdentityVault, sender: &NetworkUserId, claim: Claim, says: &str) {
    match vault.complete_claim(sender, claim, now_ms()).await {
        Err(IdentityError::Claim(reason)) => assert!(reason.contains(says), "{reason}"),
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

async fn a_claim_holds_only_for_the_account_and_the_wallet_it_names(db: &TestDb) {
    let node = start_names_node(NamesNode { database: Some(db.url.clone()), ..NamesNode::default() }).await;
    let vault = node.node.names().vault.clone();
    let ds = node.config.node.name.clone();
    let (bob, mallory) = (matrix("@bob:example.org"), matrix("@mallory:example.org"));
    let wallet = Wallet::generate();

    let challenge = vault.issue_claim(&bob, now_ms()).await.unwrap();
    assert!(challenge.text.contains("account: matrix:@bob:example.org"), "{}", challenge.text);
    // Mallory's account sends Bob's claim: refused, and Bob's challenge is not used up by it.
    refused(
        &vault,
        &mallory,
        claim_of(&challenge.text, &wallet, &wallet, &ds),
        "not issued to matrix:@mallory",
    )
    .await;
    // Bob's challenge signed by another wallet than the one it names.
    let forger = Wallet::generate();
    refused(&vault, &bob, claim_of(&challenge.text, &wallet, &forger, &ds), "not signed by").await;
    // Spent by that attempt: a challenge is answered once, right or wrong.
    refused(&vault, &bob, claim_of(&challenge.text, &wallet, &wallet, &ds), "expired or was used").await;
    // A challenge text changed (a later expiry) no longer is the node's.
    let challenge = vault.issue_claim(&bob, now_ms()).await.unwrap();
    let stretched = challenge.text.replace("expires: ", "expires: Fri, ");
    refused(&vault, &bob, claim_of(&stretched, &wallet, &wallet, &ds), "not the one the node issued").await;
    // Expired.
    let old = vault.issue_claim(&bob, now_ms() - CLAIM_TTL_MS - 1).await.unwrap();
    refused(&vault, &bob, claim_of(&old.text, &wallet, &wallet, &ds), "expired").await;
    assert!(vault.store().identity_of_user(&bob).await.unwrap().is_none(), "no refusal wrote anything");

    // Bob's own claim, and its replay.
    let challenge = vault.issue_claim(&bob, now_ms()).await.unwrap();
    let identity =
        vault.complete_claim(&bob, claim_of(&challenge.text, &wallet, &wallet, &ds), now_ms()).await.unwrap();
    assert!(identity.custody.is_self_custody());
    assert_eq!(identity.address, wallet.address());
    refused(&vault, &bob, claim_of(&challenge.text, &wallet, &wallet, &ds), "expired or was used").await;

    // A custodial identity claimed: the wallet takes over and the node's keys are gone.
    let carol = matrix("@carol:example.org");
    let custodial = vault.create(carol.clone(), now_ms()).await.unwrap();
    assert_eq!(vault.store().identity_keys(&custodial.name).await.unwrap().len(), 1);
    let challenge = vault.issue_claim(&carol, now_ms()).await.unwrap();
    let carols = Wallet::generate();
    let claimed = vault
        .complete_claim(&carol, claim_of(&challenge.text, &carols, &carols, &ds), now_ms())
        .await
        .unwrap();
    assert_eq!((claimed.name.clone(), claimed.address), (custodial.name.clone(), carols.address()));
    assert!(vault.store().identity_keys(&custodial.name).await.unwrap().is_empty());
}
