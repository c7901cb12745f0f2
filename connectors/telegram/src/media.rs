//! Files both ways: `sendPhoto`/`sendDocument` up to 50 MB, `getFile` and the file route down
//! to 20 MB, the public Bot API's limits.
//!
//! - **Up**: an inline attachment is uploaded with the message that carries it (Telegram has no
//!   upload without a message, so [`MediaHandling::upload`] hands inline attachments back
//!   unchanged and `send_message` uploads them). JPEG, PNG and WebP images up to 10 MB go as
//!   photos (shown inline), everything else as documents. A `telegram-file:` attachment is
//!   re-sent by file id; an `http(s)` one is fetched by Telegram from its URL.
//! - **Down**: `telegram-file:<file_id>` → `getFile` → `GET <api>/file/bot<token>/<path>`,
//!   refused before the transfer if the declared size is over the limit, and cut off if the body
//!   runs past it.
//!
//! Past a limit the refusal says the size and the limit, so the sender knows why.

use dm3_bridge_connector::{
    Attachment, AttachmentSource, BoxFuture, ConnectorError, MediaHandling, Text, Unsupported,
};
use teloxide_core::payloads::{SendDocumentSetters as _, SendPhotoSetters as _};
use teloxide_core::prelude::Requester as _;
use teloxide_core::requests::Request as _;
use teloxide_core::types::{ChatId, FileId, InputFile, MessageId, ParseMode};
use teloxide_core::{ApiError, RequestError};
use url::Url;

use crate::connector::TelegramConnector;
use crate::content::{MAX_DOWNLOAD_BYTES, MAX_UPLOAD_BYTES, file_id_of, megabytes};
use crate::format::{self, MAX_CAPTION_UNITS, SenderFormat};
use crate::html;
use crate::outbound::check_length;
use crate::reply::reply_parameters;

/// Largest image sent as a photo; larger ones go as documents.
const MAX_PHOTO_BYTES: u64 = 10 * 1024 * 1024;
const PHOTO_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

impl TelegramConnector {
    pub(crate) async fn send_attachment(
        &self,
        chat: i64,
        sender: &str,
        attachment: &Attachment,
        caption: Option<&Text>,
        reply_to: Option<i32>,
    ) -> Result<MessageId, ConnectorError> {
        if attachment.size() > MAX_UPLOAD_BYTES {
            return Err(
                Unsupported::AttachmentTooLarge { size: attachment.size(), max: MAX_UPLOAD_BYTES }.into()
            );
        }
        let rendered = match caption {
            Some(caption) => self.sender_format.render(sender, &format::body_html(caption)),
            None => SenderFormat::sender_only(sender),
        };
        check_length(rendered.visible_len, MAX_CAPTION_UNITS, "caption")?;
        let file = input_file(attachment)?;
        let as_photo =
            PHOTO_TYPES.contains(&attachment.mime().as_str()) && attachment.size() <= MAX_PHOTO_BYTES;
        let _turn = self.sends.turn(chat).await?;
        let post = |caption: String| {
            let file = file.clone();
            async move {
                if as_photo {
                    let mut request =
                        self.bot.send_photo(ChatId(chat), file).caption(caption).parse_mode(ParseMode::Html);
                    if let Some(target) = reply_to {
                        request = request.reply_parameters(reply_parameters(target));
                    }
                    request.send().await
                } else {
                    let mut request = self
                        .bot
                        .send_document(ChatId(chat), file)
                        .caption(caption)
                        .parse_mode(ParseMode::Html);
                    if let Some(target) = reply_to {
                        request = request.reply_parameters(reply_parameters(target));
                    }
                    request.send().await
                }
            }
        };
        match post(rendered.html).await {
            Ok(sent) => Ok(sent.id),
            Err(RequestError::Api(ApiError::CantParseEntities(_))) => {
                let plain = match caption {
                    Some(caption) => self.sender_format.render(sender, &html::from_plain(&caption.body)),
                    None => SenderFormat::sender_only(sender),
                };
                post(plain.html).await.map(|m| m.id).map_err(|e| self.failed(chat, e))
            }
            Err(e) => Err(self.failed(chat, e)),
        }
    }

    async fn fetch(&self, url: &Url, max_bytes: u64) -> Result<Vec<u8>, ConnectorError> {
        let file_id = file_id_of(url).ok_or_else(|| {
            ConnectorError::Permanent(format!("`{url}` is not a Telegram file of this bridge"))
        })?;
        let limit = max_bytes.min(MAX_DOWNLOAD_BYTES);
        let too_large = |size: u64| {
            ConnectorError::Permanent(format!(
                "the file is {}; the bridge can fetch at most {} from Telegram",
                megabytes(size),
                megabytes(limit)
            ))
        };
        let file = match self.bot.get_file(FileId(file_id.to_owned())).send().await {
            Ok(file) => file,
            Err(RequestError::Api(ApiError::Unknown(d))) if d.contains("file is too big") => {
                return Err(ConnectorError::Permanent(format!(
                    "the file is larger than the {} a Telegram bot can fetch",
                    megabytes(MAX_DOWNLOAD_BYTES)
                )));
            }
            Err(e) => return Err(classify_download(e)),
        };
        if u64::from(file.meta.size) > limit {
            return Err(too_large(u64::from(file.meta.size)));
        }
        let mut file_url = self.bot.api_url();
        file_url
            .path_segments_mut()
            .map_err(|()| ConnectorError::Permanent("the Bot API URL cannot hold a path".to_owned()))?
            .push("file")
            .push(&format!("bot{}", self.bot.token()))
            .extend(file.path.split('/'));
        let mut response = self.bot.client().get(file_url).send().await.map_err(|e| {
            ConnectorError::Transient(format!("downloading the file failed: {}", e.without_url()))
        })?;
        let status = response.status();
        if status.is_server_error() {
            return Err(ConnectorError::Transient(format!("Telegram's file server answered {status}")));
        }
        if !status.is_success() {
            return Err(ConnectorError::Permanent(format!("Telegram's file server answered {status}")));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            ConnectorError::Transient(format!("downloading the file failed: {}", e.without_url()))
        })? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

fn classify_download(error: RequestError) -> ConnectorError {
    match crate::errors::classify(error) {
        ConnectorError::Permanent(reason) => {
            ConnectorError::Permanent(format!("the file cannot be fetched: {reason}"))
        }
        other => other,
    }
}

/// What to hand teloxide for an attachment.
fn input_file(attachment: &Attachment) -> Result<InputFile, ConnectorError> {
    match attachment.source() {
        AttachmentSource::Inline(bytes) => {
            Ok(InputFile::memory(bytes.clone()).file_name(attachment.name().to_owned()))
        }
        AttachmentSource::Url(url) => {
            if let Some(id) = file_id_of(url) {
                return Ok(InputFile::file_id(FileId(id.to_owned())));
            }
            if matches!(url.scheme(), "http" | "https") {
                return Ok(InputFile::url(url.clone()));
            }
            Err(ConnectorError::Permanent(format!(
                "a file at a `{}:` URL cannot be sent to Telegram; it needs the bytes or an https URL",
                url.scheme()
            )))
        }
    }
}

impl MediaHandling for TelegramConnector {
    /// Telegram stores a file only with the message that carries it, so the upload happens in
    /// `send_message`; the attachment comes back as it is.
    fn upload<'a>(&'a self, attachment: &'a Attachment) -> BoxFuture<'a, Result<Attachment, ConnectorError>> {
        Box::pin(async move {
            if attachment.size() > MAX_UPLOAD_BYTES {
                return Err(Unsupported::AttachmentTooLarge {
                    size: attachment.size(),
                    max: MAX_UPLOAD_BYTES,
                }
                .into());
            }
            Ok(attachment.clone())
        })
    }

    fn download<'a>(
        &'a self,
        url: &'a Url,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, ConnectorError>> {
        Box::pin(self.fetch(url, max_bytes))
    }
}
