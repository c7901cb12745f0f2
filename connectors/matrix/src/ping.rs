//! What a failed start-up ping means, in words that name the setting to fix.
//!
//! `POST /_matrix/client/v1/appservice/{id}/ping` makes the homeserver call the bridge's
//! `/_matrix/app/v1/ping` and report how that went. It is the one check that covers the whole
//! loop (bridge → homeserver → bridge), and each way it fails has a different cause: the
//! homeserver is not reachable from the bridge, it does not know the as_token (the registration
//! file is not loaded), it cannot reach the bridge's URL (the classic container mistake of
//! `localhost`), or it reaches something that refuses it (the hs_tokens differ). A bridge that
//! answers all of these with "ping failed" leaves the operator guessing (docs/contributing.md,
//! "Say what is wrong"), so each gets its own message.

use dm3_bridge_connector::ConnectorError;

use crate::client::ClientError;

/// The start-up error for a failed ping of the homeserver at `homeserver`.
pub fn explain(error: ClientError, homeserver: &str) -> ConnectorError {
    let errcode = error.errcode().unwrap_or_default().to_owned();
    match (&error, errcode.as_str()) {
        (ClientError::Transport(e), _) => ConnectorError::Transient(format!(
            "cannot reach the homeserver at {homeserver} (matrix.homeserver_url): {e}"
        )),
        (_, "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN") => ConnectorError::Permanent(format!(
            "the homeserver at {homeserver} does not know the bridge's as_token: add the registration file \
             to its app_service_config_files and restart it (after every `dm3-bridge generate-registration`): {error}"
        )),
        (_, "M_FORBIDDEN") => ConnectorError::Permanent(format!(
            "the homeserver refused the ping: the registration's id differs from matrix.registration_id, \
             or the as_token belongs to another application service: {error}"
        )),
        (_, "M_URL_NOT_SET") => ConnectorError::Permanent(
            "the registration the homeserver loaded has no url; regenerate it with matrix.bridge_url set"
                .to_owned(),
        ),
        (_, "M_CONNECTION_FAILED" | "M_CONNECTION_TIMEOUT") => ConnectorError::Transient(format!(
            "the homeserver cannot reach the bridge at the url in its registration (matrix.bridge_url): \
             check that this node listens there and that the homeserver can connect to it (a container's \
             127.0.0.1 is not the host's): {error}"
        )),
        // A 502, 503 or 504 in front of the bridge is a proxy or load balancer with no replica
        // ready yet (docs/scaling.md: a starting replica's ping comes back through it), not a
        // wrong setting: the start-up ping is tried again.
        (ClientError::Matrix { message, .. }, "M_BAD_STATUS")
            if ["HTTP 502", "HTTP 503", "HTTP 504"].iter().any(|status| message.contains(status)) =>
        {
            ConnectorError::Transient(format!(
                "the homeserver reached the bridge's url but a proxy there had no bridge ready: {error}"
            ))
        }
        (_, "M_BAD_STATUS") => ConnectorError::Permanent(format!(
            "the homeserver reached the bridge's url but got an error answer: if it is 403, the hs_token in \
             the registration file and in [matrix] differ; otherwise the url points at something else than \
             this node: {error}"
        )),
        _ if error.is_retryable() => {
            ConnectorError::Transient(format!("the homeserver could not ping the bridge: {error}"))
        }
        _ => ConnectorError::Permanent(format!("the homeserver could not ping the bridge: {error}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn matrix(status: u16, errcode: &str) -> ClientError {
        ClientError::Matrix { status, errcode: errcode.to_owned(), message: "x".to_owned() }
    }

    #[test]
    fn each_cause_names_its_setting() {
        let hs = "http://hs:8008";
        let text = |e: ConnectorError| e.to_string();
        assert!(
            text(explain(ClientError::Transport("refused".into()), hs)).contains("matrix.homeserver_url")
        );
        assert!(text(explain(matrix(401, "M_UNKNOWN_TOKEN"), hs)).contains("app_service_config_files"));
        let unreachable = explain(matrix(502, "M_CONNECTION_FAILED"), hs);
        assert!(unreachable.is_retryable());
        assert!(text(unreachable).contains("matrix.bridge_url"));
        let refused = explain(matrix(502, "M_BAD_STATUS"), hs);
        assert!(!refused.is_retryable());
        assert!(text(refused).contains("hs_token"));
        assert!(explain(matrix(503, "M_UNKNOWN"), hs).is_retryable());
        let proxy = ClientError::Matrix {
            status: 502,
            errcode: "M_BAD_STATUS".to_owned(),
            message: "HTTP 503 Service Unavailable".to_owned(),
        };
        assert!(explain(proxy, hs).is_retryable(), "a proxy with no replica ready is tried again");
    }
}
