//! Live interop: canonical JSON against `dm3-lib-shared`'s `stringify`
//! (safe-stable-stringify 2.4.3), on 10,000 random documents written by the
//! reference side and on random values generated here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use dm3::canonical::stringify;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Number, Value, json};
use support::oracle::{random_json_corpus, with_oracle};

#[test]
fn ten_thousand_reference_documents_canonicalize_identically() {
    let corpus = random_json_corpus(10_000, 20261126).expect("the corpus generator runs");
    assert_eq!(corpus.len(), 10_000);
    let mut mismatches = Vec::new();
    for entry in &corpus {
        let parsed: Value = serde_json::from_str(&entry.text)
            .unwrap_or_else(|e| panic!("serde_json rejects {:?}: {e}", entry.text));
        let ours = stringify(&parsed);
        if ours != entry.canonical {
            mismatches.push((entry.text.clone(), ours, entry.canonical.clone()));
        }
    }
    assert!(mismatches.is_empty(), "{} of 10000 differ; first: {:#?}", mismatches.len(), mismatches.first());
}

fn arb_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-400i32..400, any::<u32>()).prop_filter_map("finite", |(exp, mantissa)| {
            Number::from_f64(f64::from(mantissa) * 10f64.powi(exp))
        }),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number.prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
        "[\\u{0}-\\u{1f}\\u{7f}\\u{2028}\\u{fb01}\\u{1f600}\"\\\\/]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z0-9\\u{e9}\\u{fb01}\\u{1f600}]{0,4}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[test]
fn random_values_generated_here_canonicalize_identically() {
    let mut runner = TestRunner::new(Config { cases: 1500, ..Config::default() });
    runner
        .run(&arb_value(), |value| {
            let reference = with_oracle(|o| o.must("stringify", json!({ "value": value })));
            prop_assert_eq!(Value::String(stringify(&value)), reference);
            Ok(())
        })
        .unwrap();
}
