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
//!
//! The markup the bridge writes must say what the Telegram user saw, and nothing more
//! (docs/telegram.md, section 3): the text inside an entity is escaped, so it cannot end the
//! entity early or start a link (`\*`, `\]`, `\<`, …); a code span or block gets a fence longer
//! than any run of backticks in it; a `text_link` becomes a link only for an `http(s)`, `tg` or
//! `mailto` URL, the links the bridge lets through the other way too (`html::safe_link`), and a
//! `javascript:` one stays plain text; its URL is percent-encoded wherever markdown could read
//! it as the end of the link (`)`, `]`, spaces, `<`, …) and its text is kept on one line. Text
//! outside entities is what the user typed, and is passed on as typed.

use dm3_bridge_connector::Text;
use teloxide_core::types::{MessageEntity, MessageEntityKind};

use crate::html::{escape, safe_link};

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
            out.close();
            position = top.end;
            stack.pop();
        }
        out.text(&text[position..span.start]);
        position = span.start;
        let end = stack.last().map_or(span.end, |outer| span.end.min(outer.end));
        out.open(span.kind, &text[span.start..end]);
        stack.push(Span { end, ..span });
    }
    while let Some(top) = stack.pop() {
        out.text(&text[position..top.end]);
        out.close();
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
    /// What closes each open entity, innermost last.
    open: Vec<Closer>,
}

/// What closes an entity, and how text inside it is written.
struct Closer {
    markdown: String,
    html: &'static str,
    inside: Inside,
}

/// How text inside an entity is written in markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inside {
    /// Escaped, so it cannot end the entity or start other markup.
    Escaped,
    /// Escaped, and on one line: a link's text.
    LinkText,
    /// As it is: a code span or block, whose fence is longer than any backticks inside.
    Verbatim,
}

impl Output {
    fn inside(&self) -> Option<Inside> {
        // Code wins over everything it is in: nothing is markup there.
        if self.open.iter().any(|c| c.inside == Inside::Verbatim) {
            return Some(Inside::Verbatim);
        }
        self.open.last().map(|c| c.inside).map(|inside| {
            if self.open.iter().any(|c| c.inside == Inside::LinkText) { Inside::LinkText } else { inside }
        })
    }

    fn text(&mut self, text: &str) {
        match self.inside() {
            None | Some(Inside::Verbatim) => self.markdown.push_str(text),
            Some(Inside::Escaped) => escape_markdown_into(&mut self.markdown, text, false),
            Some(Inside::LinkText) => escape_markdown_into(&mut self.markdown, text, true),
        }
        self.html.push_str(&escape(text));
    }

    /// Opens `kind` over `content` (the text it spans, to fit a code fence to it).
    fn open(&mut self, kind: &MessageEntityKind, content: &str) {
        use MessageEntityKind::*;
        let in_code = self.inside() == Some(Inside::Verbatim);
        let marker = |open: &str, close: &str| (open.to_owned(), close.to_owned());
        let ((markdown, closing), html, html_close, inside) = match kind {
            Bold => (marker("**", "**"), "<b>".to_owned(), "</b>", Inside::Escaped),
            Italic => (marker("_", "_"), "<i>".to_owned(), "</i>", Inside::Escaped),
            Underline => (marker("", ""), "<u>".to_owned(), "</u>", Inside::Escaped),
            Strikethrough => (marker("~~", "~~"), "<s>".to_owned(), "</s>", Inside::Escaped),
            Code => {
                let fence = "`".repeat(longest_backtick_run(content) + 1);
                // A space keeps a backtick at either end from joining the fence; markdown
                // drops one space on each side again.
                let pad = if content.starts_with('`') || content.ends_with('`') { " " } else { "" };
                (
                    (format!("{fence}{pad}"), format!("{pad}{fence}")),
                    "<code>".to_owned(),
                    "</code>",
                    Inside::Verbatim,
                )
            }
            Pre { language } => {
                let fence = "`".repeat((longest_backtick_run(content) + 1).max(3));
                // The info string ends at the line; a language is one word of code-ish letters.
                let language = language
                    .as_deref()
                    .filter(|l| l.chars().all(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(c)))
                    .unwrap_or("");
                let class = if language.is_empty() {
                    String::new()
                } else {
                    format!(" class=\"language-{}\"", escape(language))
                };
                (
                    (format!("{fence}{language}\n"), format!("\n{fence}")),
                    format!("<pre><code{class}>"),
                    "</code></pre>",
                    Inside::Verbatim,
                )
            }
            TextLink { url } if safe_link(url.as_str()) => (
                ("[".to_owned(), format!("]({})", link_destination(url.as_str()))),
                format!("<a href=\"{}\">", escape(url.as_str())),
                "</a>",
                Inside::LinkText,
            ),
            // A link to anything else (`javascript:`, `data:`, …) is its text alone.
            TextLink { .. } => (marker("", ""), String::new(), "", Inside::Escaped),
            Blockquote | ExpandableBlockquote => {
                (marker("", ""), "<blockquote>".to_owned(), "</blockquote>", Inside::Escaped)
            }
            _ => (marker("", ""), String::new(), "", Inside::Escaped),
        };
        // Inside code nothing is markup: the markers would show as text.
        let (markdown, closing) = if in_code { (String::new(), String::new()) } else { (markdown, closing) };
        self.markdown.push_str(&markdown);
        self.html.push_str(&html);
        self.open.push(Closer { markdown: closing, html: html_close, inside });
    }

    fn close(&mut self) {
        if let Some(closer) = self.open.pop() {
            self.markdown.push_str(&closer.markdown);
            self.html.push_str(closer.html);
        }
    }
}

/// Escapes what markdown could read as markup in `text`; on one line if `one_line` (a line
/// break in a link's text could end the paragraph, and the link with it).
fn escape_markdown_into(out: &mut String, text: &str, one_line: bool) {
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '|' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' if one_line => out.push(' '),
            c => out.push(c),
        }
    }
}

/// A URL as a markdown link destination: every character that markdown could take for the end
/// of the destination, or the start of a title, percent-encoded.
fn link_destination(url: &str) -> String {
    const KEPT: &str = "-._~:/?#@$&+,;=%";
    let mut out = String::with_capacity(url.len());
    for byte in url.bytes() {
        if byte.is_ascii_alphanumeric() || KEPT.as_bytes().contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The longest run of backticks in `text`.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
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
        assert_eq!(converted.body, "👍 **a\\<_b_**");
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

    fn link(url: &str, offset: usize, length: usize) -> MessageEntity {
        entity(MessageEntityKind::TextLink { url: reqwest::Url::parse(url).unwrap() }, offset, length)
    }

    /// The links a markdown reader finds in `markdown`: (destination, text).
    fn links_in(markdown: &str) -> Vec<(String, String)> {
        use pulldown_cmark::{Event, Parser, Tag, TagEnd};
        let mut links = Vec::new();
        let mut current: Option<(String, String)> = None;
        for event in Parser::new(markdown) {
            match event {
                Event::Start(Tag::Link { dest_url, .. }) => {
                    current = Some((dest_url.to_string(), String::new()))
                }
                Event::Text(text) | Event::Code(text) => {
                    if let Some((_, label)) = current.as_mut() {
                        label.push_str(&text);
                    }
                }
                Event::End(TagEnd::Link) => links.extend(current.take()),
                Event::Html(html) | Event::InlineHtml(html) => panic!("raw HTML in {markdown:?}: {html}"),
                _ => {}
            }
        }
        links
    }

    #[test]
    fn a_link_to_anything_but_http_tg_or_mailto_is_plain_text() {
        let converted = to_text("click me", &[link("javascript:alert(document.cookie)", 0, 8)]);
        assert_eq!(converted.body, "click me");
        assert_eq!(converted.html.as_deref(), Some("click me"));
        assert!(links_in(&converted.body).is_empty());
        for url in ["https://x.org/", "tg://resolve?domain=a", "mailto:a@x.org"] {
            let converted = to_text("ok", &[link(url, 0, 2)]);
            assert_eq!(links_in(&converted.body), [(url.to_owned(), "ok".to_owned())], "{}", converted.body);
        }
    }

    #[test]
    fn a_link_cannot_smuggle_a_second_link_or_formatting() {
        // A `)` and `](` in the URL would end the link and start another.
        let converted = to_text("docs", &[link("https://x.org/a)](javascript:alert(1))", 0, 4)]);
        assert_eq!(
            links_in(&converted.body),
            [("https://x.org/a%29%5D%28javascript:alert%281%29%29".to_owned(), "docs".to_owned())],
            "{}",
            converted.body
        );
        // The link's text cannot close it early, open another, or span a paragraph break.
        let text = "a](javascript:x) **b**\n\n[c](javascript:y)";
        let converted = to_text(text, &[link("https://x.org/", 0, text.encode_utf16().count())]);
        let links = links_in(&converted.body);
        assert_eq!(links.len(), 1, "{}", converted.body);
        assert_eq!(links[0].0, "https://x.org/");
        assert_eq!(links[0].1, "a](javascript:x) **b**  [c](javascript:y)");
        assert!(!converted.body.contains("\n"), "{}", converted.body);
    }

    #[test]
    fn entity_text_cannot_end_its_entity_and_code_keeps_its_backticks() {
        use MessageEntityKind::*;
        let bold = to_text("a** <https://evil.example> *b", &[entity(Bold, 0, 29)]);
        assert_eq!(bold.body, "**a\\*\\* \\<https://evil.example\\> \\*b**");
        assert!(links_in(&bold.body).is_empty(), "{}", bold.body);
        let code = to_text("x `y` z", &[entity(Code, 0, 7)]);
        assert_eq!(code.body, "``x `y` z``");
        let edge = to_text("`a`", &[entity(Code, 0, 3)]);
        assert_eq!(edge.body, "`` `a` ``");
        let pre = to_text("```\nx", &[entity(Pre { language: Some("a\n```".into()) }, 0, 5)]);
        assert_eq!(pre.body, "````\n```\nx\n````", "a language that is no word is left out");
    }

    fn url_strategy() -> impl Strategy<Value = reqwest::Url> {
        let scheme = proptest::sample::select(
            &[
                "http://x.org/",
                "https://x.org/",
                "javascript:",
                "data:text/html,",
                "tg://resolve?d=",
                "mailto:",
            ][..],
        );
        (scheme, "[a-z()\\[\\]<>\"'*_ `\n\\\\!#]{0,12}")
            .prop_filter_map("a URL", |(scheme, rest)| reqwest::Url::parse(&format!("{scheme}{rest}")).ok())
    }

    proptest! {
        #[test]
        // The user's text holds no markup characters here, so stripping the markup the
        // conversion adds is unambiguous (with them, "**" typed by the user and "**" added for
        // bold cannot be told apart by a strip); their escaping has its own tests above.
        fn never_panics_and_keeps_the_text(text in "[^*~_`\\\\\\p{C}]{0,30}", raw in proptest::collection::vec((0usize..40, 0usize..40, 0u8..4), 0..6)) {
            use MessageEntityKind::*;
            let entities: Vec<_> = raw.into_iter().map(|(offset, length, k)| {
                let kind = [Bold, Italic, Code, Strikethrough][usize::from(k)].clone();
                entity(kind, offset, length)
            }).collect();
            let converted = to_text(&text, &entities);
            // The markup, escapes and a code span's padding aside, the text is the user's.
            let strip = |s: &str| s.replace("**", "").replace("~~", "").replace(['_', '`', '\\', ' '], "");
            prop_assert_eq!(strip(&converted.body), strip(&text));
        }

        #[test]
        fn the_only_links_are_the_users_safe_text_links(
            words in proptest::collection::vec("[a-z\\]\\[()<>*_`\n ]{1,6}", 1..5),
            urls in proptest::collection::vec(url_strategy(), 1..5),
        ) {
            let mut text = String::new();
            let mut entities = Vec::new();
            for (word, url) in words.iter().zip(&urls) {
                let offset = text.encode_utf16().count();
                text.push_str(word);
                entities.push(entity(MessageEntityKind::TextLink { url: url.clone() }, offset, word.encode_utf16().count()));
                text.push(' ');
            }
            let converted = to_text(&text, &entities);
            let safe: Vec<String> = words.iter().zip(&urls)
                .filter(|(_, url)| safe_link(url.as_str()))
                .map(|(_, url)| link_destination(url.as_str()))
                .collect();
            let found: Vec<String> = links_in(&converted.body).into_iter().map(|(dest, _)| dest).collect();
            prop_assert_eq!(found, safe, "{}", converted.body);
        }
    }
}
