//! The console's HTML: server-rendered with maud, whose `html!` escapes every value it
//! interpolates, so a network user's display name or a failure reason from a network cannot
//! inject markup. No JavaScript: every action is a form that POSTs with the session's CSRF
//! token, and the answer is a redirect to a page (docs/operations.md, "Admin console").
//!
//! The pages show the admin API's views ([`crate::admin::views`], [`crate::admin::jobs`]), so
//! the console, the API and the CLI show one shape.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::admin::jobs::JobView;
use crate::admin::views::{ConversationsView, IdentityView};

/// What every page of a logged-in admin needs.
pub struct Frame<'a> {
    pub csrf: &'a str,
    /// A line about what the last action did.
    pub notice: Option<&'a str>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
header{background:#1f2937;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:center}\
header a{color:#fff}main{padding:1em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}\
form.inline{display:inline}.notice{background:#ecfdf5;border:1px solid #10b981;padding:.5em}\
.error{background:#fef2f2;border:1px solid #ef4444;padding:.5em}";

fn page(title: &str, frame: Option<&Frame<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · dm3-bridge admin" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "dm3-bridge admin" }
                    @if let Some(frame) = frame {
                        a href="/admin/ui/identities" { "Identities" }
                        a href="/admin/ui/jobs" { "Jobs" }
                        a href="/admin/ui/health" { "Health" }
                        form.inline method="post" action="/admin/ui/logout" {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(notice) = frame.and_then(|f| f.notice) {
                        p.notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A POST form with one button and the CSRF token.
fn action(frame: &Frame<'_>, path: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action=(path) {
            input type="hidden" name="csrf" value=(frame.csrf);
            button type="submit" { (label) }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form method="post" action="/admin/ui/login" {
                label { "Admin token " input type="password" name="token" autocomplete="current-password" required; }
                " "
                button type="submit" { "Log in" }
            }
        },
    )
}

pub fn error(status: u16, message: &str) -> Markup {
    page(
        "Error",
        None,
        html! {
            p.error role="alert" { (status) ": " (message) }
            p { a href="/admin/ui/identities" { "Back to the console" } }
        },
    )
}

/// The identities page: a search's matches, or a page of all of them (`next_page`: the
/// following one, if any).
pub fn identities(
    frame: &Frame<'_>,
    query: &str,
    items: &[IdentityView],
    total: u64,
    next_page: Option<u32>,
) -> Markup {
    page(
        "Identities",
        Some(frame),
        html! {
            form method="get" action="/admin/ui/identities" {
                label { "Search by name or network id " input type="search" name="q" value=(query) maxlength="200"; }
                " " button type="submit" { "Search" }
            }
            p { (items.len()) " shown of " (total) }
            @if let Some(next) = next_page {
                p { a href=(format!("/admin/ui/identities?page={next}")) { "Next page" } }
            }
            table {
                tr { th { "Name" } th { "Network" } th { "User id" } th { "Key" } th { "Enabled" } }
                @for identity in items {
                    tr {
                        td { a href=(format!("/admin/ui/identities/{}", identity.name)) { (identity.name) } }
                        td { (identity.network) }
                        td { (identity.user_id) }
                        td { (key_cell(identity)) }
                        td { @if identity.enabled { "yes" } @else { "no" } }
                    }
                }
            }
            h2 { "Create an identity" }
            form method="post" action="/admin/ui/identities" {
                input type="hidden" name="csrf" value=(frame.csrf);
                label { "Network " select name="network" { option value="telegram" { "telegram" } option value="matrix" { "matrix" } } }
                " "
                label { "User id " input type="text" name="userId" maxlength="255" required; }
                " " button type="submit" { "Create" }
            }
        },
    )
}

/// The key column: the version the node holds, or that the user holds their own.
fn key_cell(identity: &IdentityView) -> String {
    match identity.key_version {
        Some(version) => version.to_string(),
        None => "self-custody".to_owned(),
    }
}

pub fn identity(frame: &Frame<'_>, identity: &IdentityView, conversations: &ConversationsView) -> Markup {
    let base = format!("/admin/ui/identities/{}", identity.name);
    page(
        &identity.name,
        Some(frame),
        html! {
            table {
                tr { th { "Network" } td { (identity.network) } }
                tr { th { "User id" } td { (identity.user_id) } }
                tr { th { "Label" } td { (identity.label) } }
                tr { th { "Address" } td { code { (identity.address) } } }
                tr { th { "Key" } td { (key_cell(identity)) } }
                tr { th { "Enabled" } td { @if identity.enabled { "yes" } @else { "no" } } }
            }
            p {
                (action(frame, &format!("{base}/rotate"), "Rotate keys")) " "
                @if identity.enabled { (action(frame, &format!("{base}/disable"), "Disable")) }
                @else { (action(frame, &format!("{base}/enable"), "Enable")) }
                " "
                // Irreversible (the keys go), so the form asks, as the CLI's --yes does.
                form.inline method="post" action=(format!("{base}/delete")) {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    label { input type="checkbox" name="confirm" value="yes" required; " delete it and all its keys" }
                    " "
                    button type="submit" { "Delete" }
                }
            }
            h2 { "Portals" }
            table {
                tr { th { "Id" } th { "Network" } th { "Conversation" } th { "With" } th { "State" } th { "Last message" } }
                @for portal in &conversations.portals {
                    tr {
                        td { (portal.portal.id) }
                        td { (portal.portal.network) }
                        td { (portal.portal.conversation) }
                        td { (portal.portal.remote_name) }
                        td { (portal.portal.state) @if let Some(reason) = &portal.portal.reason { ": " (reason) } }
                        td { (time(portal.last_message_at)) }
                    }
                }
            }
            h2 { "Stored envelopes from" }
            table {
                tr { th { "Sender" } th { "Envelopes" } th { "Last received" } }
                @for conversation in &conversations.conversations {
                    tr {
                        td { (conversation.counterparty) }
                        td { (conversation.envelopes) }
                        td { (time(Some(conversation.last_received_at))) }
                    }
                }
            }
        },
    )
}

/// The filter a jobs page shows, for its links.
pub struct JobsFilter<'a> {
    pub queue: &'a str,
    pub state: &'a str,
    pub next: Option<i64>,
}

pub fn jobs(frame: &Frame<'_>, filter: &JobsFilter<'_>, jobs: &[JobView]) -> Markup {
    page(
        "Jobs",
        Some(frame),
        html! {
            form method="get" action="/admin/ui/jobs" {
                label { "Queue " select name="queue" {
                    @for queue in ["", "inbox", "outbox"] {
                        option value=(queue) selected[queue == filter.queue] { @if queue.is_empty() { "any" } @else { (queue) } }
                    }
                } }
                " "
                label { "State " select name="state" {
                    @for state in ["", "pending", "retrying", "failed", "done"] {
                        option value=(state) selected[state == filter.state] { @if state.is_empty() { "any" } @else { (state) } }
                    }
                } }
                " " button type="submit" { "Show" }
            }
            table {
                tr { th { "Id" } th { "Queue" } th { "Status" } th { "Conversation" } th { "Attempts" } th { "Reason" } th { "Created" } th { "" } }
                @for job in jobs {
                    tr id=(format!("job-{}", job.id)) {
                        td { (job.id) }
                        td { (job.queue) }
                        td.status { (job.status) }
                        td { (job.conversation) }
                        td { (job.attempts) }
                        td { (job.last_error.as_deref().unwrap_or("")) }
                        td { (time(Some(job.created_at))) }
                        td {
                            @if job.retryable() { (action(frame, &format!("/admin/ui/jobs/{}/retry", job.id), "Retry")) " " }
                            @if job.droppable() { (action(frame, &format!("/admin/ui/jobs/{}/drop", job.id), "Drop")) }
                        }
                    }
                }
            }
            @if let Some(next) = filter.next {
                a href=(format!("/admin/ui/jobs?queue={}&state={}&after={next}", filter.queue, filter.state)) { "Next page" }
            }
        },
    )
}

/// What the health page shows.
pub struct Health {
    /// `None`: ready; otherwise why not, as `/ready` says it.
    pub not_ready: Option<String>,
    /// (network, `None` if it works or why not).
    pub networks: Vec<(String, Option<String>)>,
    /// (queue, state, jobs).
    pub depths: Vec<(&'static str, &'static str, u64)>,
}

pub fn health(frame: &Frame<'_>, health: &Health) -> Markup {
    page(
        "Health",
        Some(frame),
        html! {
            @match &health.not_ready {
                None => p.notice { "Ready: the database answers and every network works." },
                Some(reason) => p.error { "Not ready: " (reason) },
            }
            h2 { "Networks" }
            table {
                tr { th { "Network" } th { "Health" } }
                @for (network, problem) in &health.networks {
                    tr { td { (network) } td { @match problem { None => "working", Some(reason) => (reason) } } }
                }
            }
            h2 { "Queues" }
            table {
                tr { th { "Queue" } th { "State" } th { "Jobs" } }
                @for (queue, state, count) in &health.depths {
                    tr { td { (queue) } td { (state) } td { (count) } }
                }
            }
        },
    )
}

/// Milliseconds since the epoch as UTC, or a dash.
fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)))
        .unwrap_or_else(|| "—".to_owned())
}
