//! The console's handlers: each checks and bounds its input, calls the operation the admin API
//! calls, and answers a page or a redirect (post/redirect/get, so a reload never repeats an
//! action).
//!
//! Refusals follow HTTP: a page without a session redirects to the login form (a form post
//! without one is a 401), a post without its session's CSRF token is a 403, an input too long
//! or malformed a 400, a missing identity or job a 404, an action the job's state forbids a
//! 409; each is an HTML page saying why.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::ConsoleState;
use super::pages::{self, Frame, Health, JobsFilter};
use super::session::{COOKIE as SESSION_COOKIE, SESSION_LIFETIME_MS};
use crate::admin::jobs::{self, JobView, parse_filter};
use crate::admin::routes::{CONVERSATIONS_LIMIT, MAX_SEARCH_BYTES, store_error};
use crate::admin::views::{ConversationsView, IdentityView};
use crate::clock::now_ms;
use crate::http::admin_error::AdminError;
use crate::http::body::read_limited;
use crate::identities::{IdentityRef, Network, NetworkUserId};
use crate::store::QueueName;
use dm3_bridge_connector::Health as NetworkHealth;

/// A form is a token or a few short fields.
const FORM_LIMIT: usize = 8 * 1024;
/// Identities on one page.
const IDENTITIES_PAGE: u32 = 50;
/// Jobs on one page.
const JOBS_PAGE: u32 = 50;
/// Longest query string looked at, in bytes.
const MAX_QUERY_BYTES: usize = 1024;
/// How long the health page waits for the database.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The session of a request that passed [`require_session`].
#[derive(Clone)]
pub struct Session(String);

type Page = Result<Response, Refusal>;

/// A refusal, answered as an HTML page with its status.
pub struct Refusal(AdminError);

impl From<AdminError> for Refusal {
    fn from(error: AdminError) -> Self {
        Self(error)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let page = pages::error(self.0.status.as_u16(), &self.0.message);
        (self.0.status, Html(page.into_string())).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal(AdminError::new(status, code, message))
}

/// Lets a request through only with a valid session cookie.
pub async fn require_session(
    State(state): State<ConsoleState>,
    mut request: Request,
    next: Next,
) -> Response {
    match session_cookie(request.headers()).filter(|cookie| state.keys.verify(cookie, now_ms())) {
        Some(cookie) => {
            request.extensions_mut().insert(Session(cookie));
            next.run(request).await
        }
        None if request.method() == Method::GET || request.method() == Method::HEAD => {
            redirect("/admin/ui/login")
        }
        None => refuse(StatusCode::UNAUTHORIZED, "unauthorized", "log in first").into_response(),
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .map(str::to_owned)
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// The fields of a posted form, bounded; the first value of each name counts.
struct Form(Vec<(String, String)>);

impl Form {
    async fn read(headers: &HeaderMap, body: Body) -> Result<Self, Refusal> {
        let bytes = read_limited(headers, body, FORM_LIMIT)
            .await
            .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "the form is too large"))?;
        Ok(Self(url::form_urlencoded::parse(&bytes).into_owned().collect()))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Refuses the form unless it carries the CSRF token of `session`.
    fn check_csrf(&self, state: &ConsoleState, session: &Session) -> Result<(), Refusal> {
        match self.get("csrf") {
            Some(token) if state.keys.csrf_matches(&session.0, token) => Ok(()),
            _ => Err(refuse(
                StatusCode::FORBIDDEN,
                "csrf",
                "the form's CSRF token is missing or wrong; reload the page",
            )),
        }
    }
}

/// The pairs of a query string, refused if too long.
fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Refusal> {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(refuse(StatusCode::BAD_REQUEST, "invalid_request", "the query is too long"));
    }
    Ok(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())
}

/// What the last action did, from the redirect's `done` and `id`.
fn notice(pairs: &[(String, String)]) -> Option<String> {
    let get = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let id = get("id").filter(|id| id.len() <= 300)?;
    let what = match get("done")? {
        "retried" => "is queued again",
        "dropped" => "was dropped",
        "created" => "was created",
        "rotated" => "has new keys",
        "disabled" => "is disabled",
        "enabled" => "is enabled",
        "deleted" => "was deleted",
        _ => return None,
    };
    Some(format!("{id} {what}."))
}

pub async fn home() -> Response {
    redirect("/admin/ui/identities")
}

pub async fn login_page() -> Response {
    html(pages::login(None))
}

/// `POST /admin/ui/login` with `token`: a new session cookie, or 401.
pub async fn login(State(state): State<ConsoleState>, headers: HeaderMap, body: Body) -> Page {
    let form = Form::read(&headers, body).await?;
    let token = form.get("token").unwrap_or_default();
    if !state.check.matches(token) {
        let page = pages::login(Some("That is not the admin token."));
        return Ok((StatusCode::UNAUTHORIZED, Html(page.into_string())).into_response());
    }
    let session = state.keys.issue(now_ms()).map_err(|error| {
        tracing::error!(%error, "no randomness for a console session");
        refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not start a session")
    })?;
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/admin/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME_MS / 1000
    );
    let mut response = redirect("/admin/ui/identities");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    tracing::info!("admin console login");
    Ok(response)
}

/// `POST /admin/ui/logout`: the browser forgets the cookie.
pub async fn logout(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
    body: Body,
) -> Page {
    Form::read(&headers, body).await?.check_csrf(&state, &session)?;
    let mut response = redirect("/admin/ui/login");
    let expired = format!("{SESSION_COOKIE}=; Path=/admin/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

/// `GET /admin/ui/identities?q=&page=`.
pub async fn identities(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    RawQuery(query): RawQuery,
) -> Page {
    let pairs = query_pairs(query.as_deref())?;
    let mut search = String::new();
    let mut page = 1;
    for (key, value) in &pairs {
        match key.as_str() {
            "q" => search = value.trim().to_owned(),
            "page" => {
                page = value.parse::<u32>().ok().filter(|page| *page >= 1).ok_or_else(|| {
                    refuse(StatusCode::BAD_REQUEST, "invalid_request", "page is not a page number")
                })?;
            }
            _ => {}
        }
    }
    if search.len() > MAX_SEARCH_BYTES {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the search is longer than {MAX_SEARCH_BYTES} bytes"),
        ));
    }
    let admin = &state.admin;
    let (items, total) = if search.is_empty() {
        let listed = admin.vault.list(page, IDENTITIES_PAGE).await.map_err(AdminError::from)?;
        (listed.items, listed.total)
    } else {
        let found = admin.store.search_identities(&search, IDENTITIES_PAGE).await.map_err(store_error)?;
        let total = u64::try_from(found.len()).unwrap_or(u64::MAX);
        (found, total)
    };
    let items: Vec<IdentityView> = items.iter().map(IdentityView::from).collect();
    let csrf = state.keys.csrf(&session.0);
    let notice = notice(&pairs);
    let frame = Frame { csrf: &csrf, notice: notice.as_deref() };
    let more = search.is_empty() && u64::from(page).saturating_mul(u64::from(IDENTITIES_PAGE)) < total;
    let next_page = more.then(|| page.saturating_add(1));
    Ok(html(pages::identities(&frame, &search, &items, total, next_page)))
}

/// `POST /admin/ui/identities` with `network` and `userId`.
pub async fn create(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
    body: Body,
) -> Page {
    let form = Form::read(&headers, body).await?;
    form.check_csrf(&state, &session)?;
    let network: Network =
        form.get("network").unwrap_or_default().parse().map_err(
            |e: crate::identities::network::UnknownNetwork| AdminError::bad_request(e.to_string()),
        )?;
    let user = NetworkUserId::parse(network, form.get("userId").unwrap_or_default())
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    let identity = state.admin.vault.create(user, now_ms()).await.map_err(AdminError::from)?;
    Ok(redirect(&identity_url(identity.name.as_ref(), Some("created"))))
}

fn identity_url(name: &str, done: Option<&str>) -> String {
    let path: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    match done {
        Some(done) => format!("/admin/ui/identities/{path}?done={done}&id={path}"),
        None => format!("/admin/ui/identities/{path}"),
    }
}

fn reference(id: Result<Path<String>, PathRejection>) -> Result<IdentityRef, Refusal> {
    let Path(id) =
        id.map_err(|e| AdminError::bad_request(format!("the identity in the path is unreadable: {e}")))?;
    Ok(id.parse::<IdentityRef>().map_err(AdminError::from)?)
}

/// `GET /admin/ui/identities/{id}`: the identity, its portals and conversations.
pub async fn identity(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Page {
    let pairs = query_pairs(query.as_deref())?;
    let admin = &state.admin;
    let (identity, counterparties) =
        admin.vault.counterparties(&reference(id)?, CONVERSATIONS_LIMIT).await.map_err(AdminError::from)?;
    let portals =
        admin.store.identity_portals(&identity.name, CONVERSATIONS_LIMIT).await.map_err(store_error)?;
    let conversations = ConversationsView::new(&identity, &counterparties, &portals);
    let csrf = state.keys.csrf(&session.0);
    let notice = notice(&pairs);
    let frame = Frame { csrf: &csrf, notice: notice.as_deref() };
    Ok(html(pages::identity(&frame, &IdentityView::from(&identity), &conversations)))
}

/// `POST /admin/ui/identities/{id}/{rotate|disable|enable|delete}`.
pub async fn identity_action(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Page {
    let form = Form::read(&headers, body).await?;
    form.check_csrf(&state, &session)?;
    let Path((id, action)) = path.map_err(|e| AdminError::bad_request(format!("unreadable path: {e}")))?;
    let reference = id.parse::<IdentityRef>().map_err(AdminError::from)?;
    let vault = &state.admin.vault;
    let now = now_ms();
    let (identity, done) = match action.as_str() {
        "rotate" => (vault.rotate(&reference, now).await, "rotated"),
        "disable" => (vault.disable(&reference, now).await, "disabled"),
        "enable" => (vault.enable(&reference, now).await, "enabled"),
        "delete" if form.get("confirm") != Some("yes") => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "deleting is irreversible: tick the box to confirm",
            ));
        }
        "delete" => {
            let deleted = vault.delete(&reference).await.map_err(AdminError::from)?;
            let name: String =
                url::form_urlencoded::byte_serialize(deleted.name.as_str().as_bytes()).collect();
            return Ok(redirect(&format!("/admin/ui/identities?done=deleted&id={name}")));
        }
        _ => return Err(refuse(StatusCode::NOT_FOUND, "no_route", "no such action")),
    };
    let identity = identity.map_err(AdminError::from)?;
    Ok(redirect(&identity_url(identity.name.as_ref(), Some(done))))
}

/// `GET /admin/ui/jobs?queue=&state=&after=`.
pub async fn jobs(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    RawQuery(query): RawQuery,
) -> Page {
    let pairs = query_pairs(query.as_deref())?;
    let filter = parse_filter(Some(&api_query(&pairs)))?;
    let now = now_ms();
    let found = state.admin.store.list_jobs(filter).await.map_err(store_error)?;
    let page = jobs::JobPageView::new(&found, filter.limit, now);
    let csrf = state.keys.csrf(&session.0);
    let notice = notice(&pairs);
    let frame = Frame { csrf: &csrf, notice: notice.as_deref() };
    let shown = JobsFilter {
        queue: filter.queue.map_or("", QueueName::as_str),
        state: filter.state.map_or("", |state| state.as_str()),
        next: page.next,
    };
    Ok(html(pages::jobs(&frame, &shown, &page.jobs)))
}

/// The jobs page's own keys, for the API's parser, which bounds and checks them.
fn api_query(pairs: &[(String, String)]) -> String {
    let mut api = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs.iter().filter(|(key, _)| matches!(key.as_str(), "queue" | "state" | "after")) {
        api.append_pair(key, value);
    }
    api.append_pair("limit", &JOBS_PAGE.to_string());
    api.finish()
}

/// `POST /admin/ui/jobs/{id}/{retry|drop}`.
pub async fn job_action(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
    path: Result<Path<(i64, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Page {
    Form::read(&headers, body).await?.check_csrf(&state, &session)?;
    let Path((id, action)) = path.map_err(|e| AdminError::bad_request(format!("unreadable path: {e}")))?;
    let store = &state.admin.store;
    let (job, done): (JobView, &str) = match action.as_str() {
        "retry" => (jobs::retry_job(store, id).await?, "retried"),
        "drop" => (jobs::drop_job(store, id).await?, "dropped"),
        _ => return Err(refuse(StatusCode::NOT_FOUND, "no_route", "no such action")),
    };
    tracing::info!(job = job.id, action = done, "admin console changed a job");
    Ok(redirect(&format!("/admin/ui/jobs?done={done}&id=job+{}", job.id)))
}

/// `GET /admin/ui/health`: what `/ready` checks, and the queue depths.
pub async fn health(
    State(state): State<ConsoleState>,
    axum::Extension(session): axum::Extension<Session>,
) -> Page {
    let admin = &state.admin;
    let networks: Vec<(String, Option<String>)> = admin
        .connectors
        .iter()
        .map(|connector| {
            let problem = match connector.health() {
                NetworkHealth::Healthy => None,
                NetworkHealth::Unhealthy(reason) => Some(reason),
            };
            (connector.network().to_string(), problem)
        })
        .collect();
    let database = match tokio::time::timeout(PING_TIMEOUT, admin.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some("the database does not answer".to_owned()),
        Err(_) => Some("the database did not answer in time".to_owned()),
    };
    let broken_network = networks.iter().find_map(|(network, problem)| {
        Some(format!("the {network} network is not working: {}", problem.as_deref()?))
    });
    let counts = admin.store.count_jobs().await.map_err(store_error)?;
    let mut depths = Vec::new();
    for queue in QueueName::ALL {
        for state in
            [crate::store::JobState::Pending, crate::store::JobState::Failed, crate::store::JobState::Done]
        {
            let n = counts.iter().find(|c| c.queue == queue && c.state == state).map_or(0, |c| c.count);
            depths.push((queue.as_str(), state.as_str(), n));
        }
    }
    let health = Health { not_ready: broken_network.or(database), networks, depths };
    let csrf = state.keys.csrf(&session.0);
    Ok(html(pages::health(&Frame { csrf: &csrf, notice: None }, &health)))
}

pub async fn not_found() -> Refusal {
    refuse(StatusCode::NOT_FOUND, "no_route", "no such page")
}
