//! How a relayed message looks in the bot chat: the DM3 sender's name, then the message.
//!
//! Every message the bot posts comes from the bot, and one bot chat carries several DM3
//! contacts, so each relayed message names its sender. The operator picks the layout with a
//! template holding `{sender}` and `{body}` once each (default `{sender}: {body}`); the sender
//! is shown in bold, the template's own text is escaped, and the body is the neutral text's
//! HTML narrowed to Telegram's subset (or its plain body, escaped).
//!
//! Only the bot writes a sender's name in bold at the start of a line, so that is how a reader
//! tells who wrote what. A DM3 user's own text must not be able to draw that line inside their
//! bubble (`hi\n\n**bob.eth**: send me the code` would read as a second message, from bob.eth):
//! bold that starts a line of a body rendered from DM3, or starts the body, is shown as plain
//! text ([`body_html`]). Bold elsewhere in a line stays bold.
//!
//! Telegram counts limits in UTF-16 units of the visible text: 4096 for a message, 1024 for a
//! caption. The rendered text carries that count so the connector can refuse a text that is too
//! long with a clear reason instead of Telegram's "message is too long".

use dm3_bridge_connector::Text;
use serde::{Deserialize, Serialize};

use crate::html::{self, TelegramHtml};

/// Longest message text Telegram takes, in UTF-16 units after parsing.
pub const MAX_TEXT_UNITS: usize = 4096;
/// Longest caption Telegram takes, in UTF-16 units after parsing.
pub const MAX_CAPTION_UNITS: usize = 1024;

const SENDER: &str = "{sender}";
const BODY: &str = "{body}";
const MAX_TEMPLATE_BYTES: usize = 200;

/// A piece of the template around the body: its own text, or the sender's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePart<'a> {
    Text(&'a str),
    Sender,
}

/// The template of a relayed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SenderFormat(String);

impl Default for SenderFormat {
    fn default() -> Self {
        Self(format!("{SENDER}: {BODY}"))
    }
}

impl SenderFormat {
    /// A template; see [`Self::problem`] for the rules.
    pub fn new(template: impl Into<String>) -> Self {
        Self(template.into())
    }

    /// What is wrong with the template, if anything.
    pub fn problem(&self) -> Option<String> {
        let template = &self.0;
        if template.matches(SENDER).count() != 1 || template.matches(BODY).count() != 1 {
            return Some(format!("must hold {SENDER} and {BODY} once each, e.g. \"{SENDER}: {BODY}\""));
        }
        if template.len() > MAX_TEMPLATE_BYTES {
            return Some(format!("must be at most {MAX_TEMPLATE_BYTES} bytes"));
        }
        None
    }

    /// Only the sender's name (bold): the caption of a file sent without one.
    pub fn sender_only(sender: &str) -> TelegramHtml {
        let mut out = TelegramHtml::default();
        out.push_markup("<b>");
        out.push_text(sender);
        out.push_markup("</b>");
        out
    }

    /// The template's pieces before and after `{body}`, for a body the bridge does not render
    /// itself (a bridge payload in Telegram's own markup, which `native` frames in that markup).
    pub fn frame(&self) -> (Vec<FramePart<'_>>, Vec<FramePart<'_>>) {
        let (before, after) = self.0.split_once(BODY).unwrap_or((self.0.as_str(), ""));
        (frame_parts(before), frame_parts(after))
    }

    /// The message as posted: the template with the sender (bold) and the body filled in.
    pub fn render(&self, sender: &str, body: &TelegramHtml) -> TelegramHtml {
        let mut out = TelegramHtml::default();
        let mut rest = self.0.as_str();
        while !rest.is_empty() {
            let next = [SENDER, BODY].iter().filter_map(|p| rest.find(p).map(|at| (at, *p))).min();
            match next {
                Some((at, placeholder)) => {
                    out.push_text(&rest[..at]);
                    if placeholder == SENDER {
                        out.push_markup("<b>");
                        out.push_text(sender);
                        out.push_markup("</b>");
                    } else {
                        out.push_html(body);
                    }
                    rest = &rest[at + placeholder.len()..];
                }
                None => {
                    out.push_text(rest);
                    rest = "";
                }
            }
        }
        out
    }
}

/// `text` as template pieces: around `{sender}` if it holds it.
fn frame_parts(text: &str) -> Vec<FramePart<'_>> {
    let mut parts = Vec::new();
    let (head, tail) = match text.split_once(SENDER) {
        Some((head, tail)) => (head, Some(tail)),
        None => (text, None),
    };
    if !head.is_empty() {
        parts.push(FramePart::Text(head));
    }
    if let Some(tail) = tail {
        parts.push(FramePart::Sender);
        if !tail.is_empty() {
            parts.push(FramePart::Text(tail));
        }
    }
    parts
}

/// The body of a neutral text: its HTML narrowed to Telegram's, or its plain body; bold that
/// would start a line is plain (see the module doc).
pub fn body_html(text: &Text) -> TelegramHtml {
    match &text.html {
        Some(markup) => without_leading_bold(html::to_telegram(markup)),
        None => html::from_plain(&text.body),
    }
}

/// `body` with every `<b>` that opens at the start of a line (only white space and other
/// opening tags before it on the line) taken out, with its `</b>`; the text stays. `body` is
/// Telegram HTML as [`html::to_telegram`] writes it: known tags, well nested, every `<` in text
/// escaped.
fn without_leading_bold(body: TelegramHtml) -> TelegramHtml {
    let mut out = String::with_capacity(body.html.len());
    // For each open `<b>`: whether it was taken out.
    let mut bold: Vec<bool> = Vec::new();
    let mut line_start = true;
    let mut rest = body.html.as_str();
    while let Some(lt) = rest.find('<') {
        let (text, tail) = rest.split_at(lt);
        for c in text.chars() {
            if c == '\n' {
                line_start = true;
            } else if !c.is_whitespace() {
                line_start = false;
            }
        }
        out.push_str(text);
        let Some(gt) = tail.find('>') else {
            out.push_str(tail);
            rest = "";
            break;
        };
        let tag = &tail[..=gt];
        match tag {
            "<b>" => {
                bold.push(line_start);
                if !line_start {
                    out.push_str(tag);
                }
            }
            "</b>" => {
                if !bold.pop().unwrap_or(false) {
                    out.push_str(tag);
                }
            }
            _ => out.push_str(tag),
        }
        rest = &tail[gt + 1..];
    }
    out.push_str(rest);
    TelegramHtml { html: out, visible_len: body.visible_len }
}

/// A notice from the bridge: in italics, so it does not read as the contact's words.
pub fn notice_html(text: &Text) -> TelegramHtml {
    let mut out = TelegramHtml::default();
    out.push_markup("<i>");
    out.push_html(&body_html(text));
    out.push_markup("</i>");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn default_and_custom_templates() {
        let body = body_html(&Text::plain("1 < 2"));
        let rendered = SenderFormat::default().render("alice.eth", &body);
        assert_eq!(rendered.html, "<b>alice.eth</b>: 1 &lt; 2");
        assert_eq!(rendered.visible_len, "alice.eth: 1 < 2".len());
        let custom = SenderFormat::new("[{sender}] {body}")
            .render("a<b", &body_html(&Text::formatted("x", "<em>x</em>")));
        assert_eq!(custom.html, "[<b>a&lt;b</b>] <i>x</i>");
    }

    #[test]
    fn a_dm3_user_cannot_draw_a_bold_sender_line_in_their_bubble() {
        let mimic = Text::formatted(
            "hi\n\n**bob.eth**: send me the code",
            "<p>hi</p>\n<p><strong>bob.eth</strong>: send me the code</p>",
        );
        let rendered = SenderFormat::default().render("alice.eth", &body_html(&mimic));
        assert_eq!(rendered.html, "<b>alice.eth</b>: hi\n\nbob.eth: send me the code");
        // At the very start, after white space or inside other tags, and in a heading alike.
        for html in ["<b>bob.eth</b>: x", "a<br> <i><b>bob.eth</b>: x</i>", "<h2>bob.eth: x</h2>"] {
            let body = body_html(&Text::formatted("", html)).html;
            assert!(!body.contains("<b>"), "{html} → {body}");
        }
        // Bold inside a line stays bold.
        let inline = body_html(&Text::formatted("", "<p>it is <b>very</b> <b>important</b></p>"));
        assert_eq!(inline.html, "it is <b>very</b> <b>important</b>");
        assert_eq!(inline.visible_len, "it is very important".len());
    }

    #[test]
    fn frames_split_the_template_around_the_body() {
        assert_eq!(SenderFormat::default().frame(), (vec![FramePart::Sender, FramePart::Text(": ")], vec![]));
        assert_eq!(
            SenderFormat::new("{body} (from {sender})").frame(),
            (vec![], vec![FramePart::Text(" (from "), FramePart::Sender, FramePart::Text(")")])
        );
    }

    #[test]
    fn templates_are_validated() {
        assert_eq!(SenderFormat::default().problem(), None);
        assert!(SenderFormat::new("{body}").problem().is_some());
        assert!(SenderFormat::new("{sender}{sender}{body}").problem().is_some());
        assert!(SenderFormat::new(format!("{{sender}}{{body}}{}", "x".repeat(300))).problem().is_some());
    }
}
