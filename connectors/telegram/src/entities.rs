//! Telegram text with entities, as the neutral [`Text`]: markdown in the body, HTML beside it.
//!
//! Telegram sends formatting as a list of entities over the plain text, with offsets and
//! lengths in UTF-16 code units. DM3 messages are markdown-ish text, so the body gets markdown
//! markers (`**bold**`, `_italic_`, `~~strike~~`, `` `code` ``, fenced `pre`, `[text](url)`),
//! and `html` gets the same as HTML for the engine's other uses.
//!
//! The offsets come from outside, so they are converted defensively (teloxide's own converter
//! asserts on a bad offset): an entity that does not start and end on a character boundary
//! inside the text is ignored, and an entity that overlaps the end of an enclosing one is cut
//! there, so the output is always well nested.

use dm3_bridge_connector::Text;
use teloxide_core::types::{MessageEntity, MessageEntityKind};

use crate::html::escape;

#[derive(Debug, Clone, Copy)]
struct Span<'a> {
    start: usize,
    end: usize,
    kind: &'a MessageEntityKind,
}

/// `text` with its Telegram `entities`.
pub fn to_text(text: &str, entities: &[MessageEntity]) -> Text {
    let mut spans: Vec<Span<'_>> =
        byte_spans(text, entities).into_iter().filter(|s| formats(s.kind)).collect();
    if spans.is_empty() {
        return Text::plain(text);
    }
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out = Output::default();
    let mut stack: Vec<Span<'_>> = Vec::new();
    let mut position = 0;
    for span in spans {
        while let Some(top) = stack.last().copied() {
            if top.end > span.start {
                break;
            }
            out.text(&text[position..top.end]);
            out.close(top.kind);
            position = top.end;
            stack.pop();
        }
        out.text(&text[position..span.start]);
        position = span.start;
        let end = stack.last().map_or(span.end, |outer| span.end.min(outer.end));
        out.open(span.kind);
        stack.push(Span { end, ..span });
    }
    while let Some(top) = stack.pop() {
        out.text(&text[position..top.end]);
        out.close(top.kind);
        position = top.end;
    }
    out.text(&text[position..]);
    Text::formatted(out.markdown, out.html)
}

/// Whether the entity is formatting (links, mentions and hashtags are text already).
fn formats(kind: &MessageEntityKind) -> bool {
    use MessageEntityKind::*;
    matches!(
        kind,
        Bold | Italic
            | Underline
            | Strikethrough
            | Code
            | Pre { .. }
            | TextLink { .. }
            | Blockquote
            | ExpandableBlockquote
    )
}

/// The entities with byte offsets, dropping those that do not fall on character boundaries.
fn byte_spans<'a>(text: &str, entities: &'a [MessageEntity]) -> Vec<Span<'a>> {
    // UTF-16 offset → byte offset at every character boundary, ascending.
    let mut boundaries = Vec::with_capacity(text.len() + 1);
    let mut utf16 = 0;
    for (byte, c) in text.char_indices() {
        boundaries.push((utf16, byte));
        utf16 += c.len_utf16();
    }
    boundaries.push((utf16, text.len()));
    let to_byte =
        |offset: usize| boundaries.binary_search_by_key(&offset, |&(u, _)| u).ok().map(|i| boundaries[i].1);
    entities
        .iter()
        .filter_map(|entity| {
            let start = to_byte(entity.offset)?;
            let end = to_byte(entity.offset.checked_add(entity.length)?)?;
            (start < end).then_some(Span { start, end, kind: &entity.kind })
        })
        .collect()
}

#[derive(Default)]
struct Output {
    markdown: String,
    html: String,
}

impl Output {
    fn text(&mut self, text: &str) {
        self.markdown.push_str(text);
        self.html.push_str(&escape(text));
    }

    fn open(&mut self, kind: &MessageEntityKind) {
        use MessageEntityKind::*;
        let (markdown, html) = match kind {
            Bold => ("**".to_owned(), "<b>".to_owned()),
            Italic => ("_".to_owned(), "<i>".to_owned()),
            Underline => (String::new(), "<u>".to_owned()),
            Strikethrough => ("~~".to_owned(), "<s>".to_owned()),
            Code => ("`".to_owned(), "<code>".to_owned()),
            Pre { language } => {
                let language = language.as_deref().unwrap_or("");
                let class = if language.is_empty() {
                    String::new()
                } else {
                    format!(" class=\"language-{}\"", escape(language))
                };
                (format!("```{language}\n"), format!("<pre><code{class}>"))
            }
            TextLink { .. } => ("[".to_owned(), String::new()),
            Blockquote | ExpandableBlockquote => (String::new(), "<blockquote>".to_owned()),
            _ => (String::new(), String::new()),
        };
        if let TextLink { url } = kind {
            self.html.push_str(&format!("<a href=\"{}\">", escape(url.as_str())));
        }
        self.markdown.push_str(&markdown);
        self.html.push_str(&html);
    }

    fn close(&mut self, kind: &MessageEntityKind) {
        use MessageEntityKind::*;
        let (markdown, html) = match kind {
            Bold => ("**".to_owned(), "</b>"),
            Italic => ("_".to_owned(), "</i>"),
            Underline => (String::new(), "</u>"),
            Strikethrough => ("~~".to_owned(), "</s>"),
            Code => ("`".to_owned(), "</code>"),
            Pre { .. } => ("\n```".to_owned(), "</code></pre>"),
            TextLink { url } => (format!("]({url})"), "</a>"),
            Blockquote | ExpandableBlockquote => (String::new(), "</blockquote>"),
            _ => (String::new(), ""),
        };
        self.markdown.push_str(&markdown);
        self.html.push_str(html);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn entity(kind: MessageEntityKind, offset: usize, length: usize) -> MessageEntity {
        MessageEntity { kind, offset, length }
    }

    #[test]
    fn formatting_becomes_markdown_and_html() {
        use MessageEntityKind::*;
        let text = "bold it code link";
        let url = reqwest::Url::parse("https://x.org/").unwrap();
        let entities =
            [entity(Bold, 0, 4), entity(Italic, 5, 2), entity(Code, 8, 4), entity(TextLink { url }, 13, 4)];
        let converted = to_text(text, &entities);
        assert_eq!(converted.body, "**bold** _it_ `code` [link](https://x.org/)");
        assert_eq!(
            converted.html.as_deref(),
            Some(r#"<b>bold</b> <i>it</i> <code>code</code> <a href="https://x.org/">link</a>"#)
        );
    }

    #[test]
    fn utf16_offsets_nesting_and_pre() {
        use MessageEntityKind::*;
        // "👍" is two UTF-16 units: the bold entity starts after it.
        let converted = to_text("👍 a<b", &[entity(Bold, 3, 3), entity(Italic, 5, 1)]);
        assert_eq!(converted.body, "👍 **a<_b_**");
        assert_eq!(converted.html.as_deref(), Some("👍 <b>a&lt;<i>b</i></b>"));
        let pre = to_text("fn x", &[entity(Pre { language: Some("rust".into()) }, 0, 4)]);
        assert_eq!(pre.body, "```rust\nfn x\n```");
        assert_eq!(pre.html.as_deref(), Some(r#"<pre><code class="language-rust">fn x</code></pre>"#));
    }

    #[test]
    fn bad_offsets_are_ignored_and_plain_text_stays_plain() {
        use MessageEntityKind::*;
        // Offset 1 is inside the surrogate pair of 👍; offset 99 is past the end.
        let converted = to_text("👍x", &[entity(Bold, 1, 1), entity(Italic, 0, 99), entity(Mention, 0, 1)]);
        assert_eq!(converted, Text::plain("👍x"));
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_the_text(text in "\\PC{0,30}", raw in proptest::collection::vec((0usize..40, 0usize..40, 0u8..4), 0..6)) {
            use MessageEntityKind::*;
            let entities: Vec<_> = raw.into_iter().map(|(offset, length, k)| {
                let kind = [Bold, Italic, Code, Strikethrough][usize::from(k)].clone();
                entity(kind, offset, length)
            }).collect();
            let converted = to_text(&text, &entities);
            let stripped: String = converted.body.replace("**", "").replace("~~", "").replace(['_', '`'], "");
            let expected: String = text.replace("**", "").replace("~~", "").replace(['_', '`'], "");
            prop_assert_eq!(stripped, expected);
        }
    }
}
