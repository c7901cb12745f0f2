//! The Telegram connector against a fake Bot API that speaks the real wire format
//! (`tests/support/bot_api.rs`), with teloxide unchanged in between.
//!
//! One test binary for all scenario families, so the crate links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

mod fairness;
mod linking;
mod logs;
mod media;
mod native;
mod polling;
mod rate_limits;
mod reactions;
mod relay;
mod replay;
mod sending;
mod webhook;
