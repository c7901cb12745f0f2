//! Stock-client text to safe HTML.
//!
//! The reference messenger sends what its users type, which may be Markdown (docs/protocol.md
//! §5.1); a network that shows formatting gets it as HTML, next to the text itself as the plain
//! body (`Text::body` is always complete on its own). The text comes from anyone on DM3, so
//! the HTML is built from parser events that cannot carry markup of the sender's own:
//! - raw HTML (blocks and inline tags) becomes text, shown escaped, never markup;
//! - a link keeps its `href` only for `http`, `https` and `mailto` destinations; any other
//!   (`javascript:`, `data:`, relative paths) keeps its text and loses the link;
//! - an image becomes a link to its source (under the same rule) with its alt text: networks
//!   do not load remote images from messages (Matrix allows only `mxc://`), and a bridge
//!   should not make clients fetch URLs a stranger chose;
//! - only CommonMark plus strikethrough: no tables, task lists, footnotes, heading attributes
//!   or math, whose HTML some networks cannot show.
//!
//! Text without any formatting renders to `None`, so plain messages stay plain on networks
//! that distinguish the two (Matrix sends no `formatted_body` then).

use dm3_bridge_connector::Text;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// URL schemes a rendered link may point to.
const SAFE_SCHEMES: [&str; 3] = ["http", "https", "mailto"];

/// `text` as neutral text: the text itself as the body, plus its HTML rendering when it has
/// any formatting.
pub fn render_text(text: &str) -> Text {
    match render_html(text) {
        Some(html) => Text::formatted(text, html),
        None => Text::plain(text),
    }
}

/// The sanitized HTML of Markdown `text`, or `None` when the text has no formatting.
pub fn render_html(text: &str) -> Option<String> {
    let mut formatted = false;
    // For each open link or image: whether its start was kept (so its end is too).
    let mut open_links: Vec<bool> = Vec::new();
    let events: Vec<Event<'_>> = Parser::new_ext(text, Options::ENABLE_STRIKETHROUGH)
        .filter_map(|event| {
            let event = sanitize(event, &mut open_links)?;
            formatted |= is_formatting(&event);
            Some(event)
        })
        .collect();
    if !formatted {
        return None;
    }
    let mut html = String::with_capacity(text.len() * 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    Some(html.trim_end().to_owned())
}

/// The event with the sender's markup defused (see the module documentation).
fn sanitize<'a>(event: Event<'a>, open_links: &mut Vec<bool>) -> Option<Event<'a>> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
        Event::Start(Tag::Link { link_type, dest_url, title, id })
        | Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            let keep = is_safe_url(&dest_url);
            open_links.push(keep);
            keep.then_some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            open_links.pop().unwrap_or(false).then_some(Event::End(TagEnd::Link))
        }
        other => Some(other),
    }
}

/// Whether an event makes the HTML differ from the plain text.
fn is_formatting(event: &Event<'_>) -> bool {
    !matches!(
        event,
        Event::Text(_) | Event::SoftBreak | Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph)
    )
}

/// An absolute URL with one of [`SAFE_SCHEMES`].
fn is_safe_url(url: &CowStr<'_>) -> bool {
    url::Url::parse(url).is_ok_and(|parsed| SAFE_SCHEMES.contains(&parsed.scheme()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_text_stays_plain() {
        assert_eq!(render_text("hello there\nsecond line"), Text::plain("hello there\nsecond line"));
        assert_eq!(render_html("two\n\nparagraphs"), None);
    }

    #[test]
    fn markdown_becomes_html_with_the_source_as_body() {
        let text = render_text("**bold** and _it_ and ~~gone~~ and `code`");
        assert_eq!(text.body, "**bold** and _it_ and ~~gone~~ and `code`");
        assert_eq!(
            text.html.as_deref(),
            Some("<p><strong>bold</strong> and <em>it</em> and <del>gone</del> and <code>code</code></p>")
        );
        let list = render_html("- a\n- b").unwrap();
        assert_eq!(list, "<ul>\n<li>a</li>\n<li>b</li>\n</ul>");
        let quote = render_html("> said").unwrap();
        assert_eq!(quote, "<blockquote>\n<p>said</p>\n</blockquote>");
    }

    #[test]
    fn raw_html_is_shown_not_interpreted() {
        let html = render_html("**hi** <script>alert(1)</script> <img src=x onerror=alert(1)>").unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        let block = render_html("<div onclick=\"x()\">\n\n*a*").unwrap();
        assert!(!block.contains("<div"), "{block}");
        // Text content: `<`, `>` and `&` escaped, which is all text needs.
        assert!(block.starts_with("&lt;div onclick=\"x()\"&gt;"), "{block}");
    }

    #[test]
    fn only_safe_links_keep_their_target() {
        assert_eq!(
            render_html("[site](https://example.org/a?b=1&c=\"2\")").unwrap(),
            "<p><a href=\"https://example.org/a?b=1&amp;c=%222%22\">site</a></p>"
        );
        assert_eq!(
            render_html("[mail](mailto:a@example.org)").unwrap(),
            "<p><a href=\"mailto:a@example.org\">mail</a></p>"
        );
        for unsafe_link in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](data:text/html,hi)",
            "[x](/relative)",
        ] {
            // The link is gone, its text remains: nothing left to format, so no HTML at all.
            assert_eq!(render_html(unsafe_link), None, "{unsafe_link}");
        }
        let mixed = render_html("**b** [x](javascript:alert(1)) [y](https://e.org)").unwrap();
        assert_eq!(mixed, "<p><strong>b</strong> x <a href=\"https://e.org\">y</a></p>");
    }

    #[test]
    fn images_become_links_to_their_source() {
        assert_eq!(
            render_html("![a cat](https://example.org/cat.png)").unwrap(),
            "<p><a href=\"https://example.org/cat.png\">a cat</a></p>"
        );
        assert_eq!(render_html("![a cat](javascript:x)"), None);
        let linked = render_html("[![pic](javascript:x)](https://e.org)").unwrap();
        assert_eq!(linked, "<p><a href=\"https://e.org\">pic</a></p>");
    }

    proptest! {
        #[test]
        fn no_input_yields_a_tag_outside_the_allowed_set(text in "[<>a-z*_\\[\\]()!:/ \n`~#>-]{0,80}") {
            if let Some(html) = render_html(&text) {
                let mut rest = html.as_str();
                while let Some(start) = rest.find('<') {
                    let tag = &rest[start + 1..];
                    let name: String = tag
                        .trim_start_matches('/')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    prop_assert!(
                        ["p", "strong", "em", "del", "code", "pre", "a", "ul", "ol", "li", "blockquote",
                         "h1", "h2", "h3", "h4", "h5", "h6", "hr", "br"].contains(&name.as_str()),
                        "tag {name} in {html}"
                    );
                    rest = &tag[1..];
                }
                let lower = html.to_ascii_lowercase();
                prop_assert!(!lower.contains("href=\"javascript") && !lower.contains("src="), "{html}");
            }
        }
    }
}
