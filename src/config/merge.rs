//! The file and the environment as one tree, deserialized once, each value knowing its origin.
//!
//! Why this shape:
//! - A key may be given by the file, by the environment, or by both (the environment wins), and
//!   a required key may be in either: `[telegram]` in the file with its token only in
//!   `DM3_BRIDGE_TELEGRAM__TOKEN`, as docs/telegram.md advises, is a complete section. So
//!   nothing is deserialized before the variables are in the tree; checking the file alone first
//!   would refuse that section for a token the environment holds.
//! - An error must still say where the value came from: a line of the file, or a variable. The
//!   tree is toml's spanned one ([`DeTable`]): values from the file keep their byte spans, and
//!   each variable's values get a span of their own past the end of the file (variable `i` is
//!   the byte `len + 1 + i`), so the span of a deserialization error leads back to its origin.
//! - A variable of a section the file does not have creates the section (how a network is
//!   turned on from the environment alone); the section then needs its required keys like any
//!   other, and the error for a missing one names both places it could come from.
//! - Messages show a position, never the file's text around it: that line may be a token.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::env::{Override, variable};
use super::suggest::closest;
use super::{Config, ConfigError};

/// Deserializes the file `text` with the environment's `overrides` set over it; `schema` (every
/// key, as `env` has it) names the section of a misplaced key.
pub(super) fn deserialize(
    text: &str,
    path: &Path,
    overrides: &[Override],
    schema: &toml::Table,
) -> Result<Config, ConfigError> {
    let origins = Origins { text, path, overrides, schema };
    let mut root = DeTable::parse(text).map_err(|e| origins.error(&e))?;
    // The variables' values as TOML text, alive as long as the tree that borrows them.
    let rendered: Vec<String> = overrides.iter().map(|o| o.value.to_string()).collect();
    for (index, (o, value)) in overrides.iter().zip(&rendered).enumerate() {
        let span = origins.span_of(index);
        let value = DeValue::parse(value).map_err(|e| ConfigError::Env {
            var: o.var.clone(),
            message: format!("`{}.{}`: {}", o.section, o.key, e.message().trim()),
        })?;
        let value = respan(value.into_inner(), &span);
        let section = root
            .get_mut()
            .entry(Spanned::new(span.clone(), Cow::Owned(o.section.clone())))
            .or_insert_with(|| Spanned::new(span.clone(), DeValue::Table(DeTable::new())));
        match section.get_mut() {
            DeValue::Table(table) => {
                table.insert(Spanned::new(span, Cow::Owned(o.key.clone())), value);
            }
            _ => {
                return Err(ConfigError::Env {
                    var: o.var.clone(),
                    message: format!("`{}` in the file is not a table", o.section),
                });
            }
        }
    }
    Config::deserialize(toml::de::Deserializer::from(root)).map_err(|e| origins.error(&e))
}

/// `value` with every span inside it (keys, items) set to `span`: all of it is the variable's.
fn respan<'i>(value: DeValue<'i>, span: &Range<usize>) -> Spanned<DeValue<'i>> {
    let value = match value {
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(k, v)| (Spanned::new(span.clone(), k.into_inner()), respan(v.into_inner(), span)))
                .collect(),
        ),
        DeValue::Array(mut array) => {
            for item in array.iter_mut() {
                let inner = std::mem::replace(item.get_mut(), DeValue::Boolean(false));
                *item = respan(inner, span);
            }
            DeValue::Array(array)
        }
        other => other,
    };
    Spanned::new(span.clone(), value)
}

/// What a span can point at: the file, or one of the variables.
struct Origins<'a> {
    text: &'a str,
    path: &'a Path,
    overrides: &'a [Override],
    schema: &'a toml::Table,
}

impl Origins<'_> {
    /// The span standing for variable `index`: one byte past the file and the variables before.
    fn span_of(&self, index: usize) -> Range<usize> {
        let start = self.text.len() + 1 + index;
        start..start + 1
    }

    /// The variable a span stands for, if it is past the file.
    fn variable_at(&self, span: &Range<usize>) -> Option<&Override> {
        span.start.checked_sub(self.text.len() + 1).and_then(|index| self.overrides.get(index))
    }

    /// `error` as the operator should read it: where (a line of the file, or the variable),
    /// which key, and what to do.
    fn error(&self, error: &toml::de::Error) -> ConfigError {
        let keys = error_keys(error);
        let message = self.explain(error.message().trim(), &keys);
        match error.span() {
            Some(span) => match self.variable_at(&span) {
                Some(o) => ConfigError::Env { var: o.var.clone(), message },
                None => ConfigError::Parse {
                    path: self.path.to_owned(),
                    message: format!("{}: {message}", position(self.text, span.start)),
                },
            },
            None => ConfigError::Parse { path: self.path.to_owned(), message },
        }
    }

    /// The message, with the key it concerns and, for a missing or unknown key, what to write.
    fn explain(&self, message: &str, keys: &[String]) -> String {
        let table = keys.join(".");
        if let Some(field) = quoted_after(message, "missing field ") {
            let key = if table.is_empty() { field.to_owned() } else { format!("{table}.{field}") };
            return match keys {
                [section] => {
                    format!("`{key}` is required: set it in [{section}] or with {}", variable(section, field))
                }
                [section, sub, ..] => format!(
                    "`{key}` is required: set it in the file, or give the whole `{section}.{sub}` with {} \
                     (a TOML inline value)",
                    variable(section, sub)
                ),
                [] => format!("`{key}` is required"),
            };
        }
        if let Some(field) = quoted_after(message, "unknown field ") {
            let expected = message.split_once("expected").map(|(_, rest)| rest).unwrap_or_default();
            let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = match (closest(field, known.iter().copied()), keys) {
                (Some(near), []) => format!("; did you mean [{near}]?"),
                (Some(near), _) => format!("; did you mean `{table}.{near}`?"),
                (None, [section]) => self.home_of(field, section),
                (None, _) => String::new(),
            };
            let key = if table.is_empty() { format!("[{field}]") } else { format!("`{table}.{field}`") };
            return format!("{key} is not a config key{hint} ({message})");
        }
        if table.is_empty() { message.to_owned() } else { format!("`{table}`: {message}") }
    }

    /// For a key unknown in `section` that another section has: where it belongs.
    fn home_of(&self, field: &str, section: &str) -> String {
        self.schema
            .iter()
            .find(|(other, keys)| *other != section && keys.as_table().is_some_and(|t| t.contains_key(field)))
            .map(|(other, _)| format!("; `{field}` is a key of [{other}]"))
            .unwrap_or_default()
    }
}

/// The path of keys an error lies under (`telegram`, `webhook`). toml keeps it private and
/// shows it as the last line, "in `a.b`", of an error without its input, which is how every
/// error reaches [`Origins::error`].
fn error_keys(error: &toml::de::Error) -> Vec<String> {
    let shown = error.to_string();
    shown
        .trim_end()
        .rsplit_once('\n')
        .and_then(|(_, last)| last.strip_prefix("in `"))
        .and_then(|path| path.strip_suffix('`'))
        .map(|path| path.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The name in backquotes right after `prefix` at the start of serde's `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.strip_prefix('`')?.split('`').next()
}

/// `line L, column C` of a byte offset of `text` (both from 1).
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_from_one() {
        assert_eq!(position("a = 1\nbc = 2\n", 6), "line 2, column 1");
        assert_eq!(position("a = 1\nbc = 2\n", 8), "line 2, column 3");
        assert_eq!(position("", 0), "line 1, column 1");
    }

    #[test]
    fn quoted_names_are_read_from_serde_messages() {
        assert_eq!(quoted_after("missing field `token`", "missing field "), Some("token"));
        assert_eq!(
            quoted_after("unknown field `nmae`, expected one of `name`", "unknown field "),
            Some("nmae")
        );
        assert_eq!(quoted_after("invalid type", "missing field "), None);
    }
}
