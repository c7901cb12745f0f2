//! `dm3-bridge generate-registration`: the homeserver's `registration.yaml` and the bridge's
//! `[matrix]` tokens, made together so they always match.
//!
//! What it does, in order, and why:
//! 1. Reads the config file as text *and* as a document (`toml_edit`), so the operator's
//!    comments, order and formatting survive: only the keys it owns change (`as_token`,
//!    `hs_token`, and the three URLs/names when they are given on the command line or missing).
//!    A missing `[matrix]` section is appended, with a comment.
//! 2. Checks the settings with the same rules as `dm3-bridge check`, before writing anything.
//! 3. Refuses to replace an existing registration unless forced: new tokens mean the homeserver
//!    must load the new file and restart, and they change the [`RegistrationScope`] under which
//!    the bridge remembers transaction ids (the homeserver numbers transactions anew for a new
//!    registration, so old ids must not be mistaken for replays).
//! 4. Writes both files atomically (temporary file, fsync, rename), the registration first and
//!    both owner-readable only: each holds both tokens. A config file that others could read is
//!    narrowed to its owner, and the report says so.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use dm3_bridge_matrix::{
    AsToken, HsToken, MatrixConfig, MatrixToken, Registration, RegistrationError, RegistrationScope,
};
use ruma::ServerName;
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};
use url::Url;

use crate::config::{Config, ConfigError, Problem};

/// What the command needs; `None` settings come from `[matrix]`.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub config_file: PathBuf,
    pub homeserver_url: Option<String>,
    pub server_name: Option<String>,
    pub bridge_url: Option<String>,
    /// Replace an existing registration file.
    pub force: bool,
}

/// What the command wrote.
#[derive(Debug, Clone)]
pub struct GenerateReport {
    pub registration_file: PathBuf,
    pub config_file: PathBuf,
    /// An earlier registration was replaced (`--force`).
    pub replaced: bool,
    /// The new scope of transaction ids.
    pub scope: RegistrationScope,
    /// Things the operator must know (a narrowed file mode, environment overrides).
    pub warnings: Vec<String>,
}

/// Why nothing (or not everything) was written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("config file {path} cannot be edited: {message}")]
    Document { path: PathBuf, message: String },
    #[error("the [matrix] settings are not usable:\n{}\n(set them in the config file or pass --homeserver-url, --server-name, --bridge-url)", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    #[error(
        "{} already exists. Regenerating makes new tokens: the homeserver must load the new file and \
         restart, and the bridge's transaction-id scope changes (transactions are numbered anew). \
         Pass --force to do so.",
        .0.display()
    )]
    Exists(PathBuf),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Writes a fresh registration and its tokens into the config file; `env` is the process
/// environment (its `DM3_BRIDGE_*` overrides apply to the settings read, as everywhere).
pub fn generate_registration(
    options: &GenerateOptions,
    env: &[(String, String)],
) -> Result<GenerateReport, GenerateError> {
    let path = &options.config_file;
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let config = Config::from_toml(&text, path, env.iter().cloned())?;
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        GenerateError::Document { path: path.clone(), message: e.to_string() }
    })?;

    let as_token = AsToken::generate().map_err(RegistrationError::from)?;
    let hs_token = HsToken::generate().map_err(RegistrationError::from)?;
    let mut matrix = config.matrix.clone().unwrap_or_default();
    for (setting, given) in [
        (&mut matrix.homeserver_url, &options.homeserver_url),
        (&mut matrix.server_name, &options.server_name),
        (&mut matrix.bridge_url, &options.bridge_url),
    ] {
        if let Some(value) = given {
            value.clone_into(setting);
        }
    }
    matrix.as_token = Some(MatrixToken::new(as_token.expose()));
    matrix.hs_token = Some(MatrixToken::new(hs_token.expose()));
    let problems = Config { matrix: Some(matrix.clone()), ..Config::default() }
        .problems()
        .into_iter()
        .filter(|p| p.key.starts_with("matrix."))
        .collect::<Vec<_>>();
    if !problems.is_empty() {
        return Err(GenerateError::Invalid(problems));
    }
    let registration_file = matrix.registration_path(config.data_dir());
    let replaced = registration_file.exists();
    if replaced && !options.force {
        return Err(GenerateError::Exists(registration_file));
    }

    let registration = registration(&matrix, as_token, hs_token)?;
    let new_text = match document.get_mut("matrix").and_then(Item::as_table_like_mut) {
        Some(table) => {
            set_matrix_keys(table, &matrix, options);
            document.to_string()
        }
        // Appended as text: a table inserted by `toml_edit` would land before the file's
        // trailing comments, which belong to the section above.
        None => {
            let mut section = DocumentMut::new();
            let mut table = Table::new();
            table.decor_mut().set_prefix(NEW_SECTION_COMMENT);
            set_matrix_keys(&mut table, &matrix, options);
            section.insert("matrix", Item::Table(table));
            let separator = if text.ends_with('\n') || text.is_empty() { "" } else { "\n" };
            format!("{text}{separator}{section}")
        }
    };
    let mut warnings = Vec::new();
    let config_mode = owner_only(path, &mut warnings);
    write_replacing(&registration_file, registration.to_yaml()?.as_bytes(), 0o600)?;
    write_replacing(path, new_text.as_bytes(), config_mode)?;
    for var in ["DM3_BRIDGE_MATRIX__AS_TOKEN", "DM3_BRIDGE_MATRIX__HS_TOKEN"] {
        if env.iter().any(|(k, _)| k.eq_ignore_ascii_case(var)) {
            warnings.push(format!(
                "{var} is set and overrides the token written to the config file; update or unset it"
            ));
        }
    }
    Ok(GenerateReport {
        registration_file,
        config_file: path.clone(),
        replaced,
        scope: registration.scope(),
        warnings,
    })
}

/// The registration of a checked `[matrix]` section with these tokens.
fn registration(
    matrix: &MatrixConfig,
    as_token: AsToken,
    hs_token: HsToken,
) -> Result<Registration, GenerateError> {
    let invalid =
        |key: &str, message: String| GenerateError::Invalid(vec![Problem { key: key.to_owned(), message }]);
    let url = Url::parse(&matrix.bridge_url).map_err(|e| invalid("matrix.bridge_url", e.to_string()))?;
    let server =
        ServerName::parse(&matrix.server_name).map_err(|e| invalid("matrix.server_name", e.to_string()))?;
    Ok(Registration::from_parts(
        matrix.registration_id.clone(),
        url,
        &server,
        &matrix.bot_localpart,
        &matrix.ghost_prefix,
        as_token,
        hs_token,
    )?
    .with_encryption_extensions(matrix.encryption.asks_for_extensions()))
}

/// The comment above a `[matrix]` section this command adds.
const NEW_SECTION_COMMENT: &str = "\n# The Matrix application service. `dm3-bridge generate-registration` wrote the tokens and\n\
                                   # the registration file; add that file to the homeserver's app_service_config_files.\n";

/// Sets the keys this command owns in `[matrix]`: the tokens, and the URLs and name when given
/// on the command line or missing.
fn set_matrix_keys(table: &mut dyn TableLike, matrix: &MatrixConfig, options: &GenerateOptions) {
    for (key, given, value) in [
        ("homeserver_url", &options.homeserver_url, &matrix.homeserver_url),
        ("server_name", &options.server_name, &matrix.server_name),
        ("bridge_url", &options.bridge_url, &matrix.bridge_url),
    ] {
        if given.is_some() || !table.contains_key(key) {
            set_string(table, key, value);
        }
    }
    for (key, token) in [("as_token", &matrix.as_token), ("hs_token", &matrix.hs_token)] {
        if let Some(token) = token {
            set_string(table, key, token.expose());
        }
    }
}

/// Sets `key` to `value`, keeping the comments and spacing around an existing value.
fn set_string(table: &mut dyn TableLike, key: &str, value: &str) {
    let mut new = Value::from(value);
    if let Some(old) = table.get(key).and_then(Item::as_value) {
        let decor = old.decor();
        let prefix = decor.prefix().and_then(|p| p.as_str()).unwrap_or(" ").to_owned();
        let suffix = decor.suffix().and_then(|s| s.as_str()).unwrap_or("").to_owned();
        new = new.decorated(prefix, suffix);
    }
    table.insert(key, Item::Value(new));
}

/// The mode for the rewritten config file: its own, without group and other bits.
fn owner_only(path: &Path, warnings: &mut Vec<String>) -> u32 {
    let mode = std::fs::metadata(path).map_or(0o600, |m| m.permissions().mode() & 0o777);
    let narrowed = mode & 0o700;
    if narrowed != mode {
        warnings.push(format!(
            "{} holds the Matrix tokens now; its mode was narrowed from {mode:o} to {narrowed:o}",
            path.display()
        ));
    }
    narrowed
}

/// Replaces `path` atomically: a temporary file with `mode` beside it, flushed, then renamed.
fn write_replacing(path: &Path, contents: &[u8], mode: u32) -> Result<(), GenerateError> {
    let error = |source| GenerateError::Write { path: path.to_owned(), source };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        // `mode` applies only to a new file; a leftover temporary keeps its own.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(error)
}
