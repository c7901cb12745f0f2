//! The admin console (`/admin/ui`) and the admin API's job routes, on a node whose loopback
//! network refused a message for good, so that a failed job is there to find.
//!
//! The console is driven in a real browser (headless Chromium from Debian, through
//! `playwright-core`, `tests/browser/console.mjs`): log in, search an identity, open it, retry
//! the failed job; the message is then delivered once, as the admin API shows. A screenshot of
//! each page is kept under `target/console-screenshots/`. The other scenarios attack the console
//! and the job routes as an outsider would and assert each refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/loopback_world.rs"]
mod loopback_world;
#[macro_use]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dm3::ens::EnsName;
use dm3_bridge::admin::console::session::{SESSION_LIFETIME_MS, SessionKeys};
use dm3_bridge::clock::now_ms;
use dm3_bridge::config::AdminToken;
use dm3_bridge_connector::{NetworkUserId, RemoteIdentity};
use loopback_world::{ALICE, World};
use reqwest::StatusCode;
use reqwest::header::{CONNECTION, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use support::TestDb;
use support::bridge::ADMIN_TOKEN;

on_both_backends!(
    an_admin_finds_the_failed_job_in_the_browser_and_retries_it,
    the_console_refuses_outsiders_forgeries_and_oversized_input,
    the_job_routes_need_the_token_and_refuse_what_the_state_forbids,
);

/// What the refused message said.
const REFUSED: &str = "refused at first";
const REASON: &str = "the bot was blocked by the user";

/// A node with the admin token, a loopback user whose identity talks with alice, and the inbox
/// job of alice's message that the network refused for good.
struct FailedJob {
    world: World,
    identity: EnsName,
    job: i64,
    /// Follows no redirect: the tests look at each answer.
    http: reqwest::Client,
}

async fn failed_job(db: &TestDb, user: &str) -> FailedJob {
    let world = World::start_with(db, false, |config| {
        config.admin.token = Some(AdminToken::new(ADMIN_TOKEN));
    })
    .await;
    let loopback = world.loopback();
    let alice = RemoteIdentity::new(ALICE).unwrap();
    loopback.write(&NetworkUserId::new(user).unwrap(), &alice, "hello alice").await.unwrap();
    let identity = world.alice_receives(1).await[0].sender.clone();
    loopback.refuse_sends(Some(REASON));
    world.alice_writes(&identity, REFUSED).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut failed = FailedJob { world, identity, job: 0, http };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = failed.api(reqwest::Method::GET, "/admin/jobs?queue=inbox&state=failed").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if let Some(job) = page["jobs"].as_array().and_then(|jobs| jobs.first()) {
            assert_eq!(job["lastError"].as_str().map(|e| e.contains(REASON)), Some(true), "{job}");
            failed.job = job["id"].as_i64().unwrap();
            return failed;
        }
        assert!(Instant::now() < deadline, "no failed job: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl FailedJob {
    /// An admin API call with the token.
    async fn api(&self, method: reqwest::Method, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.world.node.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn job(&self) -> Value {
        let (status, job) = self.api(reqwest::Method::GET, &format!("/admin/jobs/{}", self.job)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        job
    }

    /// A console request with `cookie` (if any) and a form body (if any).
    async fn console(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.world.node.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, format!("dm3_admin_session={cookie}"));
        }
        if let Some(form) = form {
            request =
                request.header("content-type", "application/x-www-form-urlencoded").body(form.to_owned());
        }
        request.send().await.unwrap()
    }

    /// Logs in through the form; the session cookie's value.
    async fn login(&self) -> String {
        let answer = self
            .console(reqwest::Method::POST, "/admin/ui/login", None, Some(&format!("token={ADMIN_TOKEN}")))
            .await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let cookie = answer.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/ui", "Max-Age="] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        let value = cookie.split(';').next().unwrap().strip_prefix("dm3_admin_session=").unwrap();
        value.to_owned()
    }

    /// Waits until the job is done and the network got the refused message exactly once.
    async fn delivered_once(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.job().await["status"] != "done" {
            assert!(Instant::now() < deadline, "not delivered: {}", self.job().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = self.world.loopback().sent();
        let times = sent.iter().filter(|m| format!("{:?}", m.payload).contains(REFUSED)).count();
        assert_eq!(times, 1, "{sent:#?}");
    }
}

fn screenshots(backend: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots").join(backend)
}

fn backend(db: &TestDb) -> &'static str {
    if db.url.expose().starts_with("postgres") { "postgres" } else { "sqlite" }
}

async fn an_admin_finds_the_failed_job_in_the_browser_and_retries_it(db: &TestDb) {
    let failed = failed_job(db, "4401").await;
    assert_eq!(failed.job().await["kind"], "envelope", "a failed job keeps its payload");
    // The cause is gone: the network takes messages again.
    failed.world.loopback().refuse_sends(None);

    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs");
    let shots = screenshots(backend(db));
    let output = tokio::process::Command::new("node")
        .arg(&driver)
        .arg(&failed.world.node.base)
        .arg(ADMIN_TOKEN)
        .arg("4401")
        .arg(failed.job.to_string())
        .arg(&shots)
        .output()
        .await
        .expect("node runs (scripts/install-browser-deps.sh installs the driver)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser driver failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(seen["unauthenticatedUrl"], "/admin/ui/login", "{seen}");
    assert!(seen["wrongTokenAlert"].as_str().unwrap().contains("not the admin token"), "{seen}");
    assert_eq!(seen["afterLoginTitle"], "Identities");
    assert_eq!(seen["searchResults"], serde_json::json!([failed.identity.as_str()]), "{seen}");
    assert_eq!(seen["identityTitle"], failed.identity.as_str());
    let identity = seen["identityText"].as_str().unwrap();
    assert!(identity.contains(ALICE) && identity.contains("loopback"), "its portal with alice: {identity}");
    assert!(seen["failedRow"].as_str().unwrap().contains(REASON), "{seen}");
    assert_eq!(seen["notice"], format!("job {} is queued again.", failed.job));
    let health = seen["healthText"].as_str().unwrap();
    assert!(health.contains("Ready") && health.contains("loopback") && health.contains("inbox"), "{health}");
    assert_eq!(seen["afterLogoutUrl"], "/admin/ui/login");
    for page in
        ["1-login", "2-identities", "3-search", "4-identity", "5-jobs-failed", "6-jobs-retried", "7-health"]
    {
        let file = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 1000, "no screenshot at {}", file.display());
    }

    failed.delivered_once().await;
    assert_eq!(failed.job().await["attempts"], 1, "the retry started its attempts again");
    // The API finds the identity by the same search; a search too long is refused.
    let (status, found) = failed.api(reqwest::Method::GET, "/admin/identities?q=4401").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["items"][0]["name"], failed.identity.as_str(), "{found}");
    let (status, _) =
        failed.api(reqwest::Method::GET, &format!("/admin/identities?q={}", "4".repeat(201))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The identity's conversations come from the engine: its portal, with its last message.
    let path = format!("/admin/identities/{}/conversations", failed.identity);
    let (status, conversations) = failed.api(reqwest::Method::GET, &path).await;
    assert_eq!(status, StatusCode::OK);
    let portal = &conversations["portals"][0];
    assert_eq!(
        (portal["remoteName"].as_str(), portal["network"].as_str()),
        (Some(ALICE), Some("loopback")),
        "{conversations}"
    );
    assert!(portal["lastMessageAt"].as_i64().is_some(), "{conversations}");
    failed.world.node.node.shutdown().await.unwrap();
}

async fn the_console_refuses_outsiders_forgeries_and_oversized_input(db: &TestDb) {
    let failed = failed_job(db, "4402").await;
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let retry = format!("/admin/ui/jobs/{}/retry", failed.job);

    // No session: pages send the browser to the login form, actions are refused.
    let answer = failed.console(get.clone(), "/admin/ui/jobs", None, None).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/admin/ui/login");
    assert_eq!(
        failed.console(post.clone(), &retry, None, Some("csrf=x")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A wrong token, an empty one, an oversized form: refused, no cookie.
    for form in ["token=wrong-token-wrong-token", "token=", "", &format!("token={ADMIN_TOKEN}x")] {
        let answer = failed.console(post.clone(), "/admin/ui/login", None, Some(form)).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{form}");
        assert!(answer.headers().get(SET_COOKIE).is_none());
        assert!(answer.headers().get(CONNECTION).is_none(), "a form read whole keeps its connection");
    }
    // A flood of guesses at once: each one refused, none lets anyone in. Half of the per-address
    // connection cap (256): at the cap itself, the client's pooled connections would take slots
    // and the cap would close some guesses before they were read, which is another test's point.
    let login = failed.world.node.url("/admin/ui/login");
    let guesses: Vec<_> = (0..128)
        .map(|i| {
            let (http, login) = (failed.http.clone(), login.clone());
            tokio::spawn(async move {
                let form = format!("token=guess-{i:04}-0123456789abcdef");
                let answer = http
                    .post(login)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                    .unwrap();
                (answer.status(), answer.headers().contains_key(SET_COOKIE))
            })
        })
        .collect();
    for guess in guesses {
        assert_eq!(guess.await.unwrap(), (StatusCode::UNAUTHORIZED, false));
    }
    let huge = format!("token={}", "a".repeat(64 * 1024));
    let answer = failed.console(post.clone(), "/admin/ui/login", None, Some(&huge)).await;
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The rest of the form is never read, so the connection closes, and says so: the client's
    // next request must not go out on it.
    assert_eq!(answer.headers().get(CONNECTION).map(|v| v.to_str().unwrap()), Some("close"));

    // Forged, expired or foreign sessions are no session.
    let session = failed.login().await;
    let parts: Vec<&str> = session.split('.').collect();
    let extended = format!("v1.{}.{}.{}", i64::MAX, parts[2], parts[3]);
    let keys = SessionKeys::new(&AdminToken::new(ADMIN_TOKEN));
    let expired = keys.issue(now_ms() - SESSION_LIFETIME_MS - 1).unwrap();
    let foreign = SessionKeys::new(&AdminToken::new("another-token-0123456789")).issue(now_ms()).unwrap();
    for cookie in [extended.as_str(), &expired, &foreign, "v1.1.2.3", &"x".repeat(5000)] {
        let answer = failed.console(get.clone(), "/admin/ui/jobs", Some(cookie), None).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{cookie}");
        let csrf = keys.csrf(cookie);
        let answer = failed.console(post.clone(), &retry, Some(cookie), Some(&format!("csrf={csrf}"))).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{cookie}");
    }

    // A real session, but a form without its CSRF token, or with another session's: 403.
    let other = keys.issue(now_ms()).unwrap();
    for form in [String::new(), "csrf=".to_owned(), format!("csrf={}", keys.csrf(&other))] {
        let answer = failed.console(post.clone(), &retry, Some(&session), Some(&form)).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{form}");
    }
    assert_eq!(failed.job().await["status"], "failed", "nothing was retried");

    // Bounded input: an oversized search or query, a page size beyond the bound.
    let long = format!("/admin/ui/identities?q={}", "a".repeat(201));
    assert_eq!(
        failed.console(get.clone(), &long, Some(&session), None).await.status(),
        StatusCode::BAD_REQUEST
    );
    let longer = format!("/admin/ui/jobs?state={}", "a".repeat(2000));
    assert_eq!(
        failed.console(get.clone(), &longer, Some(&session), None).await.status(),
        StatusCode::BAD_REQUEST
    );
    let bogus = "/admin/ui/jobs?state=running";
    assert_eq!(
        failed.console(get.clone(), bogus, Some(&session), None).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Markup in a search is shown as text, never as markup.
    let answer = failed
        .console(get.clone(), "/admin/ui/identities?q=%3Cscript%3Ex%3C%2Fscript%3E", Some(&session), None)
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let body = answer.text().await.unwrap();
    assert!(!body.contains("<script>") && body.contains("&lt;script&gt;"), "{body}");

    // With the session and its token the retry goes through once; a replay of the same form
    // finds a job that is no longer failed: 409.
    let form = format!("csrf={}", keys.csrf(&session));
    failed.world.loopback().refuse_sends(None);
    let answer = failed.console(post.clone(), &retry, Some(&session), Some(&form)).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    failed.delivered_once().await;
    let answer = failed.console(post.clone(), &retry, Some(&session), Some(&form)).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    failed.delivered_once().await;

    // Deleting an identity needs the box ticked; the identity stays without it.
    let delete = format!("/admin/ui/identities/{}/delete", failed.identity);
    let answer = failed.console(post.clone(), &delete, Some(&session), Some(&form)).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let (status, _) =
        failed.api(reqwest::Method::GET, &format!("/admin/identities/{}", failed.identity)).await;
    assert_eq!(status, StatusCode::OK, "not deleted");
    let confirmed = format!("{form}&confirm=yes");
    let answer = failed.console(post.clone(), &delete, Some(&session), Some(&confirmed)).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (status, _) =
        failed.api(reqwest::Method::GET, &format!("/admin/identities/{}", failed.identity)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted");

    // Logging out clears the cookie in the browser.
    let answer = failed.console(post, "/admin/ui/logout", Some(&session), Some(&form)).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(answer.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    failed.world.node.node.shutdown().await.unwrap();
}

async fn the_job_routes_need_the_token_and_refuse_what_the_state_forbids(db: &TestDb) {
    let failed = failed_job(db, "4403").await;
    let job = format!("/admin/jobs/{}", failed.job);
    let routes = [
        (reqwest::Method::GET, "/admin/jobs".to_owned()),
        (reqwest::Method::GET, job.clone()),
        (reqwest::Method::POST, format!("{job}/retry")),
        (reqwest::Method::DELETE, job.clone()),
    ];
    for (method, path) in &routes {
        for auth in [None, Some("Bearer wrong-token-wrong-token"), Some("Basic YWRtaW46YWRtaW4=")] {
            let mut request = failed.http.request(method.clone(), failed.world.node.url(path));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
        }
    }
    assert_eq!(failed.job().await["status"], "failed", "nothing changed");

    // Bounded and checked queries.
    for query in
        ["limit=0", "limit=201", "limit=x", "state=running", "queue=elsewhere", "colour=red", "after=x"]
    {
        let (status, body) = failed.api(reqwest::Method::GET, &format!("/admin/jobs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, _) = failed.api(reqwest::Method::GET, "/admin/jobs/not-a-number").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = failed.api(reqwest::Method::POST, "/admin/jobs/999999/retry").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Paging: one job a page, `next` leads on.
    let (_, first) = failed.api(reqwest::Method::GET, "/admin/jobs?limit=1").await;
    assert_eq!(first["jobs"].as_array().unwrap().len(), 1);
    let next = first["next"].as_i64().expect("more than one job");
    let (_, second) = failed.api(reqwest::Method::GET, &format!("/admin/jobs?limit=1&after={next}")).await;
    assert!(second["jobs"][0]["id"].as_i64().unwrap() > next);

    // A done job can be neither retried nor dropped; the failed one can be dropped, once.
    let (_, done) = failed.api(reqwest::Method::GET, "/admin/jobs?state=done&limit=1").await;
    let done = done["jobs"][0]["id"].as_i64().unwrap();
    let (status, body) = failed.api(reqwest::Method::POST, &format!("/admin/jobs/{done}/retry")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{body}");
    let (status, _) = failed.api(reqwest::Method::DELETE, &format!("/admin/jobs/{done}")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, dropped) = failed.api(reqwest::Method::DELETE, &job).await;
    assert_eq!((status, dropped["id"].as_i64()), (StatusCode::OK, Some(failed.job)));
    let (status, _) = failed.api(reqwest::Method::DELETE, &job).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "dropped");
    failed.world.node.node.shutdown().await.unwrap();
}
