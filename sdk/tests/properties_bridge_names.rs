//! The bridge name scheme (docs/names.md) as properties, on the SDK alone: a user's name reads
//! back as that user for every valid Matrix and Telegram id (but those whose label had to be
//! hashed), and any text into any of the scheme's parsers gives a value or an error, never a
//! panic; a Telegram username's alias reads back as that username, and only valid usernames
//! have one. The node's own suite (`tests/identity_labels.rs`) checks injectivity, canonical
//! decoding and agreement with ethers through the same code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dm3::bridge_names::label::{parse_matrix_label, parse_telegram_label, unescape};
use dm3::bridge_names::username::{alias_label, parse_alias_label};
use dm3::bridge_names::{Addressee, MatrixUserId, NameScheme, NetworkUserId, ParsedName, TelegramUsername};
use dm3::ens::EnsName;
use dm3::network::Network;
use proptest::prelude::*;

fn scheme() -> NameScheme {
    NameScheme::new("bridge.example.eth", "tg", "mx").unwrap()
}

/// Any valid Matrix id: a historical-grammar localpart, and a host name, IPv4 or [IPv6]
/// server with an optional port.
fn matrix_id() -> impl Strategy<Value = MatrixUserId> {
    let localpart = proptest::collection::vec(prop_oneof![(0x21u8..=0x39), (0x3bu8..=0x7e)], 1..=60)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect::<String>());
    let host = prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9.-]{0,40}",
        any::<[u8; 4]>().prop_map(|ip| std::net::Ipv4Addr::from(ip).to_string()),
        any::<u128>().prop_map(|v6| format!("[{}]", std::net::Ipv6Addr::from(v6))),
    ];
    (localpart, host, proptest::option::of(1u16..)).prop_map(|(local, host, port)| {
        let server = port.map_or(host.clone(), |port| format!("{host}:{port}"));
        format!("@{local}:{server}").parse().unwrap()
    })
}

/// Any username Telegram gives out, in any case: 5–32 of `a-z 0-9 _`, a letter first, no `__`,
/// no `_` last.
fn telegram_username() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_]{3,30}[a-zA-Z0-9]".prop_map(|text| {
        let mut username = String::new();
        for ch in text.chars() {
            if !(ch == '_' && username.ends_with('_')) {
                username.push(ch);
            }
        }
        while username.len() < 5 {
            username.push('0');
        }
        username
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn a_usernames_alias_reads_back_as_the_username(typed in telegram_username()) {
        let username: TelegramUsername = typed.parse().unwrap();
        prop_assert_eq!(username.as_str(), typed.to_ascii_lowercase());
        let (label, name) = scheme().name_of(&Addressee::parse(Network::Telegram, &format!("@{typed}")).unwrap()).unwrap();
        prop_assert!(label.len() <= 34 && !label.contains("--") && !label.ends_with('-'), "{}", label);
        prop_assert_eq!(parse_alias_label(&label).unwrap(), username.clone());
        prop_assert_eq!(scheme().parse(&name).unwrap(), ParsedName::TelegramAlias { label, username });
    }

    #[test]
    fn two_usernames_never_share_an_alias(a in telegram_username(), b in telegram_username()) {
        let (a, b): (TelegramUsername, TelegramUsername) = (a.parse().unwrap(), b.parse().unwrap());
        prop_assert_eq!(alias_label(&a) == alias_label(&b), a == b);
    }

    #[test]
    fn any_text_is_a_username_or_refused_and_any_label_an_alias_or_refused(text in "@?[a-zA-Z0-9_-]{0,40}|\\PC{0,40}") {
        if let Ok(username) = text.parse::<TelegramUsername>() {
            let bare = username.as_str();
            prop_assert!((5..=32).contains(&bare.len()));
            prop_assert!(bare.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
        match parse_alias_label(&text) {
            Ok(username) => prop_assert_eq!(alias_label(&username), text),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn a_users_name_reads_back_as_the_user(id in matrix_id(), tg in 1u64..) {
        for user in [NetworkUserId::Matrix(id), NetworkUserId::Telegram(tg.to_string().parse().unwrap())] {
            let (label, name) = scheme().name_for(&user).unwrap();
            let hashed = label.starts_with("-z");
            let expected = ParsedName::Identity {
                network: user.network(),
                label,
                user: (!hashed).then(|| user.clone()),
            };
            prop_assert_eq!(scheme().parse(&name).unwrap(), expected);
            // As a person would type it: upper case folds to the same name (ENS does too).
            let typed = EnsName::parse(&name.as_str().to_ascii_uppercase()).unwrap();
            prop_assert_eq!(typed, name);
        }
    }

    #[test]
    fn any_text_is_a_user_id_or_an_error(text in "\\PC{0,80}|@[ -~]{0,300}") {
        for network in Network::ALL {
            if let Ok(user) = NetworkUserId::parse(network, &text) {
                prop_assert_eq!(user.user_id(), text.clone());
                scheme().name_for(&user).unwrap();
            }
        }
    }

    #[test]
    fn any_label_or_name_is_read_or_refused_with_a_reason(text in "[a-z0-9.-]{0,90}|\\PC{0,40}") {
        for result in [parse_matrix_label(&text).map(|_| ()), parse_telegram_label(&text).map(|_| ()), unescape(&text).map(|_| ())] {
            if let Err(error) = result {
                prop_assert!(!error.to_string().is_empty());
            }
        }
        if let Ok(name) = EnsName::parse(&format!("{text}.mx.bridge.example.eth"))
            && let Err(error) = scheme().parse(&name)
        {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
