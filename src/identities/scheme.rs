//! Full names of virtual identities, `<label>.<network sub-label>.<parent>`, under this node's
//! `[identities]` settings.
//!
//! The scheme itself is the SDK's ([`dm3::bridge_names::scheme`]), because DM3 clients compute
//! the same names (`dm3 name-for`, `dm3 parse-name`); what is the node's is only where the
//! parent and the sub-labels come from: [`from_config`].

pub use dm3::bridge_names::scheme::{NameScheme, ParsedName, SchemeError};

use crate::config::IdentitiesConfig;

/// The scheme of `[identities]`; `None` when no parent is configured.
pub fn from_config(config: &IdentitiesConfig) -> Result<Option<NameScheme>, SchemeError> {
    if config.parent.is_empty() {
        return Ok(None);
    }
    NameScheme::new(&config.parent, &config.telegram_label, &config.matrix_label).map(Some)
}
