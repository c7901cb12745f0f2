//! Smoke test of the reference-oracle client: spawns `interop/oracle.js`
//! and checks that it canonicalizes like dm3-lib-shared does.
//! Needs `scripts/install-node-deps.sh` to have run; fails (never skips)
//! otherwise.

mod support;

use serde_json::json;
use support::oracle::{Oracle, random_json_corpus, with_oracle};

#[test]
fn stringify_through_the_oracle() {
    let canonical =
        with_oracle(|o| o.must("stringify", json!({ "value": { "b": 1, "a": [true, null, "ü"] } })));
    assert_eq!(canonical, json!(r#"{"a":[true,null,"ü"],"b":1}"#));

    // Raw JSON text keeps the odd spellings away from serde_json.
    let canonical =
        with_oracle(|o| o.must("stringify_text", json!({ "text": r#"{"x":1E+21,"\u00e9":-0,"y":1.0}"# })));
    assert_eq!(canonical, json!(r#"{"x":1e+21,"y":1,"é":0}"#));
}

#[test]
fn oracle_errors_are_errors() {
    let mut oracle = Oracle::spawn();
    let err = oracle.call("no_such_op", json!({})).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("unknown op"), "got: {err}");
    // The oracle survives a bad request.
    assert_eq!(oracle.must("ping", json!({})), json!("pong"));
}

#[test]
fn random_corpus_agrees_with_the_oracle() -> anyhow::Result<()> {
    let corpus = random_json_corpus(200, 7)?;
    assert_eq!(corpus.len(), 200);
    with_oracle(|o| {
        for entry in &corpus {
            let canonical = o.call("stringify_text", json!({ "text": entry.text }))?;
            assert_eq!(canonical, json!(entry.canonical), "text: {}", entry.text);
        }
        Ok(())
    })
}
