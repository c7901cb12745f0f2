//! `dm3 name-for` and `dm3 parse-name`, the binary as a person runs it: the documented
//! examples, name-for then parse-name giving back the user for random valid Matrix and Telegram
//! ids, and every kind of bad input answered by exit code and one clear line, never a panic.
//! The scheme itself is property-tested in `properties_bridge_names.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use proptest::prelude::*;
use serde_json::{Value, json};

const PARENT: &str = "bridge.example.eth";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dm3(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_dm3")).args(args).output().unwrap();
    let run = Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    if run.code == 0 {
        assert!(run.stdout.ends_with('\n') && run.stdout.lines().count() == 1, "{:?}", run.stdout);
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    } else {
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(!run.stderr.trim().is_empty(), "a failure says why");
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    run
}

fn ok(args: &[&str]) -> String {
    let run = dm3(args);
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout.trim_end().to_owned()
}

fn fails(args: &[&str], code: i32, says: &str) {
    let run = dm3(args);
    assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
    assert!(run.stderr.contains(says), "{args:?}: {:?} does not say {says:?}", run.stderr);
}

#[test]
fn the_documented_examples() {
    let carol = ok(&["name-for", "matrix", "@carol:example.org", "--parent", PARENT]);
    assert_eq!(carol, "carol-sexample-porg.mx.bridge.example.eth");
    assert_eq!(ok(&["name-for", "telegram", "12345", "--parent", PARENT]), "tg-12345.tg.bridge.example.eth");
    assert_eq!(
        ok(&["name-for", "matrix", "@Bob_x:example.org", "--parent", PARENT]),
        "-42ob-ux-sexample-porg.mx.bridge.example.eth"
    );
    assert_eq!(ok(&["parse-name", &carol, "--parent", PARENT]), "matrix @carol:example.org");
    // A name that starts with '-' is a name, not a flag.
    assert_eq!(
        ok(&["parse-name", "-42ob-ux-sexample-porg.mx.bridge.example.eth", "--parent", PARENT]),
        "matrix @Bob_x:example.org"
    );
    let parsed: Value = serde_json::from_str(&ok(&[
        "parse-name",
        "tg-12345.tg.bridge.example.eth",
        "--parent",
        PARENT,
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        parsed,
        json!({"label": "tg-12345", "name": "tg-12345.tg.bridge.example.eth", "network": "telegram", "userId": "12345"})
    );
    let made: Value =
        serde_json::from_str(&ok(&["name-for", "telegram", "12345", "--parent", PARENT, "--json"])).unwrap();
    assert_eq!(made, parsed);
}

#[test]
fn a_telegram_username_has_an_alias() {
    let alias = ok(&["name-for", "telegram", "@Carol_X", "--parent", PARENT]);
    assert_eq!(alias, "u-carol-x.tg.bridge.example.eth");
    assert_eq!(ok(&["parse-name", &alias, "--parent", PARENT]), "telegram @carol_x");
    let parsed: Value =
        serde_json::from_str(&ok(&["parse-name", &alias, "--parent", PARENT, "--json"])).unwrap();
    assert_eq!(
        parsed,
        json!({"label": "u-carol-x", "name": "u-carol-x.tg.bridge.example.eth", "network": "telegram", "userId": "@carol_x"})
    );
    let made: Value =
        serde_json::from_str(&ok(&["name-for", "telegram", "@carol_x", "--parent", PARENT, "--json"]))
            .unwrap();
    assert_eq!(made, parsed);
    for (username, says) in [
        ("@car", "5 to 32 characters"),
        ("@carol-x", "only letters a-z, digits and _"),
        ("@1carol", "begin with a letter"),
        ("@carol_", "may not end with _"),
        ("@car__ol", "nor hold __"),
    ] {
        fails(&["name-for", "telegram", username, "--parent", PARENT], 2, says);
    }
    for (name, says) in [
        ("u-carol-.tg.bridge.example.eth", "may not end with _"),
        ("u-car.tg.bridge.example.eth", "5 to 32 characters"),
        ("u-carol-x.mx.bridge.example.eth", "escape"),
    ] {
        fails(&["parse-name", name, "--parent", PARENT], 2, says);
    }
}

#[test]
fn the_parent_and_sub_labels_are_inputs() {
    let args = ["--parent", "Other.ETH", "--telegram-label", "telegram", "--matrix-label", "matrix"];
    let name = ok(&[&["name-for", "telegram", "7"], &args[..]].concat());
    assert_eq!(name, "tg-7.telegram.other.eth", "the parent is normalized as ENS does");
    assert_eq!(ok(&[&["parse-name", &name], &args[..]].concat()), "telegram 7");
    // Under another bridge's parent, or another sub-label, it is not this bridge's name.
    fails(&["parse-name", &name, "--parent", PARENT], 1, "not under the parent bridge.example.eth");
    fails(&["parse-name", &name, "--parent", "other.eth"], 1, "names no user");
}

#[test]
fn a_missing_parent_says_what_to_give() {
    fails(&["name-for", "matrix", "@carol:example.org"], 2, "--parent is required");
    fails(&["parse-name", "tg-1.tg.bridge.example.eth"], 2, "--parent is required");
    fails(&["name-for", "telegram", "1", "--parent", "bad..name"], 2, "--parent");
    fails(&["name-for", "telegram", "1", "--parent", PARENT, "--matrix-label", "tg"], 2, "sub-label");
}

#[test]
fn invalid_ids_are_refused_with_the_reason() {
    for (network, user, says) in [
        ("telegram", "0", "not a Telegram user id"),
        ("telegram", "012", "not a Telegram user id"),
        ("telegram", "-5", "not a Telegram user id"),
        ("telegram", "12a", "not a Telegram user id"),
        ("telegram", "", "not a Telegram user id"),
        ("matrix", "carol:example.org", "does not start with @"),
        ("matrix", "@carol", "no :server part"),
        ("matrix", "@:example.org", "localpart is empty"),
        ("matrix", "@ca rol:example.org", "printable ASCII"),
        ("matrix", "@carol:exa mple.org", "server name"),
        ("matrix", "@carolé:example.org", "printable ASCII"),
    ] {
        fails(&["name-for", network, user, "--parent", PARENT], 2, says);
    }
    let long = format!("@{}:example.org", "a".repeat(250));
    fails(&["name-for", "matrix", &long, "--parent", PARENT], 2, "longer than 255 bytes");
    fails(&["name-for", "irc", "carol", "--parent", PARENT], 2, "not matrix or telegram");
}

#[test]
fn names_that_are_no_user_of_the_bridge_are_refused_with_the_reason() {
    for (name, code, says) in [
        ("alice.eth", 1, "not under the parent"),
        ("bridge.example.eth", 1, "names no user"),
        ("mx.bridge.example.eth", 1, "names no user"),
        ("x.ds.bridge.example.eth", 1, "names no user"),
        ("tg-012.tg.bridge.example.eth", 2, "tg- and a user id"),
        ("a.tg-1.tg.bridge.example.eth", 2, "exactly one label"),
        ("-62ob-sx.mx.bridge.example.eth", 2, "not in canonical form"),
        ("bob.mx.bridge.example.eth", 2, "not a Matrix user id"),
        ("bob-.mx.bridge.example.eth", 2, "escape"),
        ("-zabc.mx.bridge.example.eth", 2, "hashed label"),
        ("", 2, "the name is empty"),
        ("a..b", 2, "not an ENS name"),
    ] {
        fails(&["parse-name", name, "--parent", PARENT], code, says);
    }
    // An id too long for a label gets a hashed one, which only the node can read back.
    let long = format!("@{}:example.org", "a".repeat(60));
    let name = ok(&["name-for", "matrix", &long, "--parent", PARENT]);
    assert!(name.starts_with("-z"), "{name}");
    fails(&["parse-name", &name, "--parent", PARENT], 1, "only the bridge's node knows");
}

/// Printable ASCII without ':' (the Matrix spec's historical localpart grammar).
fn localpart() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![(0x21u8..=0x39), (0x3bu8..=0x7e)], 1..=24)
        .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// A host name, IPv4 or [IPv6] address, with an optional port.
fn server() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9.-]{0,20}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<u128>().prop_map(|v6| format!("[{}]", std::net::Ipv6Addr::from(v6))),
    ];
    (host, proptest::option::of(1u16..)).prop_map(|(host, port)| match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

proptest! {
    // Each case runs the binary twice; the library property runs thousands.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn name_for_then_parse_name_gives_back_the_matrix_user(local in localpart(), server in server()) {
        let id = format!("@{local}:{server}");
        let name = ok(&["name-for", "matrix", &id, "--parent", PARENT]);
        let run = dm3(&["parse-name", &name, "--parent", PARENT, "--json"]);
        if name.starts_with("-z") {
            // Too long to escape within 63 bytes: hashed, and said so.
            prop_assert_eq!(run.code, 1);
            prop_assert!(run.stderr.contains("hashed label"));
        } else {
            prop_assert_eq!(run.code, 0, "{}", run.stderr);
            let parsed: Value = serde_json::from_str(&run.stdout).unwrap();
            prop_assert_eq!(parsed, json!({
                "label": name.split('.').next().unwrap(),
                "name": name,
                "network": "matrix",
                "userId": id,
            }));
        }
    }

    #[test]
    fn name_for_then_parse_name_gives_back_the_telegram_user(id in 1u64..) {
        let name = ok(&["name-for", "telegram", &id.to_string(), "--parent", PARENT]);
        prop_assert_eq!(ok(&["parse-name", &name, "--parent", PARENT]), format!("telegram {id}"));
    }

    #[test]
    fn name_for_then_parse_name_gives_back_the_telegram_username(username in "[a-z][a-z0-9]{3,14}(_[a-z0-9]{1,8})?[a-z0-9]{1,8}") {
        let name = ok(&["name-for", "telegram", &format!("@{username}"), "--parent", PARENT]);
        prop_assert_eq!(ok(&["parse-name", &name, "--parent", PARENT]), format!("telegram @{username}"));
    }

    #[test]
    fn any_argument_gets_an_answer_or_a_reason(text in "\\PC{0,40}", network in "matrix|telegram|x") {
        dm3(&["name-for", &network, &text, "--parent", PARENT]);
        dm3(&["parse-name", &text, "--parent", PARENT]);
    }
}
