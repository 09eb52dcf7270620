//! The server's state directory (`--state-dir`): its identity, its token
//! salt and the client registry (SPEC §1, §4). `onedoor init` creates it,
//! `onedoor client …` edits the registry, `onedoor serve` reads it.
//!
//! # Layout
//!
//! ```text
//! DIR/                 0700
//!   identity.key       0600  the Ed25519 private key, PKCS#8 v1 PEM ("PRIVATE KEY",
//!                            as `openssl genpkey -algorithm ed25519` writes it)
//!   identity.crt       0644  a self-signed X.509 certificate for that key, PEM;
//!                            its only subjectAltName is the server name
//!                            (valid from a day before `init` to 9999-12-31)
//!   server.toml        0644  name, port, token-salt, created
//!   clients.toml       0600  [[client]] name, token-hash, allow, created
//!   .lock              0600  flock(2)ed by writers (init, `client …`)
//! ```
//!
//! `server.toml`, written last by `init`, marks the directory as initialised:
//!
//! ```toml
//! name = "door.example"                  # the certificate's name, the access keys' host
//! port = 443                             # the access keys' port
//! token-salt = "<64 hex digits>"         # 32 random bytes, see onedoor_proto::tunnel::token
//! created = 2025-01-01T12:00:00Z
//! ```
//!
//! `clients.toml` holds no token, only each token's salted hash:
//!
//! ```toml
//! [[client]]
//! name = "first"
//! token-hash = "<64 hex digits>"
//! allow = ["*"]                          # allow patterns, SPEC §4; [] allows nothing
//! created = 2025-01-01T12:00:00Z
//! ```
//!
//! # Identity and fingerprint
//!
//! The server's identity is one Ed25519 key. Its fingerprint, the value
//! access keys pin (`fp=SHA256:…`), is the SHA-256 of the key's DER
//! `SubjectPublicKeyInfo` ([`onedoor_proto::probe::hello::fingerprint`]):
//! the same for the tunnel's TLS certificate and for probe replies, and what
//! `openssl x509 -in identity.crt -pubkey -noout | openssl pkey -pubin
//! -outform DER | sha256sum` prints.
//!
//! # Writing and reading
//!
//! Every file is replaced atomically: written to a temporary file in the same
//! directory, flushed to disk, renamed over the old one, and the directory
//! flushed. A reader (serve) therefore never sees half a file and needs no
//! lock; writers take `.lock` so that two `onedoor client …` commands can't
//! lose each other's edits ([`StateDir::edit_registry`]). Secrets are created
//! 0600 in a 0700 directory; a looser directory or key file is reported as a
//! warning when read.
//!
//! Reading validates everything: TOML syntax and types, unknown keys (an
//! error, never ignored), names, hex values, allow patterns, dates,
//! duplicate names; and that the certificate is for this key, signed by it,
//! and names exactly the server name. TOML errors name `file:line`.
//!
//! # Noticing changes
//!
//! Serve re-reads the registry on `SIGHUP` and when [`StateDir::clients_stamp`]
//! differs from the loaded [`Registry::stamp`] (device, inode, size and mtime
//! of `clients.toml`; every save is a rename, hence a new inode, so even two
//! edits within one second are told apart). `init --force` replaces the
//! identity and the salt as well: serve must then be restarted.

mod cert;
mod error;
mod files;
mod identity;
mod registry;
mod toml_file;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use onedoor_proto::spec::HostPort;
use onedoor_proto::tunnel::{AccessKey, Fingerprint, Token, TokenSalt};
use serde::Deserialize;
use toml::Spanned;

pub use error::{RegistryError, StateError};
pub use files::Stamp;
pub use identity::{check_server_name, Identity};
pub use registry::{check_client_name, ClientEntry, Registry};

/// The private key file.
pub const IDENTITY_KEY: &str = "identity.key";
/// The certificate file.
pub const IDENTITY_CRT: &str = "identity.crt";
/// The server settings file (name, port, token salt).
pub const SERVER_TOML: &str = "server.toml";
/// The client registry file.
pub const CLIENTS_TOML: &str = "clients.toml";
/// The writers' lock file.
const LOCK: &str = ".lock";

/// The default state directory as root.
pub const ROOT_DEFAULT: &str = "/var/lib/onedoor";

/// What `server.toml` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The server's name: the certificate's only subjectAltName and the host
    /// of the access keys (a DNS name or an IP address, IPv6 without
    /// brackets).
    pub name: String,
    /// The port written into access keys.
    pub port: u16,
    /// The salt of every stored token hash.
    pub salt: TokenSalt,
    /// When `init` made it (whole seconds).
    pub created: SystemTime,
}

/// An initialised state directory. Cheap to hold: it keeps the path and the
/// contents of `server.toml`; the identity and the registry are read on
/// demand ([`StateDir::identity`], [`StateDir::registry`]).
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    server: ServerInfo,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServer {
    name: Spanned<String>,
    port: Spanned<i64>,
    token_salt: Spanned<String>,
    created: Spanned<toml::value::Datetime>,
}

impl StateDir {
    /// The default state directory: [`ROOT_DEFAULT`] as root, else
    /// `$XDG_DATA_HOME/onedoor` (when set to an absolute path) or
    /// `~/.local/share/onedoor`. `None` when not root and neither
    /// `XDG_DATA_HOME` nor `HOME` is usable.
    pub fn default_path() -> Option<PathBuf> {
        default_path_for(
            files::is_root(),
            std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    /// Open an initialised state directory: reads and validates
    /// `server.toml`. [`StateError::NotInitialised`] when there is none.
    pub fn open(path: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let path = path.into();
        let file = path.join(SERVER_TOML);
        let Some((text, _)) = files::read(&file)? else {
            return Err(StateError::NotInitialised { path });
        };
        files::warn_if_loose(&path, 0o077);
        let server = parse_server_toml(&file, &text)?;
        Ok(StateDir { path, server })
    }

    /// Create the state directory (0700) with a new identity named `name`, a
    /// new token salt and an empty registry. The current time is taken as
    /// the creation time and randomness comes from the OS.
    ///
    /// An existing identity (`identity.key`, `identity.crt` or `server.toml`
    /// present) is refused with [`StateError::Exists`] unless `force`, which
    /// replaces all of it: the identity (so old access keys no longer match
    /// its fingerprint), the salt and the registry (every client is removed).
    pub fn init(
        path: impl Into<PathBuf>,
        name: &str,
        port: u16,
        force: bool,
    ) -> Result<(StateDir, Identity), StateError> {
        let path = path.into();
        let name = identity::check_server_name(name)?;
        if port == 0 {
            return Err(StateError::BadPort);
        }
        files::create_private_dir(&path)?;
        let _lock = files::lock(&path.join(LOCK))?;
        let existing: Vec<&str> = [IDENTITY_KEY, IDENTITY_CRT, SERVER_TOML]
            .into_iter()
            .filter(|f| path.join(f).symlink_metadata().is_ok())
            .collect();
        if !existing.is_empty() && !force {
            return Err(StateError::Exists {
                path,
                file: existing[0].to_owned(),
            });
        }
        let now = whole_seconds(SystemTime::now());
        let identity = Identity::generate(&name, now)?;
        let server = ServerInfo {
            name,
            port,
            salt: TokenSalt::from_bytes(files::random().map_err(StateError::Random)?),
            created: now,
        };
        // Until server.toml is back, the directory reads as not initialised:
        // a crash half-way never pairs an old salt with new files.
        files::remove_if_exists(&path.join(SERVER_TOML))?;
        files::write_atomic(
            &path,
            IDENTITY_KEY,
            identity.key_pem().expose().as_bytes(),
            0o600,
        )?;
        files::write_atomic(&path, IDENTITY_CRT, identity.cert_pem().as_bytes(), 0o644)?;
        let registry = Registry::new(server.salt);
        files::write_atomic(&path, CLIENTS_TOML, registry.to_toml().as_bytes(), 0o600)?;
        files::write_atomic(&path, SERVER_TOML, server_toml(&server).as_bytes(), 0o644)?;
        Ok((StateDir { path, server }, identity))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of one of the files, e.g. `state.file(IDENTITY_KEY)`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// What `server.toml` says.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// Read and check the identity: the key, and a certificate that is for
    /// this key, signed by it and names exactly the server name.
    pub fn identity(&self) -> Result<Identity, StateError> {
        Identity::load(
            &self.file(IDENTITY_KEY),
            &self.file(IDENTITY_CRT),
            &self.server.name,
        )
    }

    /// Read and check the client registry. Same as [`Registry::load`].
    pub fn registry(&self) -> Result<Registry, StateError> {
        Registry::load(self)
    }

    /// Change the registry under the writers' lock: read it, apply `edit`,
    /// and save it if `edit` succeeded. `edit`'s error comes back as
    /// [`StateError::Registry`] and nothing is written.
    pub fn edit_registry<T>(
        &self,
        edit: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
    ) -> Result<T, StateError> {
        let _lock = files::lock(&self.file(LOCK))?;
        let mut registry = Registry::load(self)?;
        let out = edit(&mut registry)?;
        registry.save(self)?;
        Ok(out)
    }

    /// The current [`Stamp`] of `clients.toml` (`None` if it is missing):
    /// when it differs from the loaded registry's [`Registry::stamp`], the
    /// file has changed and serve should load it again.
    pub fn clients_stamp(&self) -> Result<Option<Stamp>, StateError> {
        files::stamp(&self.file(CLIENTS_TOML))
    }

    /// The access key of a client holding `token`, for this server:
    /// `onedoor://TOKEN@name:port?fp=SHA256:…`.
    pub fn access_key(&self, token: Token, fingerprint: Fingerprint) -> AccessKey {
        AccessKey {
            token,
            server: HostPort::new(&self.server.name, self.server.port),
            fingerprint: Some(fingerprint),
        }
    }
}

/// [`StateDir::default_path`] with its inputs as arguments.
fn default_path_for(
    root: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from(ROOT_DEFAULT));
    }
    // The XDG spec: a relative XDG_DATA_HOME is invalid and to be ignored.
    if let Some(x) = xdg_data_home.filter(|p| p.is_absolute()) {
        return Some(x.join("onedoor"));
    }
    home.filter(|p| p.is_absolute())
        .map(|h| h.join(".local/share/onedoor"))
}

/// `t` without its fraction of a second (what the files store).
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

fn server_toml(s: &ServerInfo) -> String {
    format!(
        "# onedoor server settings, made by `onedoor init`.\n\
         # name: the certificate's name and the access keys' host; port: the\n\
         # access keys' port; token-salt: the salt of clients.toml's token hashes\n\
         # (changing it invalidates every client).\n\
         name = {}\n\
         port = {}\n\
         token-salt = {}\n\
         created = {}\n",
        toml_file::quote(&s.name),
        s.port,
        toml_file::quote(&s.salt.to_string()),
        toml_file::datetime(s.created),
    )
}

fn parse_server_toml(path: &Path, text: &str) -> Result<ServerInfo, StateError> {
    let raw: RawServer = toml_file::parse(path, text)?;
    let bad = |at: usize, what: String| toml_file::invalid(path, text, at, what);
    let name = identity::check_server_name(raw.name.get_ref())
        .map_err(|e| bad(raw.name.span().start, format!("`name`: {e}")))?;
    let port = match u16::try_from(*raw.port.get_ref()) {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(bad(
                raw.port.span().start,
                "`port`: expected a port, 1-65535".into(),
            ))
        }
    };
    let salt = raw
        .token_salt
        .get_ref()
        .parse::<TokenSalt>()
        .map_err(|e| bad(raw.token_salt.span().start, format!("`token-salt`: {e}")))?;
    let created = toml_file::to_system_time(raw.created.get_ref())
        .map_err(|what| bad(raw.created.span().start, format!("`created`: {what}")))?;
    Ok(ServerInfo {
        name,
        port,
        salt,
        created,
    })
}

#[cfg(test)]
mod tests;
