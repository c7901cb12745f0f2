//! The service side of the Telegram connector (`src/bridges/telegram.rs`), on SQLite and on
//! PostgreSQL: the chat state in the store, virtual identities through the vault, DM3 names
//! through a directory, and the assembly of the connector.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::Address;
use dm3::crypto::eth::Wallet;
use dm3::ds_profile::DeliveryServiceProfile;
use dm3::ens::EnsName;
use dm3::keys::{DEFAULT_NONCE, ProfileKeys};
use dm3::profile::{SignedUserProfile, UserProfile};
use dm3_bridge::bridges::telegram::{StoreChatState, VaultAccounts, build_telegram};
use dm3_bridge::config::{Config, ConfigError};
use dm3_bridge::engine::{InboundQueue, Queue};
use dm3_bridge::expiry::{BRIDGE_KEYS_KEPT, prune_bridge_keys};
use dm3_bridge::identities::{IdentityRef, IdentityVault, LocalNames, NameScheme, NetworkUserId};
use dm3_bridge::names::directory::{Directory, NoLinks};
use dm3_bridge::names::static_resolver::StaticResolver;
use dm3_bridge::names::{NameResolver, ResolveError};
use dm3_bridge::store::telegram::MAX_RECENT_CONTACTS;
use dm3_bridge::store::{Inserted, Store};
use dm3_bridge::vault::MasterKey;
use dm3_bridge_connector::{
    BoxFuture, Connector, ConversationId, NetworkId, NetworkMessageId, RemoteIdentity,
};
use dm3_bridge_telegram::{
    BotToken, ChatState, LinkPolicy, ReceiveMode, StateError, TelegramAccounts, TelegramConfig,
    TelegramError, TelegramUser,
};
use support::TestDb;

on_both_backends!(
    current_contact_round_trips_and_survives_reopening,
    recent_contacts_are_ordered_by_last_use,
    recent_contacts_are_bounded,
    recent_contacts_order_even_when_the_clock_stands_still_or_goes_back,
    chat_state_is_separate_per_chat_and_per_network,
    routes_are_recorded_once_and_survive_reopening,
    reactions_are_replaced_by_the_latest_and_survive_reopening,
    old_routes_are_pruned,
    the_expiry_task_prunes_routes_older_than_a_week,
    link_creates_the_identity_once,
    concurrent_links_of_one_user_agree,
    link_refuses_a_disabled_identity,
    link_refuses_without_a_parent,
    find_dm3_name_answers_only_verified_profiles,
    find_dm3_name_finds_linked_telegram_users_through_local_names,
    find_dm3_name_reports_an_unavailable_resolver_as_unavailable,
    build_telegram_checks_the_config_and_uses_its_network,
);

const PARENT: &str = "bridge.example.eth";
const NODE: &str = "relay.example.eth";
const CHAT: i64 = 4242;

fn telegram() -> NetworkId {
    NetworkId::new("telegram").unwrap()
}

fn contact(name: &str) -> RemoteIdentity {
    RemoteIdentity::new(name).unwrap()
}

fn ens(name: &str) -> EnsName {
    EnsName::parse(name).unwrap()
}

fn message(id: &str) -> NetworkMessageId {
    NetworkMessageId::new(id).unwrap()
}

fn conversation(id: &str) -> ConversationId {
    ConversationId::new(id).unwrap()
}

fn tg_user(id: u64) -> TelegramUser {
    TelegramUser { id, username: Some(format!("user{id}")), display_name: format!("User {id}") }
}

fn signed_profile(wallet: &Wallet) -> SignedUserProfile {
    let keys = ProfileKeys::from_wallet(wallet, DEFAULT_NONCE);
    UserProfile::from_keys(&keys, [NODE]).sign(wallet)
}

fn vault(store: &Store, parent: Option<&str>) -> IdentityVault {
    IdentityVault::new(
        store.clone(),
        Arc::new(MasterKey::generate().unwrap()),
        parent.map(|parent| NameScheme::new(parent, "tg", "mx").unwrap()),
        ens(NODE),
    )
}

fn static_directory(resolver: StaticResolver) -> Directory {
    Directory::new(Arc::new(resolver), Arc::new(NoLinks))
}

fn accounts(store: &Store, resolver: StaticResolver) -> (VaultAccounts, IdentityVault) {
    let vault = vault(store, Some(PARENT));
    (VaultAccounts::new(vault.clone(), static_directory(resolver), telegram_network()), vault)
}

async fn current_contact_round_trips_and_survives_reopening(db: &TestDb) {
    let store = db.open().await;
    let state = StoreChatState::new(store.clone(), telegram());
    assert_eq!(state.current_contact(CHAT).await.unwrap(), None);
    state.set_current_contact(CHAT, &contact("alice.eth")).await.unwrap();
    assert_eq!(state.current_contact(CHAT).await.unwrap(), Some(contact("alice.eth")));
    state.set_current_contact(CHAT, &contact("bob.eth")).await.unwrap();
    // Setting the same contact again (an update handled twice) is not an error.
    state.set_current_contact(CHAT, &contact("bob.eth")).await.unwrap();
    store.close().await;

    let reopened = db.open().await;
    let state = StoreChatState::new(reopened.clone(), telegram());
    assert_eq!(state.current_contact(CHAT).await.unwrap(), Some(contact("bob.eth")));
    assert_eq!(state.recent_contacts(CHAT, 10).await.unwrap(), [contact("bob.eth"), contact("alice.eth")]);
    reopened.close().await;
}

async fn recent_contacts_are_ordered_by_last_use(db: &TestDb) {
    let store = db.open().await;
    let state = StoreChatState::new(store.clone(), telegram());
    assert!(state.recent_contacts(CHAT, 10).await.unwrap().is_empty());
    for name in ["a.eth", "b.eth", "c.eth", "a.eth"] {
        state.set_current_contact(CHAT, &contact(name)).await.unwrap();
    }
    assert_eq!(
        state.recent_contacts(CHAT, 10).await.unwrap(),
        [contact("a.eth"), contact("c.eth"), contact("b.eth")]
    );
    assert_eq!(state.recent_contacts(CHAT, 2).await.unwrap(), [contact("a.eth"), contact("c.eth")]);
    assert!(state.recent_contacts(CHAT, 0).await.unwrap().is_empty());
    store.close().await;
}

async fn recent_contacts_are_bounded(db: &TestDb) {
    let store = db.open().await;
    let state = StoreChatState::new(store.clone(), telegram());
    let chosen = MAX_RECENT_CONTACTS as usize + 5;
    for n in 0..chosen {
        state.set_current_contact(CHAT, &contact(&format!("user{n}.eth"))).await.unwrap();
    }
    // Asking for more than the bound gets the bound, newest first; the oldest are forgotten.
    let recent = state.recent_contacts(CHAT, usize::MAX).await.unwrap();
    let expected: Vec<RemoteIdentity> = (5..chosen).rev().map(|n| contact(&format!("user{n}.eth"))).collect();
    assert_eq!(recent, expected);
    // Forgotten, not just hidden: choosing a forgotten contact again puts it first, and the
    // list still holds the bound.
    state.set_current_contact(CHAT, &contact("user0.eth")).await.unwrap();
    let recent = state.recent_contacts(CHAT, usize::MAX).await.unwrap();
    assert_eq!(recent.len(), MAX_RECENT_CONTACTS as usize);
    assert_eq!(recent.first(), Some(&contact("user0.eth")));
    assert!(!recent.contains(&contact("user5.eth")));
    store.close().await;
}

async fn recent_contacts_order_even_when_the_clock_stands_still_or_goes_back(db: &TestDb) {
    let store = db.open().await;
    let network = telegram();
    let at = 1_700_000_000_000;
    store.set_telegram_contact(&network, CHAT, &contact("a.eth"), at).await.unwrap();
    store.set_telegram_contact(&network, CHAT, &contact("b.eth"), at).await.unwrap();
    store.set_telegram_contact(&network, CHAT, &contact("c.eth"), at - 60_000).await.unwrap();
    assert_eq!(
        store.telegram_recent_contacts(&network, CHAT, 10).await.unwrap(),
        [contact("c.eth"), contact("b.eth"), contact("a.eth")]
    );
    assert_eq!(store.telegram_current_contact(&network, CHAT).await.unwrap(), Some(contact("c.eth")));
    store.close().await;
}

async fn chat_state_is_separate_per_chat_and_per_network(db: &TestDb) {
    let store = db.open().await;
    let first = StoreChatState::new(store.clone(), telegram());
    let second_bot = StoreChatState::new(store.clone(), NetworkId::new("telegram-2").unwrap());
    first.set_current_contact(CHAT, &contact("alice.eth")).await.unwrap();
    first.set_current_contact(-CHAT, &contact("bob.eth")).await.unwrap();
    assert_eq!(first.current_contact(CHAT).await.unwrap(), Some(contact("alice.eth")));
    assert_eq!(first.current_contact(-CHAT).await.unwrap(), Some(contact("bob.eth")));
    assert_eq!(first.recent_contacts(-CHAT, 10).await.unwrap(), [contact("bob.eth")]);
    assert_eq!(second_bot.current_contact(CHAT).await.unwrap(), None);
    assert!(second_bot.recent_contacts(CHAT, 10).await.unwrap().is_empty());

    first.record_route(&message("4242:1"), &conversation("4242/alice.eth")).await.unwrap();
    assert_eq!(second_bot.route_of(&message("4242:1")).await.unwrap(), None);
    store.close().await;
}

async fn routes_are_recorded_once_and_survive_reopening(db: &TestDb) {
    let store = db.open().await;
    let state = StoreChatState::new(store.clone(), telegram());
    assert_eq!(state.route_of(&message("4242:7")).await.unwrap(), None);
    state.record_route(&message("4242:7"), &conversation("4242/alice.eth")).await.unwrap();
    state.record_route(&message("4242:8"), &conversation("4242/bob.eth")).await.unwrap();
    // Recording again is no error, and the first record stays.
    state.record_route(&message("4242:7"), &conversation("4242/bob.eth")).await.unwrap();
    assert_eq!(
        store
            .record_telegram_route(&telegram(), &message("4242:7"), &conversation("4242/x.eth"), 0)
            .await
            .unwrap(),
        Inserted::Duplicate
    );
    store.close().await;

    let reopened = db.open().await;
    let state = StoreChatState::new(reopened.clone(), telegram());
    assert_eq!(state.route_of(&message("4242:7")).await.unwrap(), Some(conversation("4242/alice.eth")));
    assert_eq!(state.route_of(&message("4242:8")).await.unwrap(), Some(conversation("4242/bob.eth")));
    assert_eq!(state.route_of(&message("4242:9")).await.unwrap(), None);
    reopened.close().await;
}

async fn reactions_are_replaced_by_the_latest_and_survive_reopening(db: &TestDb) {
    let store = db.open().await;
    let state = StoreChatState::new(store.clone(), telegram());
    let slot = message("4242:7:reacted-4242-f09f918d");
    assert_eq!(state.reaction_in(&slot).await.unwrap(), None);
    state.record_reaction(&slot, &message("4242:7:reacted-4242-f09f918d-u1")).await.unwrap();
    // Recording the same again (an update handled twice) is no error.
    state.record_reaction(&slot, &message("4242:7:reacted-4242-f09f918d-u1")).await.unwrap();
    assert_eq!(state.reaction_in(&slot).await.unwrap(), Some(message("4242:7:reacted-4242-f09f918d-u1")));
    // Added again after being taken back: the new event stands for the slot now.
    state.record_reaction(&slot, &message("4242:7:reacted-4242-f09f918d-u3")).await.unwrap();
    let other_bot = StoreChatState::new(store.clone(), NetworkId::new("telegram-2").unwrap());
    assert_eq!(other_bot.reaction_in(&slot).await.unwrap(), None, "kept per network");
    store.close().await;

    let reopened = db.open().await;
    let state = StoreChatState::new(reopened.clone(), telegram());
    assert_eq!(state.reaction_in(&slot).await.unwrap(), Some(message("4242:7:reacted-4242-f09f918d-u3")));
    assert_eq!(state.reaction_in(&message("4242:7:reacted-4242-e29da4")).await.unwrap(), None);
    reopened.close().await;
}

async fn old_routes_are_pruned(db: &TestDb) {
    let store = db.open().await;
    let network = telegram();
    store.record_telegram_route(&network, &message("1:1"), &conversation("1/a.eth"), 1_000).await.unwrap();
    store.record_telegram_route(&network, &message("1:2"), &conversation("1/a.eth"), 2_000).await.unwrap();
    let (old_slot, new_slot) = (message("1:1:reacted-1-f09f918d"), message("1:2:reacted-1-f09f918d"));
    store
        .record_telegram_reaction(&network, &old_slot, &message("1:1:reacted-1-f09f918d-u1"), 1_000)
        .await
        .unwrap();
    store
        .record_telegram_reaction(&network, &new_slot, &message("1:2:reacted-1-f09f918d-u2"), 2_000)
        .await
        .unwrap();
    assert_eq!(store.prune_telegram_routes(2_000).await.unwrap(), 2, "a route and a reaction");
    assert_eq!(store.telegram_route(&network, &message("1:1")).await.unwrap(), None);
    assert_eq!(store.telegram_route(&network, &message("1:2")).await.unwrap(), Some(conversation("1/a.eth")));
    assert_eq!(store.telegram_reaction(&network, &old_slot).await.unwrap(), None);
    assert_eq!(
        store.telegram_reaction(&network, &new_slot).await.unwrap(),
        Some(message("1:2:reacted-1-f09f918d-u2"))
    );
    store.close().await;
}

async fn the_expiry_task_prunes_routes_older_than_a_week(db: &TestDb) {
    let store = db.open().await;
    let network = telegram();
    let now = 1_800_000_000_000;
    let kept = i64::try_from(BRIDGE_KEYS_KEPT.as_millis()).unwrap();
    let route = |id: &str, at: i64| {
        let store = store.clone();
        let network = network.clone();
        let id = id.to_owned();
        async move {
            store.record_telegram_route(&network, &message(&id), &conversation("1/a.eth"), at).await.unwrap()
        }
    };
    route("1:1", now - kept - 1).await;
    route("1:2", now - kept).await;
    route("1:3", now - 60_000).await;
    prune_bridge_keys(&store, now).await;
    assert_eq!(store.telegram_route(&network, &message("1:1")).await.unwrap(), None, "older than a week");
    for kept in ["1:2", "1:3"] {
        assert_eq!(
            store.telegram_route(&network, &message(kept)).await.unwrap(),
            Some(conversation("1/a.eth"))
        );
    }
    store.close().await;
}

async fn link_creates_the_identity_once(db: &TestDb) {
    let store = db.open().await;
    let (accounts, vault) = accounts(&store, StaticResolver::new());
    let linked = accounts.link(&tg_user(12345)).await.unwrap();
    assert_eq!(linked.as_str(), "tg-12345.tg.bridge.example.eth");
    let again = accounts.link(&tg_user(12345)).await.unwrap();
    assert_eq!(again, linked);
    let page = vault.list(1, 10).await.unwrap();
    assert_eq!(page.total, 1, "a second link must not create a second identity");
    let record = vault
        .get(&IdentityRef::User(NetworkUserId::parse("telegram".parse().unwrap(), "12345").unwrap()))
        .await
        .unwrap();
    assert_eq!(record.name.as_str(), linked.as_str());
    assert_eq!(record.custody.key_version(), Some(1));
    // Another Telegram user gets another identity.
    assert_eq!(accounts.link(&tg_user(7)).await.unwrap().as_str(), "tg-7.tg.bridge.example.eth");
    // Telegram has no user 0; that is refused, not an identity.
    assert!(matches!(accounts.link(&tg_user(0)).await, Err(StateError::Refused(_))));
    assert_eq!(vault.list(1, 10).await.unwrap().total, 2);
    store.close().await;
}

async fn concurrent_links_of_one_user_agree(db: &TestDb) {
    let store = db.open().await;
    let (accounts, vault) = accounts(&store, StaticResolver::new());
    let user = tg_user(99);
    let (first, second, third) =
        tokio::join!(accounts.link(&user), accounts.link(&user), accounts.link(&user));
    // A create that lost the race finds the winner; at worst it asks to be retried.
    let answers: Vec<RemoteIdentity> = [first, second, third]
        .into_iter()
        .map(|answer| match answer {
            Ok(name) => name,
            Err(StateError::Unavailable(_)) => contact("tg-99.tg.bridge.example.eth"),
            Err(e) => panic!("a concurrent link failed: {e}"),
        })
        .collect();
    assert!(answers.iter().all(|name| name.as_str() == "tg-99.tg.bridge.example.eth"), "{answers:?}");
    assert_eq!(vault.list(1, 10).await.unwrap().total, 1);
    store.close().await;
}

async fn link_refuses_a_disabled_identity(db: &TestDb) {
    let store = db.open().await;
    let (accounts, vault) = accounts(&store, StaticResolver::new());
    let linked = accounts.link(&tg_user(555)).await.unwrap();
    vault.disable(&IdentityRef::Name(ens(linked.as_str())), 1).await.unwrap();
    match accounts.link(&tg_user(555)).await {
        Err(StateError::Refused(reason)) => {
            assert!(reason.contains("disabled"), "{reason}");
            assert!(reason.contains(linked.as_str()), "{reason}");
        }
        other => panic!("a disabled identity was linked: {other:?}"),
    }
    // Refusing created nothing new, and enabling it again links the same identity.
    assert_eq!(vault.list(1, 10).await.unwrap().total, 1);
    vault.enable(&IdentityRef::Name(ens(linked.as_str())), 2).await.unwrap();
    assert_eq!(accounts.link(&tg_user(555)).await.unwrap(), linked);
    store.close().await;
}

async fn link_refuses_without_a_parent(db: &TestDb) {
    let store = db.open().await;
    let accounts =
        VaultAccounts::new(vault(&store, None), static_directory(StaticResolver::new()), telegram_network());
    match accounts.link(&tg_user(1)).await {
        Err(StateError::Refused(reason)) => assert!(reason.contains("operator"), "{reason}"),
        other => panic!("linked without a parent: {other:?}"),
    }
    store.close().await;
}

async fn find_dm3_name_answers_only_verified_profiles(db: &TestDb) {
    let store = db.open().await;
    let alice = Wallet::generate();
    let other = Wallet::generate();
    let resolver = StaticResolver::new()
        .with_user(ens("alice.eth"), alice.address(), &signed_profile(&alice))
        // Mallory publishes Alice's profile under an address Alice's wallet does not control.
        .with_user(ens("mallory.eth"), other.address(), &signed_profile(&alice))
        // An ENS name with an address but no DM3 profile is no DM3 user.
        .with_address(ens("plain.eth"), Address::repeat_byte(7));
    let (accounts, _) = accounts(&store, resolver);

    assert_eq!(accounts.find_dm3_name("alice.eth").await.unwrap(), Some(contact("alice.eth")));
    // What the user typed is normalized the way ENS does.
    assert_eq!(accounts.find_dm3_name(" Alice.ETH ").await.unwrap(), Some(contact("alice.eth")));
    assert_eq!(accounts.find_dm3_name("plain.eth").await.unwrap(), None);
    assert_eq!(accounts.find_dm3_name("nobody.eth").await.unwrap(), None);
    for not_a_name in ["", "a..eth", "alice eth", "x.eth\u{0}"] {
        assert_eq!(accounts.find_dm3_name(not_a_name).await.unwrap(), None, "{not_a_name:?}");
    }
    match accounts.find_dm3_name("mallory.eth").await {
        Err(StateError::Refused(reason)) => assert!(reason.contains("mallory.eth"), "{reason}"),
        other => panic!("a profile not signed by its address was accepted: {other:?}"),
    }
    store.close().await;
}

async fn find_dm3_name_finds_linked_telegram_users_through_local_names(db: &TestDb) {
    let store = db.open().await;
    let vault = vault(&store, Some(PARENT));
    let ds = DeliveryServiceProfile::new("a", "b", "https://relay.example.org");
    let local = LocalNames::new(vault.clone(), &ds).with_fallback(Arc::new(StaticResolver::new()));
    let accounts = VaultAccounts::new(
        vault.clone(),
        Directory::new(Arc::new(local), Arc::new(NoLinks)),
        telegram_network(),
    );

    let name = "tg-31337.tg.bridge.example.eth";
    assert_eq!(accounts.find_dm3_name(name).await.unwrap(), None, "not linked yet");
    let linked = accounts.link(&tg_user(31337)).await.unwrap();
    assert_eq!(accounts.find_dm3_name(name).await.unwrap(), Some(linked.clone()));
    // A disabled identity is not published, so nobody can choose it as a contact.
    vault.disable(&IdentityRef::Name(ens(name)), 1).await.unwrap();
    assert_eq!(accounts.find_dm3_name(name).await.unwrap(), None);
    store.close().await;
}

/// A name source that never answers in time.
struct Unreachable;

impl NameResolver for Unreachable {
    fn address<'a>(&'a self, _: &'a EnsName) -> BoxFuture<'a, Result<Option<Address>, ResolveError>> {
        Box::pin(async { Err(ResolveError::Unavailable("timed out".to_owned())) })
    }

    fn text<'a>(&'a self, _: &'a EnsName, _: &'a str) -> BoxFuture<'a, Result<Option<String>, ResolveError>> {
        Box::pin(async { Err(ResolveError::Unavailable("timed out".to_owned())) })
    }
}

async fn find_dm3_name_reports_an_unavailable_resolver_as_unavailable(db: &TestDb) {
    let store = db.open().await;
    let accounts = VaultAccounts::new(
        vault(&store, Some(PARENT)),
        Directory::new(Arc::new(Unreachable), Arc::new(NoLinks)),
        telegram_network(),
    );
    // Not "no such user": the update must be handled again once names resolve.
    assert!(matches!(accounts.find_dm3_name("alice.eth").await, Err(StateError::Unavailable(_))));
    store.close().await;
}

async fn build_telegram_checks_the_config_and_uses_its_network(db: &TestDb) {
    let store = db.open().await;
    let sink = Arc::new(InboundQueue::new(Queue::new(store.clone())));
    let vault = vault(&store, Some(PARENT));
    let directory = static_directory(StaticResolver::new());

    let mut config = TelegramConfig::new(BotToken::new("123456789:AAEexampleexampleexampleexample"));
    config.network = NetworkId::new("telegram-2").unwrap();
    let connector = build_telegram(&config, sink.clone(), store.clone(), vault.clone(), directory.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(connector.network().as_str(), "telegram-2");

    let broken = TelegramConfig::new(BotToken::new("not a token"));
    match build_telegram(&broken, sink, store.clone(), vault, directory) {
        Err(TelegramError::Config(problems)) => {
            assert!(problems.iter().any(|p| p.key == "token"), "{problems:?}")
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a connector was built with an invalid token"),
    }
    store.close().await;
}

// The `[telegram]` section of the service's config.

const MINIMAL: &str = r#"
[node]
name = "relay.example.eth"
public_url = "https://relay.example.org"
"#;
const TOKEN: &str = "123456789:AAEexampleexampleexampleexample";

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::from_toml(text, Path::new("/etc/dm3/config.toml"), env)
}

fn problem_keys(config: &Config) -> Vec<String> {
    config.problems().into_iter().map(|p| p.key).filter(|key| key != "node.data_dir").collect()
}

#[test]
fn without_a_telegram_section_there_is_no_telegram() {
    let config = load(MINIMAL, &[]).unwrap();
    assert_eq!(config.telegram, None);
    assert!(problem_keys(&config).is_empty());
}

#[test]
fn the_telegram_section_is_read_with_its_defaults() {
    let text = format!("{MINIMAL}[identities]\nparent = \"{PARENT}\"\n[telegram]\ntoken = \"{TOKEN}\"\n");
    let config = load(&text, &[]).unwrap();
    let telegram = config.telegram.clone().unwrap();
    assert_eq!(telegram, TelegramConfig::new(BotToken::new(TOKEN)));
    assert_eq!(telegram.network.as_str(), "telegram");
    assert!(problem_keys(&config).is_empty(), "{:?}", config.problems());
    // The token never shows in the config's Debug.
    assert!(!format!("{config:?}").contains("AAEexample"));
}

#[test]
fn telegram_problems_are_reported_under_telegram_and_need_a_parent() {
    let text = format!("{MINIMAL}[telegram]\ntoken = \"nope\"\nmode = \"webhook\"\npoll_timeout_secs = 99\n");
    let config = load(&text, &[]).unwrap();
    assert_eq!(
        problem_keys(&config),
        ["telegram.token", "telegram.poll_timeout_secs", "telegram.webhook", "identities.parent"]
    );
    let parent = config.problems().into_iter().find(|p| p.key == "identities.parent").unwrap();
    assert!(parent.message.contains("[telegram]"), "{}", parent.message);
    // An unknown key in the section is an error of the file, with its name.
    let err = load(&format!("{MINIMAL}[telegram]\ntoken = \"{TOKEN}\"\ntokn = 1\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("tokn"), "{err}");
}

#[test]
fn the_environment_sets_telegram_keys_and_creates_the_section() {
    let parent = ("DM3_BRIDGE_IDENTITIES__PARENT", PARENT);
    // The token alone from the environment makes a Telegram bot.
    let config = load(MINIMAL, &[parent, ("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN)]).unwrap();
    assert_eq!(config.telegram, Some(TelegramConfig::new(BotToken::new(TOKEN))));
    assert!(problem_keys(&config).is_empty(), "{:?}", config.problems());

    // Every key of the section, over the file; sub-tables as TOML inline values.
    let file = format!("{MINIMAL}[telegram]\ntoken = \"1:file\"\nmode = \"polling\"\n");
    let config = load(
        &file,
        &[
            parent,
            ("DM3_BRIDGE_TELEGRAM__TOKEN", TOKEN),
            ("DM3_BRIDGE_TELEGRAM__MODE", "webhook"),
            ("DM3_BRIDGE_TELEGRAM__NETWORK", "telegram-2"),
            ("DM3_BRIDGE_TELEGRAM__POLL_TIMEOUT_SECS", "10"),
            ("DM3_BRIDGE_TELEGRAM__API_URL", "http://127.0.0.1:8081"),
            ("DM3_BRIDGE_TELEGRAM__LINK_POLICY", r#"{ allow = "users", users = [7, 8] }"#),
            (
                "DM3_BRIDGE_TELEGRAM__WEBHOOK",
                r#"{ public_base_url = "https://bridge.example.org", secret = "0123456789abcdef0123" }"#,
            ),
        ],
    )
    .unwrap();
    let telegram = config.telegram.clone().unwrap();
    assert_eq!(telegram.token.expose(), TOKEN);
    assert_eq!(telegram.mode, ReceiveMode::Webhook);
    assert_eq!(telegram.network.as_str(), "telegram-2");
    assert_eq!(telegram.poll_timeout_secs, 10);
    assert_eq!(telegram.api_url.as_ref().map(|u| u.as_str()), Some("http://127.0.0.1:8081/"));
    assert_eq!(telegram.link_policy, LinkPolicy::Users { users: vec![7, 8] });
    let webhook = telegram.webhook.unwrap();
    assert_eq!(webhook.secret.expose(), "0123456789abcdef0123");
    assert_eq!(webhook.public_base_url.as_str(), "https://bridge.example.org/");
    assert!(problem_keys(&config).is_empty(), "{:?}", config.problems());

    // A misspelt key is an error that names it; a section without its token cannot be read.
    let err = load(MINIMAL, &[("DM3_BRIDGE_TELEGRAM__TOKN", TOKEN)]).unwrap_err();
    assert!(err.to_string().contains("telegram.tokn"), "{err}");
    let err = load(MINIMAL, &[("DM3_BRIDGE_TELEGRAM__MODE", "webhook")]).unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
}

#[test]
fn the_init_template_has_telegram_commented_out_and_valid_once_uncommented() {
    let (_dir, config_file) = support::node::init_data_dir();
    let text = std::fs::read_to_string(&config_file).unwrap();
    let config = Config::from_toml(&text, &config_file, []).unwrap();
    assert_eq!(config.telegram, None, "a fresh node must run without Telegram");

    // Uncomment the settings (not the prose) of the section, as an operator would.
    let start = text.find("# [telegram]").expect("the template has a [telegram] example");
    let (head, section) = text.split_at(start);
    let uncommented: String = section
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with(|c: char| c == '[' || c.is_ascii_lowercase()) => rest.to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\"123456789:AAE...\"", &format!("\"{TOKEN}\""))
        .replace("secret = \"...\"", "secret = \"0123456789abcdef0123\"");
    let config = Config::from_toml(
        &format!("{head}{uncommented}\n"),
        &config_file,
        [("DM3_BRIDGE_IDENTITIES__PARENT".to_owned(), PARENT.to_owned())],
    )
    .unwrap();
    let telegram = config.telegram.clone().expect("the uncommented section is read");
    assert_eq!(telegram.mode, ReceiveMode::Polling);
    assert_eq!(telegram.link_policy, LinkPolicy::Everyone);
    assert!(telegram.webhook.is_some());
    assert!(config.problems().is_empty(), "{:?}", config.problems());
}

/// The network id the Telegram connector uses by default.
fn telegram_network() -> dm3_bridge_connector::NetworkId {
    dm3_bridge_connector::NetworkId::new("telegram").unwrap()
}
