//! The neutral model's HTML, narrowed to the HTML that Telegram's `parse_mode=HTML` accepts.
//!
//! Telegram parses a small subset (`b i u s a code pre blockquote tg-spoiler`, the entities
//! `&lt; &gt; &amp; &quot;` and numeric ones) and refuses the whole message on anything else
//! ("can't parse entities"). The HTML we get is whatever a DM3 client's markdown renderer or a
//! Matrix client produced: paragraphs, lists, headings, `strong`/`em`, attributes. So this is a
//! small, forgiving converter, not a validator:
//! - allowed tags are kept (their aliases mapped: `strong`→`b`, `em`→`i`, `del`→`s`, …), with
//!   only the attributes Telegram reads (`href` of an http(s)/tg/mailto link, a `language-` class);
//! - block tags become line breaks (`p`, `br`, `li` with a bullet, headings in bold);
//! - every other tag is dropped and its text kept;
//! - text is decoded and re-escaped, so a stray `<` or an unknown `&entity;` stays literal;
//! - nesting is repaired: a close tag closes what is open down to its match, everything open is
//!   closed at the end, and nothing is nested inside `code`/`pre` (Telegram refuses that).
//!
//! It also counts the visible text in UTF-16 units, which is what Telegram's 4096-character
//! limit counts. If Telegram still refuses the result, the connector resends the plain body.

/// The Telegram HTML of some text, and how long Telegram will count it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TelegramHtml {
    pub html: String,
    /// Visible characters in UTF-16 code units (Telegram's measure).
    pub visible_len: usize,
}

impl TelegramHtml {
    /// Appends text, escaped.
    pub fn push_text(&mut self, text: &str) {
        self.visible_len += text.encode_utf16().count();
        escape_into(&mut self.html, text);
    }

    /// Appends markup that shows nothing.
    pub fn push_markup(&mut self, markup: &str) {
        self.html.push_str(markup);
    }

    /// Appends already converted HTML.
    pub fn push_html(&mut self, other: &TelegramHtml) {
        self.html.push_str(&other.html);
        self.visible_len += other.visible_len;
    }
}

/// `text`, escaped for Telegram HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Plain text as Telegram HTML.
pub fn from_plain(text: &str) -> TelegramHtml {
    let mut out = TelegramHtml::default();
    out.push_text(text);
    out
}

/// Converts arbitrary HTML to Telegram's subset.
pub fn to_telegram(input: &str) -> TelegramHtml {
    let mut converter = Converter::default();
    let mut rest = input;
    while let Some(lt) = rest.find('<') {
        converter.text(&rest[..lt]);
        let after = &rest[lt..];
        match after.find('>') {
            Some(gt) => {
                converter.tag(&after[1..gt]);
                rest = &after[gt + 1..];
            }
            None => {
                converter.text(after);
                rest = "";
            }
        }
    }
    converter.text(rest);
    converter.finish()
}

#[derive(Default)]
struct Converter {
    out: TelegramHtml,
    /// Open output tags, innermost last.
    open: Vec<&'static str>,
    /// Inside `<script>`/`<style>`: text is not content.
    skipping: Option<String>,
    /// Pending line breaks, emitted before the next text (collapsed, never leading or trailing).
    pending_breaks: usize,
    /// Nesting depth of lists, for list items.
    list_depth: usize,
}

impl Converter {
    fn text(&mut self, raw: &str) {
        if self.skipping.is_some() || raw.is_empty() {
            return;
        }
        let decoded = decode_entities(raw);
        // Whitespace between block tags (`</li>\n<li>`) is layout, not content.
        if decoded.trim().is_empty() && (self.pending_breaks > 0 || self.out.visible_len == 0) {
            return;
        }
        self.flush_breaks();
        self.out.push_text(&decoded);
    }

    fn flush_breaks(&mut self) {
        if self.out.visible_len > 0 {
            for _ in 0..self.pending_breaks.min(2) {
                self.out.push_text("\n");
            }
        }
        self.pending_breaks = 0;
    }

    fn request_breaks(&mut self, n: usize) {
        self.pending_breaks = self.pending_breaks.max(n);
    }

    fn in_code(&self) -> bool {
        self.open.iter().any(|t| *t == "code" || *t == "pre")
    }

    fn tag(&mut self, raw: &str) {
        let raw = raw.trim();
        if raw.starts_with('!') || raw.starts_with('?') {
            return; // comments, doctypes, processing instructions
        }
        let (closing, body) = match raw.strip_prefix('/') {
            Some(body) => (true, body),
            None => (false, raw.trim_end_matches('/')),
        };
        let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
        let name = body[..name_end].to_ascii_lowercase();
        let attributes = &body[name_end..];
        if let Some(skipped) = &self.skipping {
            if closing && *skipped == name {
                self.skipping = None;
            }
            return;
        }
        match (closing, name.as_str()) {
            (false, "script" | "style") => self.skipping = Some(name),
            // Each `<br>` is a line of its own, unlike block boundaries, which collapse.
            (_, "br") => self.pending_breaks = (self.pending_breaks + 1).min(2),
            (false, "p" | "div" | "ul" | "ol" | "table" | "tr" | "hr") => {
                self.request_breaks(if name == "hr" { 1 } else { 2 });
                if name == "ul" || name == "ol" {
                    self.list_depth += 1;
                }
            }
            (true, "p" | "div" | "table" | "tr") => self.request_breaks(2),
            (true, "ul" | "ol") => {
                self.list_depth = self.list_depth.saturating_sub(1);
                self.request_breaks(2);
            }
            (false, "li") => {
                self.request_breaks(1);
                self.flush_breaks();
                let indent = "  ".repeat(self.list_depth.saturating_sub(1));
                self.out.push_text(&format!("{indent}• "));
            }
            (true, "li") => self.request_breaks(1),
            (false, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
                self.request_breaks(2);
                self.open_tag("b", "<b>");
            }
            (true, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
                self.close_tag("b");
                self.request_breaks(2);
            }
            (false, "img") => {
                if let Some(alt) = attribute(attributes, "alt") {
                    self.text(&alt);
                }
            }
            (false, _) => self.open_allowed(&name, attributes),
            (true, _) => {
                if let Some(tag) = allowed(&name, attributes) {
                    self.close_tag(tag);
                }
            }
        }
    }

    fn open_allowed(&mut self, name: &str, attributes: &str) {
        let Some(tag) = allowed(name, attributes) else { return };
        match tag {
            "a" => {
                if let Some(href) = attribute(attributes, "href").filter(|href| safe_link(href)) {
                    self.open_tag("a", &format!("<a href=\"{}\">", escape(&href)));
                }
            }
            "blockquote" => {
                self.request_breaks(1);
                self.open_tag("blockquote", "<blockquote>");
            }
            "pre" => {
                self.request_breaks(1);
                self.open_tag("pre", "<pre>");
            }
            "code" => {
                let language = attribute(attributes, "class")
                    .and_then(|c| {
                        c.split_whitespace().find_map(|w| w.strip_prefix("language-").map(str::to_owned))
                    })
                    .filter(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || "+-_#.".contains(c))
                    });
                match (self.open.last(), language) {
                    (Some(&"pre"), Some(language)) => {
                        self.open_tag("code", &format!("<code class=\"language-{language}\">"))
                    }
                    _ => self.open_tag("code", "<code>"),
                }
            }
            tag => self.open_tag(tag, &format!("<{tag}>")),
        }
    }

    fn open_tag(&mut self, tag: &'static str, markup: &str) {
        // Telegram refuses entities inside code and pre; `<pre><code>` is the one exception.
        let code_in_pre = tag == "code" && self.open.last() == Some(&"pre");
        if self.in_code() && !code_in_pre {
            return;
        }
        self.flush_breaks();
        self.out.push_markup(markup);
        self.open.push(tag);
    }

    fn close_tag(&mut self, tag: &'static str) {
        let Some(position) = self.open.iter().rposition(|t| *t == tag) else { return };
        while self.open.len() > position {
            if let Some(inner) = self.open.pop() {
                self.out.push_markup(&format!("</{inner}>"));
            }
        }
        if tag == "blockquote" || tag == "pre" {
            self.request_breaks(1);
        }
    }

    fn finish(mut self) -> TelegramHtml {
        while let Some(tag) = self.open.pop() {
            self.out.push_markup(&format!("</{tag}>"));
        }
        self.out
    }
}

/// The Telegram tag an HTML tag maps to, if any.
fn allowed(name: &str, attributes: &str) -> Option<&'static str> {
    Some(match name {
        "b" | "strong" => "b",
        "i" | "em" | "cite" => "i",
        "u" | "ins" => "u",
        "s" | "strike" | "del" => "s",
        "a" => "a",
        "code" => "code",
        "pre" => "pre",
        "blockquote" => "blockquote",
        "tg-spoiler" => "tg-spoiler",
        "span"
            if attribute(attributes, "class")
                .is_some_and(|c| c.split_whitespace().any(|w| w == "tg-spoiler")) =>
        {
            "tg-spoiler"
        }
        _ => return None,
    })
}

/// Links Telegram opens and nothing that runs code: `http(s)`, `tg` and `mailto` URLs.
pub(crate) fn safe_link(href: &str) -> bool {
    let lower = href.trim().to_ascii_lowercase();
    ["http://", "https://", "tg://", "mailto:"].iter().any(|scheme| lower.starts_with(scheme))
}

/// The decoded value of attribute `name` (quoted with `"` or `'`, or bare).
fn attribute(attributes: &str, name: &str) -> Option<String> {
    let mut rest = attributes;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return None;
        }
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let key = rest[..key_end].to_ascii_lowercase();
        rest = rest[key_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, remaining) = match after.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    let inner = &after[1..];
                    let end = inner.find(quote).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = remaining;
            value
        } else {
            ""
        };
        if key == name {
            return Some(decode_entities(value));
        }
    }
}

/// Decodes the entities HTML text commonly holds; anything else stays as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let decoded = after
            .find(';')
            .filter(|&semi| semi <= 10)
            .and_then(|semi| entity(&after[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code).filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::*;

    fn html(input: &str) -> String {
        to_telegram(input).html
    }

    #[test]
    fn allowed_tags_are_kept_and_aliases_mapped() {
        assert_eq!(
            html("<strong>a</strong> <em>b</em> <del>c</del> <u>d</u>"),
            "<b>a</b> <i>b</i> <s>c</s> <u>d</u>"
        );
        assert_eq!(
            html(r#"<a href="https://x.org/?a=1&amp;b=2" rel="x">l</a>"#),
            r#"<a href="https://x.org/?a=1&amp;b=2">l</a>"#
        );
        assert_eq!(html(r#"<a href="javascript:alert(1)">l</a>"#), "l");
        assert_eq!(
            html(r#"<pre><code class="language-rust">fn <b>x</b></code></pre>"#),
            r#"<pre><code class="language-rust">fn x</code></pre>"#
        );
        assert_eq!(html(r#"<span class="tg-spoiler">s</span>"#), "<tg-spoiler>s</tg-spoiler>");
    }

    #[test]
    fn blocks_become_line_breaks() {
        assert_eq!(html("<p>one</p>\n<p>two</p>"), "one\n\ntwo");
        assert_eq!(html("<ul>\n<li>a</li>\n<li>b</li>\n</ul>"), "• a\n• b");
        assert_eq!(html("<h1>Title</h1><p>x<br>y</p>"), "<b>Title</b>\n\nx\ny");
        assert_eq!(html("<script>alert(1)</script>ok"), "ok");
    }

    #[test]
    fn text_is_re_escaped_and_nesting_repaired() {
        assert_eq!(html("1 < 2 &amp; 3 &foo; &#65;"), "1 &lt; 2 &amp; 3 &amp;foo; A");
        assert_eq!(html("<b><i>x</b>y</i>"), "<b><i>x</i></b>y");
        assert_eq!(html("<b>open"), "<b>open</b>");
        assert_eq!(html("a <b"), "a &lt;b");
        assert_eq!(to_telegram("<b>héllo</b> 👍").visible_len, 8);
    }

    proptest! {
        #[test]
        fn output_is_balanced_and_only_uses_telegram_tags(input in "(<(/?)(b|i|p|li|ul|code|pre|a href=\"https://x\"|span|h2)>|[a-z <>&;#0-9])*") {
            let out = to_telegram(&input).html;
            let mut stack = Vec::new();
            let mut rest = out.as_str();
            while let Some(lt) = rest.find('<') {
                let gt = rest[lt..].find('>').unwrap() + lt;
                let tag = &rest[lt + 1..gt];
                if let Some(name) = tag.strip_prefix('/') {
                    prop_assert_eq!(stack.pop(), Some(name.to_owned()));
                } else {
                    let name = tag.split_whitespace().next().unwrap().to_owned();
                    prop_assert!(["b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler"].contains(&name.as_str()), "{}", name);
                    stack.push(name);
                }
                rest = &rest[gt + 1..];
            }
            prop_assert!(stack.is_empty());
        }
    }
}
