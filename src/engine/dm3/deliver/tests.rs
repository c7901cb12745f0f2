#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::dm3::ds_profile::DeliveryServiceKeys;
use ::dm3::message::Message;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dm3_bridge_connector::BoxFuture;

use super::*;
use crate::engine::dm3::testkit::{self, Unreachable, User};
use crate::names::directory::NoLinks;

/// Records every envelope and answers each service from a script (default: accept).
#[derive(Default)]
struct ScriptedTarget {
    answers: Mutex<HashMap<String, Vec<Result<(), SubmitError>>>>,
    posted: Mutex<Vec<(String, Envelope)>>,
}

impl ScriptedTarget {
    fn answer(&self, service: &str, answer: Result<(), SubmitError>) {
        self.answers.lock().unwrap().entry(service.to_owned()).or_default().push(answer);
    }

    fn posted_to(&self) -> Vec<String> {
        self.posted.lock().unwrap().iter().map(|(name, _)| name.clone()).collect()
    }
}

impl DeliveryTarget for ScriptedTarget {
    fn submit<'a>(
        &'a self,
        service: &'a ServiceEndpoint,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), SubmitError>> {
        let name = service.name.to_string();
        self.posted.lock().unwrap().push((name.clone(), envelope.clone()));
        let answer =
            self.answers.lock().unwrap().get_mut(&name).and_then(|queue| queue.pop()).unwrap_or(Ok(()));
        Box::pin(async move { answer })
    }
}

/// Alice (on DM3) lists two delivery services; Bob's identity writes to her.
struct World {
    alice: User,
    bob: User,
    services: Vec<(String, DeliveryServiceKeys)>,
    directory: Directory,
    message: Message,
}

fn world() -> World {
    let (alice, bob) = (User::new("alice.eth"), User::new("tg-1.bridge.eth"));
    let (first_keys, first) = testkit::delivery_service(1, "https://one.example.org/ds");
    let (second_keys, second) = testkit::delivery_service(3, "https://two.example.org/ds");
    let resolver = testkit::resolver(&[&alice, &bob], &[("one.eth", &first), ("two.eth", &second)]);
    let message = bob.sign(bob.builder_to(&alice, 9).text("hello", None));
    World {
        alice,
        bob,
        services: vec![("one.eth".into(), first_keys), ("two.eth".into(), second_keys)],
        directory: testkit::directory(resolver),
        message,
    }
}

impl World {
    async fn deliver(
        &self,
        target: &dyn DeliveryTarget,
        accepted: &[String],
    ) -> Result<DeliveryReport, DeliverError> {
        deliver(&self.message, &self.bob.keys.profile_keys().signing, &self.directory, target, accepted).await
    }
}

fn unavailable(after: Option<u64>) -> SubmitError {
    SubmitError::Unavailable { retry_after: after.map(Duration::from_secs), reason: "HTTP 503".into() }
}

fn refused() -> SubmitError {
    SubmitError::Refused { status: Some(400), code: Some(-32001), message: "unknown account".into() }
}

#[tokio::test]
async fn one_envelope_per_delivery_service_each_sealed_for_it() {
    let w = world();
    let target = ScriptedTarget::default();
    let report = w.deliver(&target, &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()));
    assert_eq!(report.accepted(), ["one.eth", "two.eth"]);
    assert_eq!(report.message_hash, w.message.hash());
    let posted = target.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 2);
    assert_ne!(posted[0].1.message(), posted[1].1.message(), "fresh ciphertext per service");
    for ((service, envelope), (name, keys)) in posted.iter().zip(&w.services) {
        assert_eq!(service, name);
        assert_eq!(envelope.message_hash(), Some(w.message.hash()), "current format (P1)");
        // The delivery information opens only with that service's key.
        let delivery = envelope.delivery_information(&keys.encryption).unwrap();
        assert_eq!((delivery.to(), delivery.from()), ("alice.eth", "tg-1.bridge.eth"));
        let opened = envelope.open(w.alice.encryption()).unwrap();
        assert_eq!(opened.message, w.message);
        let sender =
            ::dm3::crypto::signing::VerifyKey::from_bytes(&w.bob.keys.profile_keys().signing.public())
                .unwrap();
        assert_eq!(envelope.verify_metadata(&sender), Ok(()));
    }
}

#[tokio::test]
async fn a_service_that_may_recover_is_retried_alone() {
    let w = world();
    let target = ScriptedTarget::default();
    target.answer("two.eth", Err(unavailable(Some(30))));
    let report = w.deliver(&target, &[]).await.unwrap();
    let error = report.outcome().unwrap_err();
    assert_eq!(error.kind(), FailureKind::Retryable { after: Some(Duration::from_secs(30)) });
    assert!(error.to_string().contains("two.eth"), "{error}");
    let accepted = report.accepted();
    assert_eq!(accepted, ["one.eth"]);

    // The retry posts only to the service that did not take it.
    let retry = ScriptedTarget::default();
    let report = w.deliver(&retry, &accepted).await.unwrap();
    assert_eq!(report.outcome(), Ok(()));
    assert_eq!(retry.posted_to(), ["two.eth"]);
    assert_eq!(report.services[0].result, Ok(Delivered::Earlier));
}

#[tokio::test]
async fn refusals_are_final_and_count_only_when_nobody_accepted() {
    let w = world();
    let target = ScriptedTarget::default();
    target.answer("one.eth", Err(refused()));
    let report = w.deliver(&target, &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()), "Alice fetches from two.eth");
    assert_eq!(report.refused().len(), 1);

    let target = ScriptedTarget::default();
    target.answer("one.eth", Err(refused()));
    target.answer("two.eth", Err(refused()));
    let error = w.deliver(&target, &[]).await.unwrap().outcome().unwrap_err();
    assert!(matches!(error, DeliverError::Refused { .. }), "{error}");
    assert_eq!(error.kind(), FailureKind::Permanent);
    assert!(error.to_string().contains("unknown account"), "{error}");

    // A refusal and a service that may recover: wait for the latter.
    let target = ScriptedTarget::default();
    target.answer("one.eth", Err(refused()));
    target.answer("two.eth", Err(unavailable(None)));
    assert!(w.deliver(&target, &[]).await.unwrap().outcome().unwrap_err().kind().is_retryable());
}

#[tokio::test]
async fn recipients_and_services_that_do_not_resolve() {
    let w = world();
    let target = ScriptedTarget::default();
    let stranger = User::new("stranger.eth");
    let to_stranger = w.bob.sign(w.bob.builder_to(&stranger, 9).text("hi", None));
    let signing = &w.bob.keys.profile_keys().signing;
    let error = deliver(&to_stranger, signing, &w.directory, &target, &[]).await.unwrap_err();
    assert!(matches!(error, DeliverError::UnknownRecipient { .. }), "{error}");
    assert_eq!(error.kind(), FailureKind::Permanent);

    let offline = Directory::new(Arc::new(Unreachable), Arc::new(NoLinks));
    let error = deliver(&w.message, signing, &offline, &target, &[]).await.unwrap_err();
    assert!(error.kind().is_retryable(), "{error}");

    // Alice lists a service that has no profile: it fails for good, the other one accepts.
    let (_, profile) = testkit::delivery_service(1, "https://one.example.org/ds");
    let resolver = testkit::resolver(&[&w.alice, &w.bob], &[("one.eth", &profile)]);
    let alice_profile =
        ::dm3::profile::UserProfile::from_keys(w.alice.keys.profile_keys(), ["one.eth", "gone.eth"])
            .sign(w.alice.keys.wallet());
    let resolver = resolver.with_user(w.alice.name.clone(), w.alice.keys.address(), &alice_profile);
    let report = deliver(&w.message, signing, &testkit::directory(resolver), &target, &[]).await.unwrap();
    assert_eq!(report.outcome(), Ok(()));
    assert!(matches!(report.refused()[..], [("gone.eth", SubmitError::BadProfile(_))]));

    let unsigned = w.bob.builder_to(&w.alice, 9).text("hello", None);
    assert!(matches!(
        deliver(&unsigned, signing, &w.directory, &target, &[]).await,
        Err(DeliverError::BadMessage(_))
    ));
}

/// A delivery service over HTTP on 127.0.0.1 answering from a script.
async fn serve(answers: Vec<(StatusCode, HeaderMap, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let answers = Arc::new(Mutex::new(answers));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let app = Router::new().route(
        "/ds/rpc",
        post(move |body: String| {
            let answers = answers.clone();
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                answers.lock().unwrap().remove(0)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ds", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bodies)
}

fn endpoint(url: &str) -> ServiceEndpoint {
    let (_, profile) = testkit::delivery_service(1, url);
    ServiceEndpoint { name: "one.eth".parse().unwrap(), profile }
}

fn options(timeout_ms: u64) -> HttpTargetOptions {
    HttpTargetOptions {
        timeout: Duration::from_millis(timeout_ms),
        max_response_bytes: 1024,
        allow_private_addresses: true,
    }
}

#[tokio::test]
async fn http_submits_are_classified_by_the_answer() {
    let w = world();
    let envelope = Envelope::seal(
        &w.message,
        &w.bob.keys.profile_keys().signing,
        w.alice.encryption().public(),
        w.services[0].1.encryption.public(),
    )
    .unwrap();
    let mut retry_after = HeaderMap::new();
    retry_after.insert("retry-after", "7".parse().unwrap());
    let (url, bodies) = serve(vec![
        (StatusCode::OK, HeaderMap::new(), "OK".into()),
        (StatusCode::TOO_MANY_REQUESTS, retry_after.clone(), "slow down".into()),
        (StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new(), String::new()),
        (
            StatusCode::BAD_REQUEST,
            HeaderMap::new(),
            r#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"unknown account"}}"#.into(),
        ),
        (StatusCode::BAD_REQUEST, HeaderMap::new(), "x".repeat(1_000_000)),
    ])
    .await;
    let target = HttpDeliveryTarget::new(options(5_000)).unwrap();
    let service = endpoint(&url);
    assert_eq!(target.submit(&service, &envelope).await, Ok(()));
    let body: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(Envelope::parse(body["params"][0].as_str().unwrap()).unwrap(), envelope);

    let limited = target.submit(&service, &envelope).await.unwrap_err();
    assert_eq!(limited.kind(), FailureKind::Retryable { after: Some(Duration::from_secs(7)) });
    assert!(target.submit(&service, &envelope).await.unwrap_err().kind().is_retryable());
    assert_eq!(
        target.submit(&service, &envelope).await,
        Err(SubmitError::Refused {
            status: Some(400),
            code: Some(-32001),
            message: "unknown account".into()
        })
    );
    // A huge answer is read only up to the bound.
    let Err(SubmitError::Refused { message, .. }) = target.submit(&service, &envelope).await else {
        panic!()
    };
    assert!(message.len() <= 1024);
}

#[tokio::test]
async fn http_submits_give_up_on_silence_and_refuse_internal_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}/ds", listener.local_addr().unwrap());
    // Accepts connections and never answers.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let w = world();
    let envelope = Envelope::seal(
        &w.message,
        &w.bob.keys.profile_keys().signing,
        w.alice.encryption().public(),
        w.services[0].1.encryption.public(),
    )
    .unwrap();
    let target = HttpDeliveryTarget::new(options(300)).unwrap();
    let error = target.submit(&endpoint(&silent), &envelope).await.unwrap_err();
    assert!(matches!(error, SubmitError::Unavailable { .. }), "{error}");

    let guarded = HttpDeliveryTarget::new(HttpTargetOptions::default()).unwrap();
    for url in [silent.as_str(), "http://localhost:9/ds"] {
        let error = guarded.submit(&endpoint(url), &envelope).await.unwrap_err();
        assert!(matches!(error, SubmitError::BadProfile(_)), "{url}: {error}");
        assert_eq!(error.kind(), FailureKind::Permanent);
    }
}
