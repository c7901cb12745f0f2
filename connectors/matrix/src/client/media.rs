//! The media repository: uploads, bounded downloads, and the homeserver's upload limit.
//!
//! Files are not JSON and may be large, so they get their own bounds instead of the client's
//! 1 MiB answer limit:
//! - an upload is bounded by its caller, which refuses a file over the limit before it is sent;
//! - a download is bounded here, while it streams: the size a Matrix event declares is the
//!   sender's claim, not a fact, so a download stops at `max_bytes` (refused unread when
//!   `Content-Length` already says more, cut off when the stream runs past it).
//!
//! Downloads use authenticated media (`GET /_matrix/client/v1/media/download/…`, Matrix 1.11)
//! with the as_token: homeservers have frozen the unauthenticated `/_matrix/media/v3/download`
//! for new media (Synapse since 1.120), so it fails for anything uploaded today.

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use ruma::api::EndpointError as _;
use ruma::api::client::authenticated_media::{get_content, get_media_config};
use ruma::api::client::media::create_content;
use ruma::{MxcUri, OwnedMxcUri, UserId};

use super::{Client, ClientError, MAX_RESPONSE_BYTES, http_response, matrix_error, read_bounded, read_up_to};

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    /// The media type the homeserver gave, if any.
    pub content_type: Option<String>,
}

impl Client {
    /// The largest upload the homeserver takes (`m.upload.size` of `/_matrix/client/v1/media/config`).
    pub async fn media_upload_limit(&self) -> Result<u64, ClientError> {
        self.call(get_media_config::v1::Request::new(), None).await.map(|r| r.upload_size.into())
    }

    /// Uploads `bytes` to the media repository as `as_user` (a ghost) or, with `None`, as the
    /// bridge's bot; answers the `mxc://` URI.
    pub async fn upload(
        &self,
        as_user: Option<&UserId>,
        bytes: Vec<u8>,
        content_type: &str,
        filename: &str,
    ) -> Result<OwnedMxcUri, ClientError> {
        let mut request = create_content::v3::Request::new(bytes);
        request.content_type = Some(content_type.to_owned());
        request.filename = Some(filename.to_owned());
        self.call(request, as_user).await.map(|r| r.content_uri)
    }

    /// Downloads the file behind `uri`, refusing more than `max_bytes`
    /// ([`ClientError::TooLarge`]).
    pub async fn download(&self, uri: &MxcUri, max_bytes: u64) -> Result<Downloaded, ClientError> {
        let request = get_content::v1::Request::from_uri(uri)
            .map_err(|e| ClientError::Request(format!("`{uri}` is not a usable mxc URI: {e}")))?;
        let response = self.execute(request, super::identity(None)).await?;
        let status = response.status();
        if status.as_u16() >= 400 {
            let headers = response.headers().clone();
            let body = read_bounded(response, MAX_RESPONSE_BYTES).await?;
            let http_response = http_response(status, headers, &body)?;
            return Err(matrix_error(ruma::api::error::Error::from_http_response(http_response)));
        }
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_bytes) {
            return Err(ClientError::TooLarge { max: max_bytes });
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        match read_up_to(response, max_bytes).await? {
            Some(bytes) => Ok(Downloaded { bytes, content_type }),
            None => Err(ClientError::TooLarge { max: max_bytes }),
        }
    }
}
