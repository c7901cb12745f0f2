//! Live interop: ENS names as ethers 5.7.2 (the reference libraries' ethers) normalizes and
//! hashes them. Where ethers accepts a name, ours must be the same text with the same namehash
//! or a refusal (docs/protocol.md §2.2); names a DM3 user can type with a full-width keyboard
//! must resolve as the reference client resolves them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use dm3::ens::{EnsName, namehash};
use serde_json::json;
use support::oracle::with_oracle;

#[test]
fn full_width_and_mixed_case_names_normalize_and_hash_as_ethers_does() {
    let names = [
        "alice.eth",
        "Alice.ETH",
        "ａｌｉｃｅ.eth",
        "ＡＬＩＣＥ.ｅｔｈ",
        "tg-１２３４５.tg.bridge.eth",
        "ｔｇ－１２３.tg.bridge.eth",
        "0xＡＢＣ.addr.dm3.eth",
        "bob-sexample-porg.mx.bridge.eth",
        "ａ１_ｂ.eth",
        "café.eth",
    ];
    with_oracle(|oracle| {
        for input in names {
            let reference = oracle.must("ens_normalize", json!({ "name": input }));
            let ours = EnsName::parse(input);
            match (reference.get("name").and_then(|n| n.as_str()), ours) {
                (Some(expected), Ok(name)) => {
                    assert_eq!(name.as_str(), expected, "{input:?}");
                    assert_eq!(
                        namehash(&name).to_hex(),
                        reference["namehash"].as_str().unwrap(),
                        "{input:?}"
                    );
                }
                (Some(expected), Err(error)) => {
                    panic!("ethers accepts {input:?} as {expected:?}, we refuse it: {error}")
                }
                (None, Ok(name)) => panic!("ethers refuses {input:?} ({reference}), we accept {name}"),
                (None, Err(_)) => {}
            }
        }
    });
}
