//! The names a DM3 bridge gives people on other networks: user id ⇄ label ⇄
//! `<label>.<network sub-label>.<parent>` (`docs/names.md` is the specification).
//!
//! ```text
//! tg-12345.tg.bridge.example.eth                 Telegram user 12345
//! u-carol-x.tg.bridge.example.eth                whoever holds the Telegram username @carol_x
//! -42ob-ux-sexample-porg.mx.bridge.example.eth   Matrix user @Bob_x:example.org
//! ```
//!
//! Why this is in the SDK and not in the bridge: the scheme is pure (no keys, no database, no
//! network), and a DM3 user needs it to write to a contact on Matrix or Telegram: from the
//! contact's user id and the bridge's parent name, any client computes the name to send to
//! (`dm3 name-for matrix @carol:example.org --parent bridge.example.eth`). The bridge node uses
//! this one implementation for its identities, its gateway and its `GET /names/lookup`, so a
//! client's answer and the node's can never differ.
//!
//! Files, bottom up:
//! - [`user_id`]: Telegram and Matrix user ids, validated ([`NetworkUserId`]);
//! - [`label`]: user id ⇄ ENS label, the reversible escaping;
//! - [`username`]: Telegram usernames ⇄ alias labels (`@carol_x` ⇄ `u-carol-x`);
//! - [`addressee`]: whom a person names, a user id or a Telegram `@username`;
//! - [`scheme`]: label ⇄ full name under a parent and the per-network sub-labels.

pub mod addressee;
pub mod label;
pub mod scheme;
pub mod user_id;
pub mod username;

pub use addressee::Addressee;

pub use label::{LabelError, MatrixLabel};
pub use scheme::{NameScheme, ParsedName, SchemeError};
pub use user_id::{MAX_MATRIX_ID_LEN, MatrixUserId, NetworkUserId, TelegramUserId, UserIdError};
pub use username::TelegramUsername;
