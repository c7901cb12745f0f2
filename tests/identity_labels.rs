//! The name scheme's promises (docs/names.md), as properties: every network user id maps to
//! exactly one ENS-normalized label, the mapping reverses, and no two users share a label.
//! The last test checks the labels against ethers 5.7.2's own normalization and namehash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Command;

use dm3::ens::{EnsName, namehash};
use dm3_bridge::identities::label::{
    MAX_LABEL_LEN, MatrixLabel, escape, matrix_label, parse_matrix_label, parse_telegram_label,
    telegram_label, unescape,
};
use dm3_bridge::identities::scheme::ParsedName;
use dm3_bridge::identities::{MatrixUserId, NameScheme, NetworkUserId, TelegramUserId};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;

/// Printable ASCII without ':' (the Matrix spec's historical localpart grammar).
fn localpart(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![(0x21u8..=0x39), (0x3bu8..=0x7e)], 1..=max)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// Mostly the characters that escape differently, so near-collisions are common.
fn tricky_localpart() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'A', 'z', '0', '-', '_', '.', '=', 'p', 's', 'h', 'u']),
        1..8,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn server() -> impl Strategy<Value = String> {
    ("[a-zA-Z0-9][a-zA-Z0-9.-]{0,30}", proptest::option::of(1u16..)).prop_map(|(host, port)| match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn matrix_id(max_localpart: usize) -> impl Strategy<Value = MatrixUserId> {
    (localpart(max_localpart), server())
        .prop_map(|(local, server)| format!("@{local}:{server}").parse().unwrap())
}

fn tricky_matrix_id() -> impl Strategy<Value = MatrixUserId> {
    (tricky_localpart(), prop::sample::select(vec!["h", "h.p", "H", "h:1", "a-b"]))
        .prop_map(|(local, server)| format!("@{local}:{server}").parse().unwrap())
}

/// What every label must be: short, in the alphabet, ENS-normalized (unchanged by parsing).
fn assert_normalized_label(label: &str) {
    assert!(!label.is_empty() && label.len() <= MAX_LABEL_LEN, "{label}");
    assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{label}");
    assert!(!label.contains("--") && !label.ends_with('-'), "{label}");
    assert_eq!(EnsName::parse(label).unwrap().as_str(), label);
}

fn scheme() -> NameScheme {
    NameScheme::new("bridge.example.eth", "tg", "mx").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn matrix_labels_are_normalized_and_reverse(id in matrix_id(120)) {
        let label = matrix_label(&id);
        assert_normalized_label(&label);
        match parse_matrix_label(&label).unwrap() {
            MatrixLabel::Escaped(back) => prop_assert_eq!(back, id),
            MatrixLabel::Hashed => prop_assert!(escape(&id.as_str()[1..]).len() > MAX_LABEL_LEN),
        }
    }

    #[test]
    fn full_names_reverse_through_the_scheme(id in matrix_id(40), tg in 1u64..) {
        for user in [NetworkUserId::Matrix(id), NetworkUserId::Telegram(TelegramUserId::new(tg).unwrap())] {
            let (label, name) = scheme().name_for(&user).unwrap();
            prop_assert_eq!(EnsName::parse(name.as_str()).unwrap(), name.clone());
            let network = user.network();
            let parsed = scheme().parse(&name).unwrap();
            let expected_user = match &parsed {
                ParsedName::Identity { user: None, .. } => None,
                _ => Some(user),
            };
            prop_assert_eq!(parsed, ParsedName::Identity { network, label, user: expected_user });
        }
    }

    /// Injectivity where it is most at risk: ids built from the characters with special escapes.
    #[test]
    fn distinct_matrix_ids_get_distinct_labels(a in tricky_matrix_id(), b in tricky_matrix_id()) {
        prop_assert_eq!(a == b, matrix_label(&a) == matrix_label(&b));
    }

    #[test]
    fn escaping_reverses_on_any_text(text in "\\PC{0,40}") {
        let escaped = escape(&text);
        prop_assert!(escaped.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        prop_assert!(!escaped.contains("--"));
        prop_assert_eq!(unescape(&escaped).unwrap(), text);
    }

    /// Any label either is refused or is the one canonical label of its user.
    #[test]
    fn random_labels_decode_only_canonically(label in "[a-z0-9-]{1,70}") {
        if let Ok(MatrixLabel::Escaped(id)) = parse_matrix_label(&label) {
            prop_assert_eq!(matrix_label(&id), label.clone());
        }
        if let Ok(id) = parse_telegram_label(&label) {
            prop_assert_eq!(telegram_label(id), label);
        }
    }

    #[test]
    fn telegram_labels_reverse(id in 1u64..) {
        let label = telegram_label(TelegramUserId::new(id).unwrap());
        assert_normalized_label(&label);
        prop_assert_eq!(parse_telegram_label(&label).unwrap().get(), id);
    }
}

/// A fixed table of distinct ids, all pairs checked: a cheap exhaustive complement.
#[test]
fn hand_picked_near_collisions_stay_apart() {
    let ids = [
        "@bob:example.org",
        "@Bob:example.org",
        "@bob:example-org",
        "@bob.example:org",
        "@bob_:example.org",
        "@bob-:example.org",
        "@bob=:example.org",
        "@bo-62:x",
        "@bo-b:x",
        "@bob:x",
        "@bo_b:x",
        "@bo.b:x",
        "@b:ob.x",
        "@b.o:b.x",
        "@-:x",
        "@_:x",
        "@.:x",
        "@=:x",
        "@--:x",
        "@-h:x",
        "@-p:x",
        "@p:x",
        "@h:x",
    ];
    let mut seen = HashMap::new();
    for id in ids {
        let id: MatrixUserId = id.parse().unwrap();
        let label = matrix_label(&id);
        assert_normalized_label(&label);
        if let Some(other) = seen.insert(label.clone(), id.clone()) {
            panic!("{id} and {other} share the label {label}");
        }
    }
}

/// ethers 5.7.2, which the reference DM3 libraries resolve names with, normalizes our names
/// to themselves and hashes them as we do.
#[test]
fn ethers_agrees_on_names_and_namehashes() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut names = vec![
        scheme()
            .name_for(&"@Bob_x:example.org".parse::<MatrixUserId>().map(NetworkUserId::Matrix).unwrap())
            .unwrap()
            .1,
        scheme().name_for(&NetworkUserId::Telegram(TelegramUserId::new(12345).unwrap())).unwrap().1,
    ];
    for _ in 0..200 {
        let id = matrix_id(80).new_tree(&mut runner).unwrap().current();
        names.push(scheme().name_for(&NetworkUserId::Matrix(id)).unwrap().1);
    }
    // Telegram username aliases (docs/names.md, "Telegram username aliases"), the longest too.
    for username in ["carol_x", "Carol_X_2", "a1_b2_c3_d4_e5_f6_g7_h8_i9_j0_kk", "abcde"] {
        names.push(scheme().alias_for(&username.parse().unwrap()).unwrap().1);
    }
    let script = r#"
        const { ethers } = require("ethers");
        const names = JSON.parse(require("fs").readFileSync(0, "utf8"));
        console.log(JSON.stringify(names.map((n) => [ethers.utils.namehash(n), ethers.utils.dnsEncode(n).length])));
    "#;
    let contracts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contracts");
    let mut child = Command::new("node")
        .args(["-e", script])
        .current_dir(&contracts)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node (run scripts/install-contract-deps.sh for ethers)");
    let input: Vec<&str> = names.iter().map(EnsName::as_str).collect();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        serde_json::to_string(&input).unwrap().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "ethers refused a name: {}", String::from_utf8_lossy(&output.stderr));
    let answers: Vec<(String, usize)> = serde_json::from_slice(&output.stdout).unwrap();
    for (name, (hash, _)) in names.iter().zip(answers) {
        assert_eq!(namehash(name).to_hex(), hash, "{name}");
    }
}
